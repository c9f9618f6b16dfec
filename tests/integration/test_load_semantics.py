"""Load semantics on both sinks: exactly once, latest wins, no rewrite of unchanged rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.helpers import R1, R2, entry, load, rows, scalar, write_bronze


def core_names(target: str) -> dict[int, str]:
    return {
        r["member_id"]: r["member_name"] for r in rows(target, "SELECT member_id, member_name FROM core.evo_entries")
    }


def test_rerun_loads_nothing_twice(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(s, 100 + s) for s in range(10)])
    first = load(tmp_path, target_url)
    assert (first.files_loaded, first.lines_read, first.rows_loaded) == (1, 10, 10)
    assert first.tables["core.evo_entries"].inserted == 10
    again = load(tmp_path, target_url)
    assert (again.files_found, again.files_skipped, again.files_loaded, again.lines_read) == (1, 1, 0, 0)
    assert scalar(target_url, "SELECT count(*) FROM stg_evo.entries_raw") == 10
    manifest = rows(target_url, "SELECT lines_read, rows_loaded, duplicates, rejects FROM evo_meta.files")
    assert manifest == [{"lines_read": 10, "rows_loaded": 10, "duplicates": 0, "rejects": 0}]


def test_duplicates_in_a_batch_collapse_latest_wins(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(1, 7, "first"), entry(2, 8), entry(1, 7, "second")])
    write_bronze(str(tmp_path), "entries", R2, [entry(1, 7, "newest run")], name="2025-11-03_part-00002.jsonl.gz")
    s = load(tmp_path, target_url, batch_size=10)
    assert (s.lines_read, s.rows_loaded, s.duplicates) == (4, 2, 2)
    assert core_names(target_url) == {7: "newest run", 8: "Ana"}
    lineage = rows(target_url, "SELECT run_id, _source_line FROM stg_evo.entries_raw WHERE raw_data->>'idMember' = '7'")
    assert lineage == [{"run_id": R2, "_source_line": 1}]


def test_older_run_never_overwrites_newer(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R2, [entry(1, 7, "new")])
    load(tmp_path, target_url)
    write_bronze(str(tmp_path), "entries", R1, [entry(1, 7, "old"), entry(5, 9, "only old")])
    s = load(tmp_path, target_url)
    assert s.tables["stg_evo.entries_raw"].unchanged == 1 and s.tables["stg_evo.entries_raw"].inserted == 1
    assert core_names(target_url) == {7: "new", 9: "only old"}


def test_unchanged_resend_is_not_rewritten(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(s, s) for s in range(5)])
    load(tmp_path, target_url)
    before = rows(target_url, "SELECT entry_id, _updated_at, run_id FROM stg_evo.entries_raw ORDER BY entry_id")
    changed = [entry(s, s) for s in range(4)] + [entry(4, 4, "Ana Maria")]
    write_bronze(str(tmp_path), "entries", R2, changed, name="2025-11-03_part-00002.jsonl.gz")
    s = load(tmp_path, target_url)
    stg = s.tables["stg_evo.entries_raw"]
    assert (stg.inserted, stg.updated, stg.unchanged) == (0, 1, 4)
    assert s.tables["core.evo_entries"].updated == 1
    after = rows(target_url, "SELECT entry_id, _updated_at, run_id FROM stg_evo.entries_raw ORDER BY entry_id")
    same = [b for b, a in zip(before, after, strict=True) if b == a]
    assert len(same) == 4  # lineage and _updated_at kept: the content came from run 1
    assert core_names(target_url)[4] == "Ana Maria"


def test_changed_file_is_reloaded(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(1, 1)])
    load(tmp_path, target_url)
    write_bronze(str(tmp_path), "entries", R1, [entry(1, 1), entry(2, 2, "added later")])
    s = load(tmp_path, target_url)
    assert s.files_loaded == 1 and s.tables["stg_evo.entries_raw"].inserted == 1
    assert scalar(target_url, "SELECT count(*) FROM evo_meta.files") == 1


def test_bad_lines_are_quarantined_and_counts_reconcile(tmp_path: Path, target_url: str) -> None:
    lines = [entry(1, 1), "{not json", {"idMember": 3}, entry(4, 4), "[1, 2]", entry(4, 4)]
    write_bronze(str(tmp_path), "entries", R1, lines)
    s = load(tmp_path, target_url)
    assert (s.lines_read, s.rows_loaded, s.duplicates, s.rejects) == (6, 2, 1, 3)
    rejects = rows(target_url, "SELECT line, stage FROM evo_meta.rejects ORDER BY line")
    assert rejects == [
        {"line": 2, "stage": "decode"},
        {"line": 3, "stage": "transform"},
        {"line": 5, "stage": "decode"},
    ]
    f = rows(target_url, "SELECT lines_read, rows_loaded, duplicates, rejects FROM evo_meta.files")[0]
    assert f["lines_read"] == f["rows_loaded"] + f["duplicates"] + f["rejects"]


def test_timestamps_stored_in_utc_from_source_zone(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(17, 1, dateTurn="2025-11-03T06:41:20.250")])
    load(tmp_path, target_url)
    got = rows(target_url, "SELECT entry_date, entry_date_turn FROM core.evo_entries")[0]
    assert got["entry_date"] == dt.datetime(2025, 11, 3, 9, 41, 17, tzinfo=dt.UTC)
    assert got["entry_date_turn"] == dt.datetime(2025, 11, 3, 9, 41, 20, 250000, tzinfo=dt.UTC)


@pytest.mark.parametrize("chunk_rows", [1000])
def test_chunks_within_one_transaction(tmp_path: Path, target_url: str, chunk_rows: int) -> None:
    many = [entry(s % 60, s) for s in range(2500)] + [entry(0, 0, "repeat")]
    write_bronze(str(tmp_path), "entries", R1, many)
    s = load(tmp_path, target_url, chunk_rows=chunk_rows)
    assert s.lines_read == 2501
    assert scalar(target_url, "SELECT count(*) FROM core.evo_entries") == 2500
    assert core_names(target_url)[0] == "repeat"


def test_duplicates_across_chunks_of_a_batch_count_the_earlier_line(tmp_path: Path, target_url: str) -> None:
    # chunks of 1000 records: member 0's key is in every chunk of the batch, and each earlier line
    # (the first chunk's is already written when the next chunk comes) counts as a duplicate in its file
    first = [entry(0, 0, "oldest"), *(entry(s % 60, s) for s in range(1, 1500)), entry(0, 0, "middle")]
    write_bronze(str(tmp_path), "entries", R1, first + [entry(s % 60, s) for s in range(1500, 1999)])
    second = [entry(1999 % 60, 1999), entry(0, 0, "newest")]
    write_bronze(str(tmp_path), "entries", R1, second, name="2025-11-03_part-00002.jsonl.gz")
    s = load(tmp_path, target_url, batch_size=10, chunk_rows=1000)
    assert (s.lines_read, s.rows_loaded, s.duplicates) == (2002, 2000, 2)
    manifest = rows(target_url, "SELECT lines_read, rows_loaded, duplicates FROM evo_meta.files ORDER BY path")
    assert [(m["lines_read"], m["rows_loaded"], m["duplicates"]) for m in manifest] == [(2000, 1998, 2), (2, 2, 0)]
    names = core_names(target_url)
    assert len(names) == 2000 and names[0] == "newest"
    lineage = rows(
        target_url, "SELECT _source_file, _source_line FROM stg_evo.entries_raw WHERE raw_data->>'idMember' = '0'"
    )
    assert [(r["_source_file"].endswith("part-00002.jsonl.gz"), r["_source_line"]) for r in lineage] == [(True, 2)]
