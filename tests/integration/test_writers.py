"""Parallel writers (``--writers``): batches on several connections give the tables one writer gives.

Every bronze file is its own batch and the runs are loaded together, so batches holding the same
keys (re-sent, changed, or duplicated across files of one run) are in flight at the same time
and commit in any order. DuckDB always loads with one writer: there the test shows that asking
for more changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evo_frames.synth import generate
from tests.helpers import ENTITIES, load, scalar, table_rows, write_bronze

RECORDS = 600
NAMES = ("entries", "members")
BRANCH = 990001  # no generated entry has it


def _cross_file_duplicates(lake: str) -> None:
    """Entries sent again in other files of the same run and of an older run, with other content."""
    for run, device in (("20251104T000000Z", "newer"), ("20251101T000000Z", "older")):
        for part in range(3):
            lines = [
                {"date": f"2025-11-03T10:{i:02d}:00", "idMember": i, "idBranch": BRANCH, "device": "Catraca",
                 "entryType": "Entry", "entryAction": "Liberado", "nameMember": f"{device} part {part}"}
                for i in range(40)
            ]  # fmt: skip
            write_bronze(lake, "entries", run, lines, name=f"2025-11-03_part-{part:05d}.jsonl.gz")


def _tables(target: str) -> dict[str, list[tuple[object, ...]]]:
    got = {}
    for name in NAMES:
        entity = ENTITIES[name]
        lineage = [*entity.key_names, "run_id", "_source_file", "_source_line", "_content_hash"]
        got[entity.stg.qualified] = table_rows(target, entity.stg, lineage)
        for table in entity.core:
            got[table.qualified] = table_rows(target, table, [c.name for c in table.columns if c.type != "json"])
    return got


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("writers") / "lake")
    for name in NAMES:
        generate(root, name, RECORDS, seed=11, runs=3, resend_share=0.6, change_share=0.5)
    _cross_file_duplicates(root)
    return root


def test_four_writers_give_the_tables_of_one(
    lake: str, target_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    one = target_url
    if target_url.startswith("duckdb:"):
        four = f"duckdb://{tmp_path / 'four.duckdb'}"
    else:
        server = request.getfixturevalue("pg_server")
        name = f"{one.rsplit('/', 1)[1]}_w4"
        four = server.create_database(name)
        request.addfinalizer(lambda: server.drop_database(name))
    summaries = {}
    for url, writers in ((one, 1), (four, 4)):
        summaries[writers] = [load(lake, url, name, batch_size=1, writers=writers) for name in NAMES]
    assert _tables(four) == _tables(one)
    # the newer run wins whatever the commit order, and a key is stored once
    device = f"SELECT DISTINCT split_part(member_name, ' ', 1) AS d FROM core.evo_entries WHERE branch_id = {BRANCH}"
    assert scalar(four, device) == "newer"
    for a, b in zip(summaries[1], summaries[4], strict=True):
        assert (a.files_loaded, a.lines_read, a.rows_loaded, a.duplicates) == (
            b.files_loaded, b.lines_read, b.rows_loaded, b.duplicates
        )  # fmt: skip
        stg = ENTITIES[a.entity].stg.qualified
        assert b.tables[stg].inserted == scalar(four, f"SELECT count(*) FROM {stg}")
