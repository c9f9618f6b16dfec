"""A PostgreSQL failover (the server stops and comes back a few seconds later) is waited out.

The test runs its own PostgreSQL server: stopping the shared session server would break the
other tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import NOVEMBER, entries_snapshot, rows, write_entries_lake
from tests.services import PostgresServer, ServiceError


@pytest.fixture
def private_pg() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer.start()
    except ServiceError as e:
        pytest.fail(f"could not start a private PostgreSQL server: {e}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def command(lake: Path, target: str) -> list[str]:
    return [sys.executable, "-m", "evo_frames", "run", "--entity", "entries", "--lake", str(lake),
            "--target", target, "--batch-size", "1", "--json"]  # fmt: skip


def loaded_files(target: str) -> int:
    try:
        return int(rows(target, "SELECT count(*) AS n FROM evo_meta.files")[0]["n"])
    except Exception:  # the schema does not exist yet
        return 0


@pytest.mark.slow
def test_server_restart_mid_run_is_waited_out(tmp_path: Path, private_pg: PostgresServer) -> None:
    lake = tmp_path / "lake"
    write_entries_lake(lake, NOVEMBER, 3000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}
    clean_target = private_pg.create_database("clean")
    subprocess.run(command(lake, clean_target), check=True, capture_output=True, env=env, timeout=300)
    target = private_pg.url

    proc = subprocess.Popen(command(lake, target), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while loaded_files(target) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "the run finished before the server could be stopped; make the lake bigger"
        stop = [str(private_pg.bin_dir / "pg_ctl"), "stop", "-D", str(private_pg.data_dir), "-w", "-m", "fast"]
        private_pg._run(stop, 60, "pg_ctl stop -m fast")
        time.sleep(3)
        assert proc.poll() is None, "the run gave up while the server was down"
        private_pg._pg_ctl_start(60)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    got, want = entries_snapshot(target), entries_snapshot(clean_target)
    assert got["files"] == want["files"]
    assert got == want
