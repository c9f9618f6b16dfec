"""Peak memory of a whole `evo-frames run` stays under `[load] memory_budget` (measured, not timed).

One file of 50,000 generated members (~170 MB of JSON, nested memberships and contacts) is loaded
in a child process into each target with default settings; the child's own high-water mark of
resident memory (VmHWM) must stay under the default budget, DuckDB's buffers included.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from evo_frames.bench import _regrouped_lake, _run_measured
from evo_frames.config import Settings
from evo_frames.synth import generate

MEMBERS = 50_000


@pytest.fixture(scope="module")
def big_members_lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("memory")
    made = generate(str(work / "lake"), "members", MEMBERS, runs=1, gzip_level=1)
    return _regrouped_lake(str(work / "lake"), "members", made.run_ids[0], work, None)


def test_one_big_members_file_loads_under_the_memory_budget(big_members_lake: str, target_url: str) -> None:
    (file,) = Path(big_members_lake).rglob("*.jsonl.gz")
    env = {k: "" for k in os.environ if k.startswith("EVO_FRAMES_")}  # defaults only
    args = [sys.executable, "-m", "evo_frames", "run", "-e", "members", "--lake", big_members_lake,
            "--target", target_url, "--json"]  # fmt: skip
    _, peak_mb, out = _run_measured(args, env=env)
    assert json.loads(out)["rows_loaded"] == MEMBERS
    assert peak_mb < Settings().memory_budget, f"peak RSS {peak_mb:.0f} MB loading {file.stat().st_size} bytes"
