"""`evo-frames bench` runs end to end and reports every stage (figures are printed, never asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def bench(*args: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}
    r = subprocess.run([sys.executable, "-m", "evo_frames", "bench", "-n", "300", "--json", *args],
                       capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def stages(report: dict[str, object]) -> dict[str, dict[str, float]]:
    (entity,) = report["entities"]  # type: ignore[misc]
    return {s["name"]: s for s in entity["stages"]}


def test_bench_duckdb_with_one_file() -> None:
    report = bench("-e", "entries", "--one-file")
    got = stages(report)
    assert set(got) == {
        "decode (1 core, no database)", "decode limit: gunzip + orjson", "first load (STG + CORE)",
        "reload, mostly unchanged",
        "transform --full-refresh", "DuckDB read_json limit", "first load, run 1 as one file",
    }  # fmt: skip
    assert all(s["records"] > 0 and s["seconds"] > 0 for s in got.values())
    assert all(s["peak_rss_mb"] > 0 for name, s in got.items() if name != "DuckDB read_json limit")
    assert got["first load, run 1 as one file"]["records"] == got["first load (STG + CORE)"]["records"]
    assert got["decode limit: gunzip + orjson"]["records"] == got["first load (STG + CORE)"]["records"]
    # DuckDB's own read_json of the same run-1 files: every line, as the first load reads them
    assert got["DuckDB read_json limit"]["records"] == got["first load (STG + CORE)"]["records"]
    assert "first load / DuckDB read_json limit" in report["entities"][0]["ratios"]  # type: ignore[index]


@pytest.mark.postgres
def test_bench_postgres_has_the_copy_limits_and_cleans_up(pg_server: object) -> None:
    admin = pg_server.url  # type: ignore[attr-defined]
    report = bench("-e", "members", "--target", admin, "--part-records", "100")
    got = stages(report)
    assert {"decode / gunzip + orjson"} <= set(report["entities"][0]["ratios"])  # type: ignore[index]
    assert got["first load, run 1 as parts of 100+ records"]["records"] == got["first load (STG + CORE)"]["records"]
    assert all(s["peak_rss_mb"] > 0 for name, s in got.items() if "copy" not in name)
    # the limits copy the very rows the first load wrote: the distinct members of run 1
    assert got["STG+CORE \\copy limit"]["records"] == 300
    assert got["one-table \\copy (key + JSONB)"]["records"] == 300
    assert got["STG+CORE \\copy limit"]["seconds"] > 0
    ratios = report["entities"][0]["ratios"]  # type: ignore[index]
    assert {"first load / STG+CORE \\copy limit", "first load / one-table \\copy"} <= set(ratios)
    for writers in (1, 2, 4):
        assert got[f"first load, --writers {writers}"]["records"] == got["first load (STG + CORE)"]["records"]
    from tests.helpers import rows

    left = rows(admin, "SELECT datname FROM pg_database WHERE datname LIKE 'evo_frames_bench_%'")
    assert left == []
