"""Entries: the reference id recipe, entry_date in the source time zone, typed CORE columns."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import polars as pl
import pytest

from evo_frames.spec import TransformContext
from transforms.entries import ENTITY, ENTRIES, RECORD

CTX = TransformContext(source_timezone="America/Sao_Paulo")


def reference_id(rec: dict[str, Any]) -> int:
    """The recipe exactly as the replaced loader computes it (reference §3)."""

    def v(x: Any) -> str:
        return str(x) if x else ""

    key = "|".join(
        [str(rec.get("date"))]
        + [v(rec.get(k)) for k in ("idMember", "idProspect", "idEmployee", "idBranch", "device", "entryAction")]
    )
    return int(hashlib.md5(key.encode("utf-8")).hexdigest()[:15], 16) % 10**15


def keyed(records: list[dict[str, Any]]) -> pl.DataFrame:
    lines = pl.Series("raw", [json.dumps(r, ensure_ascii=False) for r in records])
    frame = pl.DataFrame({"raw": lines}).with_columns(pl.col("raw").str.json_decode(RECORD).alias("r")).unnest("r")
    frame = frame.with_columns(
        pl.lit("f.jsonl.gz").alias("_source_file"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_source_line"),
        pl.lit("20260111T031522Z").alias("run_id"),
        pl.lit(dt.date(2026, 1, 11)).alias("ingestion_date"),
    )
    return ENTITY.keys(frame.lazy(), CTX).collect()


VECTORS: list[tuple[dict[str, Any], int]] = [
    # (record, its id as the replaced loader computes it, recorded once with hashlib)
    (
        {"date": "2025-11-03T06:41:17", "idMember": 1048577, "idBranch": 57, "device": "CATRACA 01", "entryAction": "Allowed"},
        983805634770848,
    ),
    ({"date": "2025-11-03T06:41:17.123", "idProspect": 3300121, "idBranch": 57, "device": "CATRACA 01"}, 453812660003818),
    ({"date": "2025-11-03T06:41:17", "idMember": 0, "idEmployee": 311, "idBranch": 1, "device": "Recepção"}, 968002166402919),
    ({"date": "2025-11-03T06:41:17", "idMember": None, "device": "", "entryAction": "Denied"}, 382698128928707),
    ({"date": "2024-02-29T23:59:59", "idMember": 12, "idBranch": 60, "device": "CATRACA 03", "entryAction": "Allowed",
      "nameMember": "João"}, 135721225351534),
]  # fmt: skip


@pytest.mark.parametrize(("record", "known"), VECTORS)
def test_entry_id_matches_reference_recipe(record: dict[str, Any], known: int) -> None:
    out = keyed([record])
    assert out["entry_id"][0] == reference_id(record) == known


def test_falsy_values_hash_like_the_reference() -> None:
    zero = {"date": "2025-11-03T06:41:17", "idMember": 0, "idBranch": 57}
    missing = {"date": "2025-11-03T06:41:17", "idBranch": 57}
    out = keyed([zero, missing])
    assert out["entry_id"][0] == out["entry_id"][1] == reference_id(zero) == reference_id(missing)


def test_entry_date_in_source_time_zone() -> None:
    out = keyed([{"date": "2025-11-03T06:41:17"}, {"date": "2025-11-03T06:41:17.5"}])
    assert out["entry_date"].to_list() == [
        dt.datetime(2025, 11, 3, 9, 41, 17, tzinfo=dt.UTC),
        dt.datetime(2025, 11, 3, 9, 41, 17, 500000, tzinfo=dt.UTC),
    ]
    other = ENTITY.keys(
        keyed([{"date": "2025-11-03T06:41:17"}]).drop("entry_id", "entry_date", "_key_error").lazy(),
        TransformContext(source_timezone="UTC"),
    ).collect()
    assert other["entry_date"][0] == dt.datetime(2025, 11, 3, 6, 41, 17, tzinfo=dt.UTC)


def test_key_errors_name_the_field_and_value() -> None:
    out = keyed([{"idMember": 1}, {"date": "yesterday"}, {"date": "2025-11-03T06:41:17"}])
    assert out["_key_error"].to_list() == [
        "key field date is missing",
        "key field date yesterday is not a timestamp in America/Sao_Paulo",
        None,
    ]


def test_core_row_typed_and_cleaned() -> None:
    rec = {
        "date": "2025-11-03T06:41:17", "dateTurn": "2025-11-03T06:41:20", "timeZone": "E. South America Standard Time",
        "idMember": 1048577, "nameMember": "  Ana Souza Lima ", "idProspect": None, "nameProspect": "",
        "idEmployee": "x", "entryType": "Check-in", "device": "CATRACA 01", "releasesByID": 7,
        "idBranch": "57", "blockReason": None, "entryAction": "Allowed", "idMigration": None,
    }  # fmt: skip
    out = ENTITY.transform(keyed([rec]).lazy(), CTX)[ENTRIES.qualified].collect()
    assert out.schema == pl.Schema(ENTRIES.polars_schema())
    row = out.row(0, named=True)
    assert row["entry_date_turn"] == dt.datetime(2025, 11, 3, 9, 41, 20, tzinfo=dt.UTC)
    assert row["member_id"] == 1048577 and row["member_name"] == "Ana Souza Lima"
    assert row["prospect_name"] is None and row["employee_id"] is None  # '' → NULL, 'x' → NULL
    assert row["branch_id"] == 57 and row["releases_by_id"] == 7 and row["_source_run_id"] == "20260111T031522Z"
