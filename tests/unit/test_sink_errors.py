"""The sink's error boundary: what the driver raises becomes an evo-frames error naming the target
and the operation, transient where a retry may get past it; real DuckDB files and a real
PostgreSQL server, no mocks."""

from __future__ import annotations

import contextlib
from pathlib import Path

import polars as pl
import pytest

from evo_frames.errors import SinkError, TransientSinkError
from evo_frames.registry import discover
from evo_frames.retry import is_data_error, is_transient
from evo_frames.sinks import SqlSink, open_sink
from evo_frames.spec import Column, Table

KEYED = Table("err", "keyed", (Column("id", "bigint", nullable=False), Column("v", "text")), ("id",))


def _sink(url: str, read_only: bool = False) -> SqlSink:
    return open_sink(url, memory_limit="1GB", connect_timeout=10, statement_timeout=60, read_only=read_only)


def _with_keyed(sink: SqlSink) -> None:
    sink.execute(f"CREATE SCHEMA IF NOT EXISTS {KEYED.schema}")
    sink.execute(f"CREATE TABLE {KEYED.qualified} (id BIGINT PRIMARY KEY, v TEXT)")
    sink.execute(f"INSERT INTO {KEYED.qualified} VALUES (1, 'a')")
    sink.commit()


def test_a_statement_error_names_the_target_and_the_operation(target_url: str) -> None:
    with _sink(target_url) as sink, pytest.raises(SinkError) as caught:
        sink.execute("SELEC 1", "checking the syntax")
    error = caught.value
    assert not isinstance(error, TransientSinkError) and not is_transient(error)
    assert str(error).startswith(f"{sink.display}: checking the syntax failed: ")
    assert "\n" not in str(error)
    assert error.__cause__ is not None and type(error.__cause__).__module__.startswith("adbc_driver_manager")
    if sink.dialect.name == "postgresql":
        assert str(error).endswith("[SQLSTATE 42601]")


def test_a_query_without_a_description_is_named_by_its_first_line(target_url: str) -> None:
    with _sink(target_url) as sink, pytest.raises(SinkError, match=r": SELECT \* FROM missing_table failed: "):
        sink.query("SELECT * FROM missing_table\nWHERE true")


def test_a_duplicate_key_is_a_data_error_not_a_transient_one(target_url: str) -> None:
    with _sink(target_url) as sink:
        _with_keyed(sink)
        with pytest.raises(SinkError) as caught:
            sink.execute(f"INSERT INTO {KEYED.qualified} VALUES (1, 'again')", "inserting a duplicate")
    assert not is_transient(caught.value)
    assert is_data_error(caught.value)
    assert ": inserting a duplicate failed: " in str(caught.value)


def test_a_duplicate_key_in_a_direct_copy_means_a_concurrent_load(pg_url: str) -> None:
    """PostgreSQL copies rows it found new straight into their table: a key another transaction
    inserted after the probe fails the COPY, and the replay (which probes again) gets past it."""
    with _sink(pg_url) as sink:
        _with_keyed(sink)
        with pytest.raises(TransientSinkError) as caught:
            sink._append(KEYED, pl.DataFrame({"id": [1], "v": ["b"]}, schema={"id": pl.Int64, "v": pl.String}))
    assert str(caught.value) == (
        f"{sink.display}: copying into err.keyed: a concurrent load inserted one of its keys first"
    )
    assert getattr(caught.value.__cause__, "sqlstate", None) == "23505"


def test_a_duplicate_key_inserted_by_duckdb_is_not_transient(tmp_path: Path) -> None:
    """DuckDB has one writer: no concurrent load can have inserted the key."""
    with _sink(f"duckdb://{tmp_path / 'x.duckdb'}") as sink:
        _with_keyed(sink)
        with pytest.raises(SinkError) as caught:
            sink._append(KEYED, pl.DataFrame({"id": [1], "v": ["b"]}, schema={"id": pl.Int64, "v": pl.String}))
    assert not is_transient(caught.value) and is_data_error(caught.value)
    # new rows of the declared types go by DuckDB's bulk append straight into the table
    assert ': appending to err.keyed failed: INTERNAL: Failed to append: Duplicate key "id: 1"' in str(caught.value)


def test_a_terminated_session_is_transient(pg_url: str) -> None:
    """The server ends the session (a failover, an administrator): a reconnect and a replay may succeed."""
    sink = _sink(pg_url)
    # the session may end before or after this statement's answer reaches the client
    with contextlib.suppress(TransientSinkError):
        sink.execute("SELECT pg_terminate_backend(pg_backend_pid())", "ending the session")
    with pytest.raises(TransientSinkError, match=": counting on a lost session failed: "):
        sink.execute("SELECT 1", "counting on a lost session")
    sink.reconnect()  # what the retry loop does next
    assert sink.scalar("SELECT 1 AS one") == 1


def test_closing_a_session_the_server_ended_does_not_raise(pg_url: str) -> None:
    """The server rolls back what a lost session left open: closing it is not another error, and
    does not hide the one that made the caller close it."""
    sink = _sink(pg_url)
    sink.execute("CREATE TEMP TABLE t (x int)")  # a transaction is open
    with _sink(pg_url) as admin:
        pid = sink.scalar("SELECT pg_backend_pid() AS pid")
        admin.execute(f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(ZeroDivisionError), sink:
        raise ZeroDivisionError
    sink.close()  # closing twice is harmless


def test_a_write_in_a_read_only_transaction_is_transient(pg_url: str) -> None:
    """PostgreSQL refuses writes while a standby is being promoted: a retry may reach the new primary."""
    with _sink(pg_url, read_only=True) as sink, pytest.raises(TransientSinkError) as caught:
        sink.execute("CREATE TABLE t (a int)", "creating t")
    assert str(caught.value).endswith("[SQLSTATE 25006]")


def test_staging_into_a_read_only_transaction_is_transient(pg_url: str) -> None:
    with _sink(pg_url, read_only=True) as sink, pytest.raises(TransientSinkError, match=": staging _ef_x failed: "):
        sink.ingest("_ef_x", pl.DataFrame({"a": [1]}).to_arrow())


def test_reading_stg_that_is_missing_names_the_table(target_url: str) -> None:
    entity = next(iter(discover().values()))
    with _sink(target_url) as sink, pytest.raises(SinkError) as caught:
        next(sink.read_stg(entity, 100, 1 << 20))
    assert str(caught.value).startswith(f"{sink.display}: reading {entity.stg.qualified} failed: ")


def test_an_evo_frames_error_raised_inside_passes_through_with_its_cause(tmp_path: Path) -> None:
    """A read-only sink on a missing DuckDB file refuses to create it: that error of the project
    reaches the caller as it was raised, not remapped, and not made its own cause."""
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(SinkError) as caught:
        _sink(f"duckdb://{missing}", read_only=True).execute("SELECT 1")
    assert str(caught.value).startswith(f"no DuckDB database at {missing}; create it with evo-frames init")
    assert caught.value.__cause__ is None
    assert not missing.exists()
