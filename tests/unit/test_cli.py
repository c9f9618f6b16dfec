"""Command-line behaviour: usage errors exit 2 naming the option, failures exit 1 in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}
    return subprocess.run(
        [sys.executable, "-m", "evo_frames", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unknown_entity_exits_2_with_valid_values(tmp_path: Path) -> None:
    r = cli("run", "--entity", "invoices", cwd=tmp_path)
    assert r.returncode == 2
    assert "--entity" in r.stderr and "members, sales, entries, prospects, all" in r.stderr


def test_bad_date_and_bad_number_exit_2(tmp_path: Path) -> None:
    r = cli("run", "--entity", "entries", "--since", "11/01/2026", cwd=tmp_path)
    assert r.returncode == 2 and "--since" in r.stderr and "YYYY-MM-DD" in r.stderr
    r = cli("run", "--entity", "entries", "--batch-size", "0", cwd=tmp_path)
    assert r.returncode == 2 and "--batch-size" in r.stderr


def test_conflicting_options_exit_2(tmp_path: Path) -> None:
    r = cli("run", "--entity", "entries", "--run-id", "20260111T031522Z", "--all-runs", cwd=tmp_path)
    assert r.returncode == 2 and "--run-id and --all-runs conflict" in r.stderr


def test_bad_config_key_exits_2(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[load]\nworkerz = 2\n")
    r = cli("run", "--entity", "entries", cwd=tmp_path)
    assert r.returncode == 2 and "workerz" in r.stderr and "config.toml" in r.stderr
    assert "Traceback" not in r.stderr


def test_unknown_target_scheme_exits_2(tmp_path: Path) -> None:
    r = cli("init", "--target", "mysql://u:topsecret@h/db", cwd=tmp_path)
    assert r.returncode == 2 and "unknown target" in r.stderr and "postgresql://" in r.stderr
    assert "topsecret" not in r.stderr


def test_empty_lake_says_how_to_make_sample_data(tmp_path: Path) -> None:
    r = cli("run", "--entity", "entries", "--lake", str(tmp_path / "lake"), "--target", "duckdb:t.duckdb", cwd=tmp_path)
    assert r.returncode == 1
    assert "no bronze files" in r.stderr and "evo-frames synth --lake" in r.stderr
    assert "Traceback" not in r.stderr


def test_version(tmp_path: Path) -> None:
    r = cli("--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("evo-frames ")
