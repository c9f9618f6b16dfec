"""Golden end-to-end checks on generated bronze: counts, reruns, and DuckDB/PostgreSQL parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evo_frames.synth import generate
from tests.helpers import ENTITIES, load, rows, scalar, table_rows

RECORDS = 1500


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, int]]:
    root = str(tmp_path_factory.mktemp("generated") / "lake")
    distinct = {e: generate(root, e, RECORDS, seed=7, runs=3, resend_share=0.3).distinct for e in ENTITIES}
    return root, distinct


def test_counts_equal_distinct_records_and_rerun_changes_nothing(
    lake: tuple[str, dict[str, int]], target_url: str
) -> None:
    root, distinct = lake
    for name, entity in ENTITIES.items():
        s = load(root, target_url, name)
        assert s.rejects == 0 and s.lines_read == s.rows_loaded + s.duplicates
        for table in (entity.stg, entity.core[0]):
            assert scalar(target_url, f"SELECT count(*) FROM {table.qualified}") == distinct[name], table.qualified
        for child in entity.core[1:]:
            assert scalar(target_url, f"SELECT count(*) FROM {child.qualified}") > 0, child.qualified
        again = load(root, target_url, name)
        assert (again.files_loaded, again.lines_read) == (0, 0)


def test_duckdb_and_postgresql_hold_the_same_data(
    lake: tuple[str, dict[str, int]], pg_url: str, tmp_path: Path
) -> None:
    root, _ = lake
    duck = f"duckdb://{tmp_path / 'parity.duckdb'}"
    for name in ENTITIES:
        load(root, duck, name)
        load(root, pg_url, name)
    for entity in ENTITIES.values():
        stg_cols = [*entity.key_names, "run_id", "_source_file", "_source_line", "_content_hash"]
        assert table_rows(duck, entity.stg, stg_cols) == table_rows(pg_url, entity.stg, stg_cols), entity.stg.qualified
        for table in entity.core:
            cols = [c.name for c in table.columns if c.type != "json"]
            assert table_rows(duck, table, cols) == table_rows(pg_url, table, cols), table.qualified
            for c in (c.name for c in table.columns if c.type == "json"):
                # JSON text may differ in spacing: compare parsed documents
                order = ", ".join(table.primary_key)
                sql_d = f'SELECT CAST("{c}" AS TEXT) AS v FROM {table.qualified} ORDER BY {order}'
                docs = [[json.loads(r["v"]) if r["v"] else None for r in rows(t, sql_d)] for t in (duck, pg_url)]
                assert docs[0] == docs[1], f"{table.qualified}.{c}"
