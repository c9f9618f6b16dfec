"""Two `evo-frames run` processes of one entity at once, with or without `init`: both exit 0, no
file is loaded twice, and the tables are those of one run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import entries_snapshot, rows, write_entries_lake


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}


def _run(lake: Path, target: str) -> list[str]:
    return [sys.executable, "-m", "evo_frames", "run", "-e", "entries", "--lake", str(lake), "--target", target,
            "--batch-size", "2", "--json", "--quiet"]  # fmt: skip


def _fresh(request: pytest.FixtureRequest, tmp_path: Path, sink: str) -> str:
    if sink == "duckdb":
        return f"duckdb://{tmp_path / f'{uuid.uuid4().hex[:8]}.duckdb'}"
    server = request.getfixturevalue("pg_server")
    name = f"conc_{uuid.uuid4().hex[:8]}"
    url = server.create_database(name)
    request.addfinalizer(lambda: server.drop_database(name))
    return url


@pytest.mark.slow
@pytest.mark.parametrize("init", [False, True], ids=["no-init", "init"])
@pytest.mark.parametrize("sink", ["postgres", "duckdb"])
def test_two_runs_at_once_load_each_file_once(
    tmp_path: Path, request: pytest.FixtureRequest, sink: str, init: bool
) -> None:
    lake = tmp_path / "lake"
    # two runs of six files; the second re-sends every key with other content (latest wins)
    n_files = write_entries_lake(lake, [f"2025-{m:02d}-03" for m in range(1, 7)], 400)
    clean = _fresh(request, tmp_path, sink)
    subprocess.run(_run(lake, clean), check=True, capture_output=True, env=_env(), timeout=300)
    expected = entries_snapshot(clean)
    lines = sum(r["lines_read"] for r in rows(clean, "SELECT lines_read FROM evo_meta.files"))

    for _ in range(3):
        target = _fresh(request, tmp_path, sink)
        if init:
            done = subprocess.run(
                [sys.executable, "-m", "evo_frames", "init", "--target", target],
                capture_output=True, text=True, env=_env(), timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
        procs = [
            subprocess.Popen(_run(lake, target), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (_, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err
            assert "Traceback" not in err, err
        summaries = [json.loads(out) for out, _ in outs]
        assert entries_snapshot(target) == expected
        manifest = rows(target, "SELECT path, load_id FROM evo_meta.files")
        assert len(manifest) == len({m["path"] for m in manifest}) == n_files
        assert {m["load_id"] for m in manifest} <= {s["load_id"] for s in summaries}
        # together the two runs read each file once; every file either one loaded, the other skipped
        assert sum(s["files"]["loaded"] for s in summaries) == n_files
        assert sum(s["lines_read"] for s in summaries) == lines
        for s in summaries:
            files = s["files"]
            assert s["status"] == "succeeded"
            assert files["loaded"] + files["skipped_already_loaded"] + files["loaded_by_concurrent_load"] == n_files
        runs = rows(target, "SELECT status FROM evo_meta.runs")
        assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
