"""Rows bound for a partition the load found empty skip the probe, unless this load wrote their
key there already (sinks.fresh); a key another process wrote meanwhile is caught and replayed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from evo_frames.pipeline import new_load_id, run_entity
from evo_frames.progress import Progress
from tests.helpers import ENTITIES, R1, entry, load, rows, settings, sink_for, write_bronze


def _files(lake: Path, contents: list[list[dict[str, object]]]) -> None:
    for i, lines in enumerate(contents, start=1):
        write_bronze(str(lake), "entries", R1, lines, name=f"2025-11-03_part-{i:05d}.jsonl.gz")


def _names(target: str) -> list[tuple[int, str]]:
    names = rows(target, "SELECT member_id, member_name FROM core.evo_entries ORDER BY member_id")
    return [(r["member_id"], r["member_name"]) for r in names]


def test_a_first_load_in_many_chunks_keeps_the_latest_of_keys_it_wrote_itself(
    tmp_path: Path, target_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # one file per batch into an empty table: file 2 brings keys 0-4 of file 1 again, changed
    # (0-2) and unchanged (3-4), file 3 key 0 a third time; key 7 only in file 3, with new keys
    _files(
        tmp_path,
        [
            [entry(s, s, "one") for s in range(6)],
            [*(entry(s, s, "two") for s in range(3)), *(entry(s, s, "one") for s in (3, 4)), entry(50, 50)],
            [entry(0, 0, "three"), entry(7, 7, "seven"), entry(60, 60)],
        ],
    )
    with caplog.at_level(logging.WARNING, logger="evo_frames"):
        summary = load(tmp_path, target_url, batch_size=1, chunk_rows=1000)
    # a key taken for new although this load wrote it would fail its COPY and replay the batch
    assert not [r.message for r in caplog.records if "retrying" in r.message]
    counts = summary.tables["stg_evo.entries_raw"]
    assert (counts.inserted, counts.updated, counts.unchanged) == (9, 4, 2)
    assert _names(target_url) == [
        (0, "three"),
        (1, "two"),
        (2, "two"),
        (3, "one"),
        (4, "one"),
        (5, "one"),
        (7, "seven"),
        (50, "Ana"),
        (60, "Ana"),
    ]
    assert rows(target_url, "SELECT count(*) AS n FROM stg_evo.entries_raw") == [{"n": 9}]


class _WritesMeanwhile(Progress):
    """After the first batch commits, another process's load writes key 9 into the partition."""

    def __init__(self, lake: Path, target: str) -> None:
        super().__init__()
        self.lake, self.target, self.done = lake, target, False

    def advance(self, entity: str, **figures: int) -> None:
        super().advance(entity, **figures)
        if figures.get("files") and not self.done:
            self.done = True
            other = self.lake / "other"
            write_bronze(str(other), "entries", "20251104T030000Z", [entry(9, 9, "other")])
            load(other, self.target)


def test_a_key_written_meanwhile_by_another_load_is_caught_and_the_batch_replayed(
    tmp_path: Path, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    target_url = pg_url  # DuckDB: one process writes a file at a time
    lake = tmp_path / "lake"
    # the partition is empty when the first batch starts: file 2's key 9 looks certainly new
    _files(lake, [[entry(s, s, "first") for s in range(3)], [entry(9, 9, "mine"), entry(10, 10)]])
    entries = ENTITIES["entries"]
    with caplog.at_level(logging.WARNING, logger="evo_frames"), sink_for(target_url) as sink:
        summary = run_entity(
            sink,
            entries,
            settings(lake, target_url, batch_size=1, retry_wait=0.0),
            load_id=new_load_id(),
            run_id=R1,
            progress=_WritesMeanwhile(lake, target_url),
        )
    assert summary.status == "succeeded", summary.error
    assert [r.message for r in caplog.records if "a concurrent load inserted one of its keys first" in r.message]
    # the same instant and key: this run's later lineage wins over the other load's earlier run
    assert _names(target_url) == [
        (0, "first"),
        (1, "first"),
        (2, "first"),
        (9, "mine"),
        (10, "Ana"),
    ]
