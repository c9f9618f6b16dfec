"""Config values never become SQL: a bad ``duckdb_memory_limit`` is exit 2, and runs nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.helpers import write_bronze

INJECTION = "1GB'; CREATE TABLE main.pwned(x int); --"


def run(tmp_path: Path, env_value: str | None, file_value: str | None) -> subprocess.CompletedProcess[str]:
    lake = tmp_path / "lake"
    write_bronze(str(lake), "entries", "20260111T031522Z", [{"date": "2025-11-01T06:00:00", "idMember": 1,
                 "idBranch": 57, "entryAction": "Allowed"}], name="2025-11-01_part-00001.jsonl.gz")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}
    args = [sys.executable, "-m", "evo_frames", "run"]
    if env_value is not None:
        env["EVO_FRAMES_DUCKDB_MEMORY_LIMIT"] = env_value
    if file_value is not None:
        config = tmp_path / "config.toml"
        config.write_text('[target]\nduckdb_memory_limit = """' + file_value + '"""\n')
        args += ["--config", str(config)]
    target = f"duckdb:///{tmp_path / 'evo.duckdb'}"
    return subprocess.run(
        [*args, "--entity", "entries", "--lake", str(lake), "--target", target],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def tables(path: Path) -> list[str]:
    if not path.exists():
        return []
    with duckdb.connect(str(path), read_only=True) as con:
        return [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]


@pytest.mark.parametrize("where", ["env", "file"])
def test_sql_in_duckdb_memory_limit_creates_nothing_and_exits_2(tmp_path: Path, where: str) -> None:
    done = run(tmp_path, INJECTION if where == "env" else None, INJECTION if where == "file" else None)
    assert done.returncode == 2, done.stderr
    assert "duckdb_memory_limit" in done.stderr and "512MiB" in done.stderr
    assert "pwned" not in tables(tmp_path / "evo.duckdb")


@pytest.mark.parametrize("where", ["env", "file"])
def test_lots_as_duckdb_memory_limit_exits_2_naming_the_setting(tmp_path: Path, where: str) -> None:
    done = run(tmp_path, "lots" if where == "env" else None, "lots" if where == "file" else None)
    assert done.returncode == 2, done.stderr
    assert "duckdb_memory_limit" in done.stderr and "'lots'" in done.stderr and "2GB" in done.stderr
    assert ("EVO_FRAMES_DUCKDB_MEMORY_LIMIT" in done.stderr) == (where == "env")
    assert ("config.toml" in done.stderr) == (where == "file")


def test_a_valid_memory_limit_loads(tmp_path: Path) -> None:
    done = run(tmp_path, "256MiB", None)
    assert done.returncode == 0, done.stderr
