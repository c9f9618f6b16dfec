"""Which database errors are retried, which are blamed on the data, and how they are worded.

The errors are the drivers' own: DuckDB's raised by a real in-memory DuckDB (natively and over
ADBC), PostgreSQL's built as the ADBC driver builds them (an ``adbc_driver_manager`` error with
the server's SQLSTATE), since a unit test starts no server.
"""

from __future__ import annotations

import duckdb
import pytest
from adbc_driver_duckdb import dbapi as duckdb_adbc
from adbc_driver_manager import AdbcStatusCode, IntegrityError, OperationalError, ProgrammingError

from evo_frames.errors import SinkError, TransientSinkError
from evo_frames.retry import (
    is_data_error,
    is_server_restarting,
    is_transient,
    is_transient_connect,
    translate,
    with_retries,
)


def pg_error(sqlstate: str | None, status: AdbcStatusCode = AdbcStatusCode.UNKNOWN, message: str = "boom") -> Exception:
    """An error as the PostgreSQL ADBC driver raises it: its status code and the server's SQLSTATE."""
    return OperationalError(message, status_code=status, sqlstate=sqlstate)


def duckdb_adbc_error(sql: str) -> Exception:
    """The error DuckDB over ADBC raises for ``sql`` on a fresh in-memory database."""
    with duckdb_adbc.connect() as conn, conn.cursor() as cur:
        try:
            cur.execute(sql)
            cur.fetchall()
        except Exception as e:
            return e
    raise AssertionError(f"{sql!r} did not fail")


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("40001", True),  # serialization_failure
        ("40P01", True),  # deadlock_detected
        ("25006", True),  # read_only_sql_transaction: failover in progress
        ("55P03", True),  # lock_not_available
        ("57P01", True),  # admin_shutdown
        ("53300", True),  # too_many_connections
        ("08006", True),  # class 08: connection_failure
        ("08000", True),
        ("23505", False),  # unique_violation: retrying changes nothing
        ("22P02", False),  # invalid_text_representation
        ("42P01", False),  # undefined_table
        ("28P01", False),  # invalid_password
    ],
)
def test_transient_by_sqlstate(sqlstate: str, transient: bool) -> None:
    assert is_transient(pg_error(sqlstate)) is transient


def test_a_sqlstate_decides_over_the_status_code() -> None:
    assert not is_transient(pg_error("42P01", AdbcStatusCode.IO))


@pytest.mark.parametrize(
    ("status", "message", "transient"),
    [
        (AdbcStatusCode.IO, "server closed the connection unexpectedly", True),
        (AdbcStatusCode.TIMEOUT, "timeout", True),
        # adbc_ingest on a demoted primary: INVALID_STATE and only the text says why
        (AdbcStatusCode.INVALID_STATE, "cannot execute COPY FROM in a read-only transaction", True),
        (AdbcStatusCode.INVALID_STATE, "no statement prepared", False),
        (AdbcStatusCode.INVALID_ARGUMENT, "server closed the connection", False),
    ],
)
def test_without_a_sqlstate_the_status_code_decides(status: AdbcStatusCode, message: str, transient: bool) -> None:
    assert is_transient(pg_error(None, status, message)) is transient


def test_our_transient_errors_are_transient() -> None:
    assert is_transient(TransientSinkError("x"))
    assert not is_transient(SinkError("x"))
    assert not is_transient(ValueError("x"))


@pytest.mark.parametrize("sqlstate", ["23505", "23502", "22003", "22P02"])
def test_data_exceptions_and_integrity_violations_are_data_errors(sqlstate: str) -> None:
    assert is_data_error(pg_error(sqlstate))


@pytest.mark.parametrize("sqlstate", ["40001", "08006", "42P01", None])
def test_other_sqlstates_are_not_data_errors(sqlstate: str | None) -> None:
    assert not is_data_error(pg_error(sqlstate))


def test_adbc_data_status_codes_are_data_errors() -> None:
    assert is_data_error(IntegrityError("dup", status_code=AdbcStatusCode.INTEGRITY))
    assert is_data_error(ProgrammingError("bad", status_code=AdbcStatusCode.INVALID_DATA))


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT CAST('x' AS INTEGER)",  # ConversionException
        "SELECT CAST(2147483647 AS INTEGER) + CAST(1 AS INTEGER)",  # OutOfRangeException
        "CREATE TABLE t (a INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (1)",  # ConstraintException
    ],
)
def test_duckdb_value_errors_are_data_errors_natively_and_over_adbc(sql: str) -> None:
    with pytest.raises(duckdb.Error) as native:
        duckdb.connect().execute(sql).fetchall()
    assert is_data_error(native.value), type(native.value).__name__
    over_adbc = duckdb_adbc_error(sql)
    assert is_data_error(over_adbc), str(over_adbc)
    assert not is_transient(over_adbc)


