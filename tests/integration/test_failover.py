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

from tests.helpers import rows, write_bronze
from tests.services import PostgresServer, ServiceError

RUNS = ("20260111T031522Z", "20260118T031522Z")


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
            "--target", target, "--batch-size", "1", "--json"]  # fmt: skip


def snapshot(target: str) -> dict[str, object]:
    return {
        "stg": rows(target, "SELECT entry_id, entry_local_date, run_id, _source_file, _source_line, "
                            "CAST(raw_data AS TEXT) AS raw FROM stg_evo.entries_raw ORDER BY 1, 2"),
        "core": rows(target, "SELECT entry_id, entry_local_date, entry_date, member_id, member_name, "
                             "_source_run_id FROM core.evo_entries ORDER BY 1, 2"),
        "files": rows(target, "SELECT path, lines_read, rows_loaded, duplicates, rejects FROM evo_meta.files "
                              "ORDER BY 1"),
    }  # fmt: skip


def loaded_files(target: str) -> int:
    try:
        return int(rows(target, "SELECT count(*) AS n FROM evo_meta.files")[0]["n"])
    except Exception:  # the schema does not exist yet
        return 0


@pytest.mark.slow
def test_server_restart_mid_run_is_waited_out(tmp_path: Path, private_pg: PostgresServer) -> None:
    lake = tmp_path / "lake"
    make_lake(lake)
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
    got, want = snapshot(target), snapshot(clean_target)
    assert got["files"] == want["files"]
    assert got == want
