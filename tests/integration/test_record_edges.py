"""Edge records and re-sent files, on both sinks: no record blocks a load, corrections are applied,
duplicate JSON keys are rejected."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import polars as pl
import pytest

import transforms.entries as entries
from evo_frames.pipeline import Summary, new_load_id, run_entity
from evo_frames.spec import Column, Entity, TransformContext
from tests.helpers import ENTITIES, load, rows, sale, scalar, settings, sink_for, write_bronze
from tests.services import LakeLocation

R1 = "20260111T031522Z"
SALES_PART = "2025-02_part-00001.jsonl.gz"


def entry(second: int, member: int, name: str = "Ana", **extra: object) -> dict[str, object]:
    return {"date": f"2025-11-03T06:41:{second:02d}", "idMember": member, "nameMember": name, "idBranch": 57,
            "device": "CATRACA 01", "entryAction": "Allowed", **extra}  # fmt: skip


def names(target: str) -> dict[int, str]:
    got = rows(target, "SELECT member_id, member_name FROM core.evo_entries")
    return {r["member_id"]: r["member_name"] for r in got}


def reconcile(target: str) -> None:
    for f in rows(target, "SELECT lines_read, rows_loaded, duplicates, rejects FROM evo_meta.files"):
        assert f["lines_read"] == f["rows_loaded"] + f["duplicates"] + f["rejects"], f


# a re-sent file is applied -------------------------------------------------------------------


def test_resent_file_at_the_same_path_applies_its_changed_rows(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    write_bronze(lake, "entries", R1, [entry(s, s) for s in range(5)])
    assert load(lake, target_url).tables["stg_evo.entries_raw"].inserted == 5
    # the corrected file replaces the first at its path: same run, file and line for every row
    write_bronze(lake, "entries", R1, [entry(s, s, "Bia" if s == 2 else "Ana") for s in range(5)])
    s = load(lake, target_url)
    assert s.files_loaded == 1
    stg = s.tables["stg_evo.entries_raw"]
    assert (stg.inserted, stg.updated, stg.unchanged) == (0, 1, 4)
    assert names(target_url) == {0: "Ana", 1: "Ana", 2: "Bia", 3: "Ana", 4: "Ana"}
    raw = scalar(target_url, "SELECT CAST(raw_data AS TEXT) FROM stg_evo.entries_raw WHERE _source_line = 3")
    assert "Bia" in raw


def test_resent_sales_file_replaces_the_changed_sale_and_its_children(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    write_bronze(lake, "sales", R1, [sale(1), sale(2)], name=SALES_PART)
    load(lake, target_url, "sales")
    assert scalar(target_url, "SELECT count(*) FROM core.evo_sale_items WHERE sale_id = 2") == 1
    fixed = sale(2)
    fixed["saleItens"] = [
        {"idSaleItem": 21, "description": "PLANO CORRIGIDO", "itemValue": 1198.8, "saleValue": 900},
        {"idSaleItem": 22, "description": "TAXA", "itemValue": 10, "saleValue": 10},
    ]
    write_bronze(lake, "sales", R1, [sale(1), fixed], name=SALES_PART)
    s = load(lake, target_url, "sales")
    stg = s.tables["stg_evo.sales_raw"]
    assert (stg.updated, stg.unchanged) == (1, 1)
    items = rows(target_url, "SELECT sale_item_id, description FROM core.evo_sale_items WHERE sale_id = 2 ORDER BY 1")
    assert [(r["sale_item_id"], r["description"]) for r in items] == [(21, "PLANO CORRIGIDO"), (22, "TAXA")]
    assert scalar(target_url, "SELECT count(*) FROM core.evo_sale_items WHERE sale_id = 1") == 1


def test_repaired_partial_file_applies_its_corrections(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    first = gzip.compress(b"\n".join(json.dumps(entry(i, i)).encode() for i in range(40)), mtime=0)
    write_bronze(lake, "entries", R1, [], raw=first[: len(first) * 2 // 3])
    partial = load(lake, target_url)
    assert len(partial.files_partial) == 1 and 0 < partial.rows_loaded < 40
    # the repaired copy also corrects a row the partial copy had loaded
    fixed = [entry(i, i, "Bia" if i == 1 else "Ana") for i in range(40)]
    write_bronze(lake, "entries", R1, fixed)
    again = load(lake, target_url)
    assert again.files_loaded == 1 and again.rejects == 0 and again.tables["stg_evo.entries_raw"].updated == 1
    got = names(target_url)
    assert len(got) == 40 and got[1] == "Bia" and got[0] == "Ana"
    reconcile(target_url)


def test_resent_azure_blob_applies_its_changed_rows(
    az_lake: LakeLocation, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = az_lake.storage_options
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", opts["connection_string"])
    write_bronze(az_lake.url, "entries", R1, [entry(s, s) for s in range(3)], storage_options=opts)
    load(az_lake.url, target_url)
    # the blob is replaced (a new etag) by one whose first row is corrected
    write_bronze(az_lake.url, "entries", R1, [entry(s, s, "Bia" if s == 0 else "Ana") for s in range(3)],
                 storage_options=opts)  # fmt: skip
    s = load(az_lake.url, target_url)
    assert s.files_loaded == 1 and s.tables["stg_evo.entries_raw"].updated == 1
    assert names(target_url) == {0: "Bia", 1: "Ana", 2: "Ana"}


# no record blocks a load -----------------------------------------------------------------------

SAO_PAULO = "E. South America Standard Time"


def dated(date: str, member: int, **extra: object) -> dict[str, object]:
    return {**entry(0, member), "date": date, **extra}


def test_out_of_range_times_become_null_and_are_counted(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    write_bronze(lake, "entries", R1, [
        dated("2025-11-03T06:41:01", 1, dateTurn="0000-01-01T00:00:00"),
        dated("2025-11-03T06:41:02", 2, dateTurn="9999-12-31T23:59:59-03:00"),  # year 10000 in UTC
        dated("9999-12-31T23:59:59", 3, timeZone=SAO_PAULO),  # a valid key; in UTC the instant overflows
        dated("0001-01-01T00:00:00+03:00", 4),  # year 0 in UTC
        dated("0001-01-01T12:00:00", 5),  # the first day that fits
    ])  # fmt: skip
    s = load(lake, target_url)
    assert (s.rows_loaded, s.rejects) == (5, 0)
    assert s.cast_failures == {"core.evo_entries.entry_date_turn": 2, "core.evo_entries.entry_date": 2}
    got = rows(target_url, "SELECT member_id, entry_local_date, entry_date, entry_date_turn FROM core.evo_entries")
    by_member = {r["member_id"]: r for r in got}
    assert by_member[1]["entry_date_turn"] is None and by_member[2]["entry_date_turn"] is None
    assert by_member[3]["entry_date"] is None and str(by_member[3]["entry_local_date"]) == "9999-12-31"
    assert by_member[4]["entry_date"] is None and by_member[5]["entry_date"].year == 1
    assert load(lake, target_url).files_skipped == 1  # the next run goes on as usual


def test_key_date_out_of_range_is_rejected_naming_field_and_value(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    write_bronze(lake, "entries", R1, [entry(1, 1), dated("0000-01-01T00:00:00", 2), entry(3, 3)])
    s = load(lake, target_url)
    assert (s.rows_loaded, s.rejects) == (2, 1)
    got = rows(target_url, "SELECT line, stage, reason FROM evo_meta.rejects")
    assert [(r["line"], r["stage"]) for r in got] == [(2, "transform")]
    assert "date" in got[0]["reason"] and "0000-01-01T00:00:00" in got[0]["reason"]
    assert sorted(names(target_url)) == [1, 3]
    reconcile(target_url)


def test_early_years_land_in_their_own_partitions(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    dates = ["0005-03-01T10:00:00", "2005-03-01T10:00:00", "0999-12-31T10:00:00", "9999-12-01T10:00:00"]
    write_bronze(lake, "entries", R1, [dated(d, i) for i, d in enumerate(dates)])
    s = load(lake, target_url)
    assert (s.rows_loaded, s.rejects) == (4, 0)
    got = rows(target_url, "SELECT member_id, entry_local_date FROM core.evo_entries")
    assert sorted((r["member_id"], str(r["entry_local_date"])) for r in got) == [
        (0, "0005-03-01"), (1, "2005-03-01"), (2, "0999-12-31"), (3, "9999-12-01")
    ]  # fmt: skip
    if target_url.startswith("postgresql"):
        parts = rows(target_url, "SELECT tableoid::regclass::text AS part, member_id FROM core.evo_entries")
        assert sorted((r["member_id"], r["part"]) for r in parts) == [
            (0, "core.evo_entries_p0005_03"), (1, "core.evo_entries_p2005_03"), (2, "core.evo_entries_p0999_12"),
            (3, "core.evo_entries_p9999_12"),
        ]  # fmt: skip


# the last line of defence: a batch the target refuses is narrowed down to the offending records

#: entries whose CORE table requires a device: a record without one breaks a NOT NULL constraint,
#: which only the target checks
STRICT_TABLE = dataclasses.replace(
    entries.ENTRIES, columns=(*entries.ENTRIES.columns, Column("device_required", "text", nullable=False)), indexes=()
)


def _strict_transform(records: pl.LazyFrame, ctx: TransformContext) -> dict[str, pl.LazyFrame]:
    out = entries.transform(records, ctx)[entries.ENTRIES.qualified]
    return {STRICT_TABLE.qualified: out.with_columns(device_required=pl.col("device"))}


STRICT = dataclasses.replace(ENTITIES["entries"], core=(STRICT_TABLE,), transform=_strict_transform)


def _year_zero_keys(records: pl.LazyFrame, ctx: TransformContext) -> pl.LazyFrame:
    # a key read without evo_frames.expr.date: year 0 reaches the partitioning
    keyed = entries.keys(records, ctx)
    local = pl.col("date").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    return keyed.with_columns(entry_local_date=local, _key_error=pl.when(local.is_null()).then(pl.lit("no date")))


UNGUARDED = dataclasses.replace(ENTITIES["entries"], keys=_year_zero_keys)


def run(lake: Path, target: str, entity: Entity, **options: object) -> Summary:
    with sink_for(target) as sink:
        return run_entity(sink, entity, settings(lake, target, **options), load_id=new_load_id())


def test_records_the_target_refuses_are_quarantined_and_the_rest_commits(tmp_path: Path, target_url: str) -> None:
    lines: list[dict[str, object]] = [entry(i, i) for i in range(40)]
    for bad in (7, 30):
        del lines[bad]["device"]
    write_bronze(str(tmp_path), "entries", R1, lines)
    write_bronze(str(tmp_path), "entries", R1, [entry(i, 100 + i) for i in range(3)],
                 name="2025-11-03_part-00002.jsonl.gz")  # fmt: skip
    s = run(tmp_path, target_url, STRICT, batch_size=2)
    assert (s.files_loaded, s.lines_read, s.rows_loaded, s.rejects, s.status) == (2, 43, 41, 2, "succeeded")
    got = rows(target_url, "SELECT line, stage, reason FROM evo_meta.rejects ORDER BY line")
    assert [(r["line"], r["stage"]) for r in got] == [(8, "load"), (31, "load")]
    assert all("device_required" in r["reason"] for r in got)
    assert scalar(target_url, "SELECT count(*) FROM core.evo_entries") == 41
    assert scalar(target_url, "SELECT count(*) FROM stg_evo.entries_raw") == 41
    assert scalar(target_url, "SELECT count(*) FROM stg_evo.entries_raw WHERE _source_line IN (8, 31) "
                  "AND _source_file LIKE '%part-00001%'") == 0  # fmt: skip
    reconcile(target_url)
    again = run(tmp_path, target_url, STRICT)  # the manifest holds both files, once
    assert (again.files_loaded, again.files_skipped) == (0, 2)
    assert scalar(target_url, "SELECT count(*) FROM evo_meta.files") == 2


def test_a_key_python_cannot_convert_is_quarantined(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(1, 1), dated("0000-06-01T10:00:00", 2), entry(3, 3)])
    s = run(tmp_path, target_url, UNGUARDED)
    assert s.status == "succeeded"
    if target_url.startswith("postgresql"):  # the partition bound of year 0 cannot be built
        assert (s.rows_loaded, s.rejects) == (2, 1)
        got = rows(target_url, "SELECT line, stage, reason FROM evo_meta.rejects")
        assert [(r["line"], r["stage"]) for r in got] == [(2, "load")] and "year 0" in got[0]["reason"]
    assert {1, 3} <= set(names(target_url))


# duplicate JSON keys -------------------------------------------------------------------------


def test_duplicate_json_keys_are_rejected_so_stg_and_core_agree(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    good = [json.dumps(entry(i, i)) for i in range(6)]
    top = good[1][:-1] + ', "nameMember": "Bia"}'  # the first value typed, the last kept by jsonb
    write_bronze(lake, "entries", R1, [good[0], top, *good[2:]])
    nested = sale(2)
    nested["saleItens"][0]["description"] = "first"
    nested_line = json.dumps(nested).replace('"description": "first"', '"description": "first", "description": "last"')
    write_bronze(lake, "sales", R1, [json.dumps(sale(1)), nested_line, json.dumps(sale(3))], name=SALES_PART)
    s = load(lake, target_url)
    assert (s.rows_loaded, s.rejects) == (5, 1)
    sales = load(lake, target_url, "sales")
    assert (sales.rows_loaded, sales.rejects) == (2, 1)
    got = rows(target_url, "SELECT entity, line, stage, reason FROM evo_meta.rejects ORDER BY entity")
    assert [(r["entity"], r["line"], r["stage"]) for r in got] == [("entries", 2, "decode"), ("sales", 2, "decode")]
    assert "'nameMember'" in got[0]["reason"] and "'description'" in got[1]["reason"]
    assert sorted(names(target_url)) == [0, 2, 3, 4, 5]
    assert scalar(target_url, "SELECT count(*) FROM core.evo_sales") == 2
    reconcile(target_url)


def test_a_key_repeated_in_every_line_is_found(tmp_path: Path, target_url: str) -> None:
    lines = [json.dumps(entry(i, i))[:-1] + f', "idMember": {100 + i}}}' for i in range(4)]
    write_bronze(str(tmp_path), "entries", R1, [*lines, json.dumps(entry(9, 9))])
    s = load(tmp_path, target_url)
    assert (s.rows_loaded, s.rejects) == (1, 4)
    assert sorted(names(target_url)) == [9]
