"""Read commands (status, api.query, api.connect(read_only=True)) never write, never create a file,
and work for a PostgreSQL role that may only SELECT."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb
import pytest

from evo_frames import api
from evo_frames.config import load_settings
from evo_frames.errors import SinkError
from tests.helpers import R1, cli, entry, load, rows, sink_for, write_bronze

SCHEMAS = "SELECT table_schema, table_name FROM information_schema.tables ORDER BY 1, 2"


@pytest.fixture
def reader_url(pg_url: str) -> Iterator[str]:
    """A role of the test database that may only connect and SELECT (granted after the first load)."""
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with sink_for(pg_url) as sink:
        sink.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'r'")
        sink.commit()
    u = urlsplit(pg_url)
    yield urlunsplit(u._replace(netloc=f"{role}:r@{u.hostname}:{u.port}"))
    with sink_for(pg_url) as sink:
        sink.execute(f"DROP OWNED BY {role}")
        sink.execute(f"DROP ROLE {role}")
        sink.commit()


def test_never_initialised_duckdb_is_refused_and_not_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    st = cli("status", "--target", "duckdb:never/never.duckdb")
    assert st.returncode == 1 and "no DuckDB database at never/never.duckdb" in st.stderr and "init" in st.stderr
    with pytest.raises(SinkError, match="evo-frames init"):
        api.query("SELECT 1", target="duckdb:data/evo.duckdb")
    assert list(tmp_path.iterdir()) == []
    made = cli("init", "--target", "duckdb:new/evo.duckdb")
    assert made.returncode == 0 and f"creating new database at {tmp_path}/new/evo.duckdb" in made.stderr


def test_duckdb_read_beside_a_writer_names_the_lock(tmp_path: Path) -> None:
    target = f"duckdb://{tmp_path / 't.duckdb'}"
    write_bronze(str(tmp_path), "entries", R1, [entry(1, 1)])
    load(tmp_path, target)
    holder = duckdb.connect(str(tmp_path / "t.duckdb"))  # this process writes
    try:
        st = cli("status", "--target", target, "--lake", str(tmp_path))
        assert st.returncode == 1
        assert st.stderr.strip().splitlines() == [
            f"error: {tmp_path / 't.duckdb'} is locked by another process (pid {os.getpid()}); "
            "wait for it to finish or stop it, then retry"
        ]
    finally:
        holder.close()
    before = (tmp_path / "t.duckdb").stat().st_mtime_ns
    st = cli("status", "--target", target, "--lake", str(tmp_path), "--json")
    assert st.returncode == 0, st.stderr
    assert (tmp_path / "t.duckdb").stat().st_mtime_ns == before and not (tmp_path / "t.duckdb.wal").exists()


def test_postgres_never_initialised_then_select_only(tmp_path: Path, pg_url: str, reader_url: str) -> None:
    st = cli("status", "--target", pg_url)
    assert st.returncode == 1 and "is not initialised" in st.stderr and "evo-frames init" in st.stderr
    assert [r for r in rows(pg_url, SCHEMAS) if r["table_schema"] in ("evo_meta", "core", "stg_evo")] == []

    write_bronze(str(tmp_path), "entries", R1, [entry(1, 1), "{bad"])
    load(tmp_path, pg_url)
    role = urlsplit(reader_url).username
    with sink_for(pg_url) as sink:
        for schema in ("evo_meta", "core", "stg_evo"):
            sink.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            sink.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
        sink.commit()
    before = rows(pg_url, SCHEMAS)
    st = cli("status", "--target", reader_url, "--lake", str(tmp_path), "--json", "--loads", "5", "--rejects", "5")
    assert st.returncode == 0, st.stderr
    report = json.loads(st.stdout)
    assert report["entities"]["entries"]["tables"]["core.evo_entries"]["rows"] == 1
    assert [r["status"] for r in report["loads"]] == ["succeeded"] and len(report["rejects"]) == 1
    assert api.query("SELECT count(*) AS n FROM core.evo_entries", target=reader_url)["n"][0] == 1
    with api.connect(load_settings({"target": pg_url}), read_only=True) as sink, pytest.raises(SinkError):
        sink.execute("CREATE TABLE core.x (a int)")  # even an owner cannot write through a read-only sink
    assert rows(pg_url, SCHEMAS) == before
