"""Reloads decode only what changed (key and content hash first), and count each key once."""

from __future__ import annotations

import json
from pathlib import Path

from evo_frames.pipeline import Summary
from tests.helpers import R1, R2, entry, load, rows, write_bronze


def _counts(summary: object, table: str) -> tuple[int, int, int]:
    c = summary.tables[table]  # type: ignore[attr-defined]
    return c.inserted, c.updated, c.unchanged


def test_a_reload_transforms_only_the_new_and_changed_lines(tmp_path: Path, target_url: str) -> None:
    # idEmployee 'x' does not cast to bigint: counted when its line is decoded and transformed
    lines = [entry(s, s, idEmployee="x") for s in range(4)]
    write_bronze(str(tmp_path), "entries", R1, lines)
    first = load(tmp_path, target_url)
    assert first.cast_failures == {"core.evo_entries.employee_id": 4}
    resent = [*lines[:3], entry(3, 3, "Ana Maria", idEmployee="x"), entry(9, 9)]
    write_bronze(str(tmp_path), "entries", R2, resent, name="2025-11-03_part-00002.jsonl.gz")
    again = load(tmp_path, target_url)
    # the three unchanged lines cost a key, a hash and a probe: not decoded, so not cast again
    assert again.cast_failures == {"core.evo_entries.employee_id": 1}
    assert _counts(again, "stg_evo.entries_raw") == (1, 1, 3)
    assert _counts(again, "core.evo_entries") == (1, 1, 3)
    assert (again.lines_read, again.rows_loaded) == (5, 5)
    manifest = rows(target_url, "SELECT rows_loaded FROM evo_meta.files WHERE run_id = '" + R2 + "'")
    assert manifest == [{"rows_loaded": 5}]
    names = rows(target_url, "SELECT member_id, member_name, employee_id FROM core.evo_entries ORDER BY member_id")
    assert [(r["member_id"], r["member_name"], r["employee_id"]) for r in names] == [
        (0, "Ana", None),
        (1, "Ana", None),
        (2, "Ana", None),
        (3, "Ana Maria", None),
        (9, "Ana", None),
    ]


def test_a_key_written_by_two_chunks_of_a_batch_counts_once(tmp_path: Path, target_url: str) -> None:
    # a chunk of 1000 lines per file: the second file's chunk brings key 7 again
    def two_files(run: str, first: list[dict[str, object]], second: list[dict[str, object]]) -> None:
        write_bronze(str(tmp_path), "entries", run, first, name="2025-11-03_part-00001.jsonl.gz")
        write_bronze(str(tmp_path), "entries", run, second, name="2025-11-03_part-00002.jsonl.gz")

    def load_batch() -> Summary:
        return load(tmp_path, target_url, chunk_rows=1000, batch_size=10, run_id=run)

    run = R1
    two_files(
        R1, [entry(1, m, "a") for m in range(1000)], [*(entry(2, 1000 + m) for m in range(999)), entry(1, 7, "b")]
    )
    first = load_batch()
    assert (first.rows_loaded, first.duplicates) == (1999, 1)
    for table in ("stg_evo.entries_raw", "core.evo_entries"):
        assert _counts(first, table) == (1999, 0, 0)
    # key 7 unchanged in the first chunk, changed in the second: updated, once
    run = R2
    two_files(
        R2,
        [entry(1, 7, "b"), *(entry(3, 2000 + m) for m in range(999))],
        [*(entry(4, 3000 + m) for m in range(999)), entry(1, 7, "c")],
    )
    again = load_batch()
    assert (again.rows_loaded, again.duplicates) == (1999, 1)
    for table in ("stg_evo.entries_raw", "core.evo_entries"):
        assert _counts(again, table) == (1998, 1, 0)
    name = rows(target_url, "SELECT member_name FROM core.evo_entries WHERE member_id = 7")
    assert name == [{"member_name": "c"}]


def test_a_changed_line_failing_its_full_decode_is_quarantined_and_the_earlier_one_wins(
    tmp_path: Path, target_url: str
) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(1, 7, "orig"), entry(2, 8)])
    load(tmp_path, target_url)
    # the key fields decode, the whole line does not load: its object holds nameMember twice
    twice = json.dumps(entry(1, 7, "dup"))[:-1] + ', "nameMember": "again"}'
    lines = [entry(1, 7, "fixed"), twice, entry(2, 8)]
    write_bronze(str(tmp_path), "entries", R2, lines, name="2025-11-03_part-00002.jsonl.gz")
    s = load(tmp_path, target_url)
    assert (s.lines_read, s.rows_loaded, s.duplicates, s.rejects) == (3, 2, 0, 1)
    assert _counts(s, "stg_evo.entries_raw") == (0, 1, 1)
    names = rows(target_url, "SELECT member_id, member_name FROM core.evo_entries ORDER BY member_id")
    assert names == [{"member_id": 7, "member_name": "fixed"}, {"member_id": 8, "member_name": "Ana"}]
    rejects = rows(target_url, "SELECT line, stage, reason FROM evo_meta.rejects")
    assert [(r["line"], r["stage"]) for r in rejects] == [(2, "decode")]
    assert "duplicate key 'nameMember'" in rejects[0]["reason"]
