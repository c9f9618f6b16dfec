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

from tests.helpers import rows, write_bronze

RUNS = ("20260111T031522Z", "20260118T031522Z")


def make_lake(lake: Path) -> None:
    for r, run in enumerate(RUNS):
        for part in range(1, 13):
            records = [
                {"date": f"2025-11-{part:02d}T06:{i // 60 % 60:02d}:{i % 60:02d}", "idMember": i, "idBranch": 57,
                 "device": "CATRACA 01", "entryAction": "Allowed", "nameMember": f"membro {i} run {r}"}
                for i in range(3000)
            ]  # fmt: skip
            write_bronze(str(lake), "entries", run, records, name=f"2025-11-{part:02d}_part-00001.jsonl.gz")


def command(lake: Path, target: str) -> list[str]:
    return [sys.executable, "-m", "evo_frames", "run", "--entity", "entries", "--lake", str(lake),
            "--target", target, "--batch-size", "2", "--json"]  # fmt: skip


def snapshot(target: str) -> dict[str, object]:
    return {
        "stg": rows(target, "SELECT entry_id, entry_local_date, run_id, _source_file, _source_line, "
                            "CAST(raw_data AS TEXT) AS raw FROM stg_evo.entries_raw ORDER BY 1, 2"),
        "core": rows(target, "SELECT * EXCLUDE (_loaded_at, _updated_at) FROM core.evo_entries ORDER BY 1, 2")
        if target.startswith("duckdb")
        else rows(target, "SELECT entry_id, entry_local_date, entry_date, member_id, member_name, _source_run_id FROM core.evo_entries "
                          "ORDER BY 1, 2"),
        "files": rows(target, "SELECT path, lines_read, rows_loaded, duplicates, rejects FROM evo_meta.files ORDER BY 1"),
    }  # fmt: skip


@pytest.mark.slow
def test_kill_anywhere_then_rerun_equals_clean_run(
    tmp_path: Path, target_url: str, request: pytest.FixtureRequest
) -> None:
    lake = tmp_path / "lake"
    make_lake(lake)
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
    assert snapshot(target_url) == snapshot(clean_target)