def test_a_duckdb_catalog_error_is_not_a_data_error() -> None:
    assert not is_data_error(duckdb_adbc_error("SELECT * FROM missing_table"))
    with pytest.raises(duckdb.CatalogException) as native:
        duckdb.connect().execute("SELECT * FROM missing_table")
    assert not is_data_error(native.value)


def test_a_data_error_is_found_in_the_cause_chain_unless_a_link_is_transient() -> None:
    try:
        try:
            int("x")
        except ValueError as e:
            raise SinkError("write failed") from e
    except SinkError as wrapped:
        assert is_data_error(wrapped)
    transient = TransientSinkError("lost connection")
    transient.__cause__ = pg_error("23505")
    assert not is_data_error(transient)
    failover = SinkError("ingest failed")
    failover.__cause__ = pg_error("57P01")
    failover.__cause__.__cause__ = pg_error("23505")
    assert not is_data_error(failover)


def test_translate_names_target_operation_and_sqlstate_and_hides_passwords() -> None:
    error = pg_error("23505", message="duplicate key value\nDETAIL: Key (id)=(1) already exists.")
    out = translate(error, "upsert core.t", "postgresql://etl@db/x")
    assert type(out) is SinkError
    assert str(out) == "postgresql://etl@db/x: upsert core.t failed: duplicate key value [SQLSTATE 23505]"
    out = translate(pg_error("40P01", message="deadlock; see postgresql://etl:hunter22@db/x"), "COPY", "db")
    assert isinstance(out, TransientSinkError)
    assert "hunter22" not in str(out) and "[SQLSTATE 40P01]" in str(out)


def test_translate_keeps_our_errors_and_names_a_silent_one_by_type() -> None:
    ours = SinkError("already ours")
    assert translate(ours, "x", "y") is ours
    assert str(translate(RuntimeError(""), "init", "duckdb:x.duckdb")) == "duckdb:x.duckdb: init failed: RuntimeError"


def test_with_retries_retries_transient_errors_then_returns() -> None:
    outcomes: list[Exception | str] = [pg_error("40001"), pg_error("08006"), "done"]
    retried: list[BaseException] = []
    delays: list[float] = []

    def action() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = with_retries(action, attempts=5, on_retry=retried.append, what="batch", base_delay=1, sleep=delays.append)
    assert result == "done"
    assert [getattr(e, "sqlstate", None) for e in retried] == ["40001", "08006"]
    # full jitter: the n-th delay lies in [0, base * 2 ** (n - 1)]
    assert len(delays) == 2 and 0 <= delays[0] <= 1 and 0 <= delays[1] <= 2


def test_with_retries_raises_a_permanent_error_at_once_and_the_last_transient_one() -> None:
    calls: list[int] = []

    def permanent() -> None:
        calls.append(1)
        raise pg_error("23505")

    with pytest.raises(OperationalError):
        with_retries(permanent, attempts=5, on_retry=lambda e: None, what="batch", sleep=lambda s: None)
    assert len(calls) == 1

    def transient() -> None:
        calls.append(1)
        raise pg_error("40001")

    calls.clear()
    with pytest.raises(OperationalError, match="boom"):
        with_retries(transient, attempts=3, on_retry=lambda e: None, what="batch", sleep=lambda s: None)
    assert len(calls) == 3


@pytest.mark.parametrize(
    ("error", "transient", "restarting"),
    [
        (pg_error("57P03", message="the database system is starting up"), True, True),
        (pg_error("08001", message="could not connect"), True, False),
        (pg_error(None, message='connection to server at "db" failed: Connection refused'), True, False),
        (pg_error(None, message="FATAL: the database system is shutting down"), True, True),
        (pg_error("28P01", message='password authentication failed for user "etl"'), False, False),
        (pg_error("3D000", message='database "nope" does not exist'), False, False),
    ],
)
def test_connect_failures_worth_waiting_for(error: Exception, transient: bool, restarting: bool) -> None:
    assert is_transient_connect(error) is transient
    assert is_server_restarting(error) is restarting
