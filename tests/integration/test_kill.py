"""Killing `evo-frames run` at any moment and rerunning gives the same tables as one clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import NOVEMBER, entries_snapshot, write_entries_lake


def command(lake: Path, target: str) -> list[str]:
    return [sys.executable, "-m", "evo_frames", "run", "--entity", "entries", "--lake", str(lake),
            "--target", target, "--batch-size", "2", "--json"]  # fmt: skip


@pytest.mark.slow
def test_kill_anywhere_then_rerun_equals_clean_run(
    tmp_path: Path, target_url: str, request: pytest.FixtureRequest
) -> None:
    lake = tmp_path / "lake"
    write_entries_lake(lake, NOVEMBER, 3000)
    if target_url.startswith("duckdb"):
        clean_target = f"duckdb:///{tmp_path / 'clean.duckdb'}"
    else:
        server = request.getfixturevalue("pg_server")
        name = f"clean_{uuid.uuid4().hex[:8]}"
        clean_target = server.create_database(name)
        request.addfinalizer(lambda: server.drop_database(name))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}
    started = time.monotonic()
    subprocess.run(command(lake, clean_target), check=True, capture_output=True, env=env, timeout=300)
    clean_seconds = time.monotonic() - started

    # kill at fractions of a clean run's duration, so the moments fall inside the load on any machine
    kills = 0
    for share in (0.3, 0.45, 0.6, 0.75, 0.9):
        delay = share * clean_seconds
        proc = subprocess.Popen(
            command(lake, target_url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    finished = subprocess.run(command(lake, target_url), capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert kills >= 2, "the load finished before it could be killed; make the lake bigger"
    assert entries_snapshot(target_url) == entries_snapshot(clean_target)
