"""The load transforms a chunk of files at once: planning a transform query costs tens of
milliseconds whatever its rows, which small files would otherwise pay once each."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.helpers import R1, entry, load, rows, write_bronze


def test_one_transform_per_chunk_of_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entity = helpers.ENTITIES["entries"]
    calls: list[int] = []

    def counted(records: Any, ctx: Any) -> Any:
        calls.append(1)
        return entity.transform(records, ctx)

    monkeypatch.setitem(helpers.ENTITIES, "entries", dataclasses.replace(entity, transform=counted))
    for part in range(1, 5):
        lines = [entry(10 * part + i, 10 * part + i, idBranch="x" if i == 0 else 1) for i in range(2)]
        write_bronze(str(tmp_path), "entries", R1, lines, name=f"2025-11-03_part-{part:05d}.jsonl.gz")
    target = f"duckdb://{tmp_path / 't.duckdb'}"
    s = load(tmp_path, target, batch_size=10)
    assert len(calls) == 1, "the four files of one batch are transformed as one chunk"
    assert s.files_loaded == 4 and s.rows_loaded == 8
    assert s.cast_failures == {"core.evo_entries.branch_id": 4}
    assert rows(target, "SELECT count(*) AS n, count(branch_id) AS b FROM core.evo_entries") == [{"n": 8, "b": 4}]
