"""Peak memory of a whole `evo-frames run` stays under `[load] memory_budget` (measured, not timed).

One file of 50,000 generated members (~170 MB of JSON, nested memberships and contacts) is loaded
in a child process into each target with default settings; the child's own high-water mark of
resident memory (VmHWM) must stay under the default budget, DuckDB's buffers included.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from evo_frames import api, pipeline
from evo_frames.bench import _regrouped_lake, _run_measured
from evo_frames.config import Settings
from evo_frames.synth import generate

MEMBERS = 50_000


#: every this many members, two records run together on one line (a lost newline): every chunk
#: of the file holds a line to quarantine
BAD_EVERY = 1_000


@pytest.fixture(scope="module")
def big_members_lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("memory")
    made = generate(str(work / "lake"), "members", MEMBERS, runs=1, gzip_level=1)
    lake = _regrouped_lake(str(work / "lake"), "members", made.run_ids[0], work, None)
    (file,) = Path(lake).rglob("*.jsonl.gz")
    with gzip.open(file, "rb") as f:
        lines = f.read().splitlines()
    with gzip.open(file, "wb", compresslevel=1) as f:
        for n, line in enumerate(lines, 1):
            f.write(line if n % BAD_EVERY == BAD_EVERY // 2 else line + b"\n")
    return lake


def test_one_big_members_file_loads_under_the_memory_budget(big_members_lake: str, target_url: str) -> None:
    """Its bad lines are quarantined; the batch keeps them until it commits, copied: a rejected
    line kept the text of its chunk alive (a Polars string view), which raised the peak of 200,000
    members in 4 files with 109 such lines from about 580 to 920 MiB (PostgreSQL)."""
    (file,) = Path(big_members_lake).rglob("*.jsonl.gz")
    env = {k: "" for k in os.environ if k.startswith("EVO_FRAMES_")}  # defaults only
    args = [sys.executable, "-m", "evo_frames", "run", "-e", "members", "--lake", big_members_lake,
            "--target", target_url, "--json"]  # fmt: skip
    _, peak_mb, out = _run_measured(args, env=env)
    summary = json.loads(out)
    assert (summary["rows_loaded"], summary["rejects"]) == (MEMBERS - 2 * MEMBERS // BAD_EVERY, MEMBERS // BAD_EVERY), {
        k: summary[k] for k in ("lines_read", "duplicates", "rejects", "rows_loaded")
    }
    assert peak_mb < Settings().memory_budget, f"peak RSS {peak_mb:.0f} MB loading {file.stat().st_size} bytes"


def test_load_chunks_are_bounded_by_their_decoded_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks are sized by their decoded size (records with their raw JSON, and CORE frames),
    measured on the first chunk, and a read block holding several chunks' worth of text is cut:
    with many workers sharing a small budget, a chunk is flushed once it reaches its share and so
    holds at most its share and one read block (itself cut at the share)."""
    made = generate(str(tmp_path / "lake"), "members", 8_000, runs=1, gzip_level=1)
    lake = _regrouped_lake(str(tmp_path / "lake"), "members", made.run_ids[0], tmp_path, None)
    decoded: list[int] = []
    transform_records = pipeline.transform_records

    def observed(entity: Any, records: pl.DataFrame, ctx: Any) -> Any:
        core, casts = transform_records(entity, records, ctx)
        decoded.append(records.estimated_size() + sum(f.estimated_size() for f in core.values()))
        return core, casts

    monkeypatch.setattr(pipeline, "transform_records", observed)
    settings = Settings(lake=lake, target=f"duckdb:///{tmp_path}/evo.duckdb", memory_budget=256, workers=8)
    (summary,) = api.run("members", settings=settings)
    assert summary.rows_loaded == 8_000
    bound = (settings.memory_budget << 20) // (16 * (settings.workers + 2))  # Settings.piece_bytes: 1.6 MiB
    assert len(decoded) > 2
    assert max(decoded) <= 2 * bound * 1.1, (
        f"decoded chunks of {[round(n / 2**20, 1) for n in decoded]} MiB, bound {bound / 2**20:.1f} MiB"
    )
    assert settings.piece_bytes == bound


def test_duckdb_takes_a_quarter_of_the_budget_by_default(tmp_path: Path) -> None:
    """DuckDB's buffers add to the process's own: with 3/8 of the budget (288 MiB) 200,000
    members in 4 files peaked at 842-855 MiB; with 1/4 (192 MiB) at 784 MiB."""
    settings = Settings(target=f"duckdb:///{tmp_path}/evo.duckdb")
    sink = api.connect(settings)
    try:
        limit = sink.scalar("SELECT current_setting('memory_limit')")
    finally:
        sink.close()
    assert limit == "192.0 MiB"
    assert Settings(memory_budget=1536).duckdb_memory == "384MiB"
