"""Command-line behaviour: usage errors exit 2 naming the option, failures exit 1 in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import rows, scalar


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


# A fifth entity the engine has never heard of: one module declares it, another its sample.
VISITS = """
import polars as pl

from evo_frames import expr as E
from evo_frames.spec import Column, Entity, Table

KEY = (Column("visit_id", "bigint", nullable=False),)
VISITS = Table(
    "core",
    "evo_visits",
    (*KEY, Column("branch_id", "bigint", source="idBranch"), Column("visit_date", "timestamptz", source="visitDate")),
    primary_key=("visit_id",),
)


def keys(records, ctx):
    return records.with_columns(visit_id=E.bigint("idVisit")).with_columns(
        _key_error=pl.when(pl.col("visit_id").is_null()).then(pl.lit("key field idVisit is not an integer"))
    )


def transform(records, ctx):
    return {
        VISITS.qualified: records.select(
            "visit_id",
            E.bigint("idBranch").alias("branch_id"),
            E.timestamp("visitDate", ctx.source_timezone).alias("visit_date"),
        )
    }


RECORD = pl.Struct({"idVisit": pl.String, "idBranch": pl.String, "visitDate": pl.String})
ENTITY = Entity(name="visits", record=RECORD, key=KEY, keys=keys, core=(VISITS,), transform=transform)
"""
VISITS_SAMPLE = """
import polars as pl

from evo_frames.spec import Sample
from evo_frames.synth import kit as s


def build(f, populations):
    d = f.at("i")
    fields = [
        s.F("idVisit", s.jn(pl.col("i") + 1)),
        s.F("idBranch", s.jn(s.home_branch(f, "visit", "i") + 1)),
        s.F("visitDate", s.ts(d, "v.date", pl.col("t"))),
    ]
    return s.line(f, fields, pl.lit(False))


SAMPLE = Sample(entity="visits", build=build, part_size=10, batch_rows=25, page_size=10, min_span=7 * 86_400)
"""


def test_an_entity_declared_outside_the_engine_is_synthesized_and_loaded(tmp_path: Path) -> None:
    package = tmp_path / "more_transforms"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "visits.py").write_text(VISITS)
    (package / "visits_sample.py").write_text(VISITS_SAMPLE)
    env = {"EVO_FRAMES_TRANSFORMS": "more_transforms", "PYTHONPATH": str(tmp_path)}
    lake, target = str(tmp_path / "lake"), f"duckdb:{tmp_path / 'evo.duckdb'}"

    r = cli("run", "--entity", "members", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "unknown entity 'members'; valid: visits, all" in r.stderr
    r = cli("synth", "--lake", lake, "--entity", "all", "--records", "40", "--json", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert [(e["entity"], e["distinct"]) for e in json.loads(r.stdout)] == [("visits", 42)]
    r = cli("run", "--entity", "all", "--lake", lake, "--target", target, "--json", cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr

    # run 1: 40 records; run 2 re-sends 8 of them and adds 2 new ones
    got = rows(
        target, "SELECT count(*) AS n, count(DISTINCT visit_id) AS ids, min(visit_id) AS first FROM core.evo_visits"
    )
    assert got == [{"n": 42, "ids": 42, "first": 1}]
    assert scalar(target, "SELECT count(*) FROM stg_evo.visits_raw") == 42
    assert scalar(target, "SELECT count(*) FROM core.evo_visits WHERE branch_id IS NULL OR visit_date IS NULL") == 0


def test_a_polars_error_in_a_transform_is_a_transform_error_naming_entity_module_and_file(tmp_path: Path) -> None:
    package = tmp_path / "more_transforms"
    package.mkdir()
    (package / "__init__.py").write_text("")
    # a transform bug: a column the records do not have
    (package / "visits.py").write_text(VISITS.replace('E.bigint("idBranch")', 'E.bigint("idBranchTypo")'))
    (package / "visits_sample.py").write_text(VISITS_SAMPLE)
    env = {"EVO_FRAMES_TRANSFORMS": "more_transforms", "PYTHONPATH": str(tmp_path)}
    lake, target = str(tmp_path / "lake"), f"duckdb:{tmp_path / 'evo.duckdb'}"
    assert cli("synth", "--lake", lake, "--records", "40", "--runs", "1", cwd=tmp_path, env=env).returncode == 0

    r = cli("run", "--entity", "visits", "--lake", lake, "--target", target, cwd=tmp_path, env=env)
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("error: transform visits (more_transforms.visits) failed on "), line
    assert "ColumnNotFoundError" in line and "idBranchTypo" in line and "fix the transform" in line
    assert "entity=visits" in line  # the file the records came from
    assert "rerun with --verbose" not in line and "Traceback" not in r.stderr
    assert scalar(target, "SELECT count(*) FROM core.evo_visits") == 0
