"""Which database errors are worth retrying, and the retry loop with backoff.

Classification is by SQLSTATE where the driver gives one, and by ADBC status code where it does
not (connection-level failures arrive as ``IO`` with no SQLSTATE): never by message text alone.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import EvoFramesError, SinkError, Transient, TransientSinkError, redact

log = logging.getLogger("evo_frames")
T = TypeVar("T")

#: SQLSTATEs (or classes, by their first two characters) that a retry may get past
TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "25006",  # read_only_sql_transaction: a failover is in progress
        "55P03",  # lock_not_available
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now
        "53300",  # too_many_connections
    }
)
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08"})  # connection exceptions
#: ADBC status codes of failures without a SQLSTATE that mean "the connection is gone"
TRANSIENT_STATUS = frozenset({"IO", "TIMEOUT"})


def _status(error: BaseException) -> str | None:
    code = getattr(error, "status_code", None)
    return getattr(code, "name", None) if code is not None else None


def is_transient(error: BaseException) -> bool:
    """True for failovers, lost connections, deadlocks and serialization failures."""
    if isinstance(error, Transient):
        return True
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate:
        return sqlstate in TRANSIENT_SQLSTATES or sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
    status = _status(error)
    if status in TRANSIENT_STATUS:
        return True
    # adbc_ingest reports a read-only transaction with INVALID_STATE and no SQLSTATE
    return status == "INVALID_STATE" and "read-only transaction" in str(error)


#: SQLSTATE classes of errors caused by the data written: data exception, integrity violation
DATA_SQLSTATE_CLASSES = frozenset({"22", "23"})
#: ADBC status codes of errors caused by the data written
DATA_STATUS = frozenset({"INVALID_DATA", "INTEGRITY"})
#: DuckDB's exception classes (by name) for values it cannot store
DATA_EXCEPTIONS = frozenset({"ConversionException", "ConstraintException", "OutOfRangeException"})
#: how DuckDB over ADBC names those exceptions: status INVALID_ARGUMENT, the message starting so
DUCKDB_DATA_MESSAGES = ("Conversion Error:", "Constraint Error:", "Out of Range Error:")
#: how DuckDB's bulk append (ADBC ingest into an existing table) reports a key or NOT NULL
#: violation and a value its column type cannot hold: status INTERNAL, the message starting so
DUCKDB_APPEND_DATA_MESSAGES = (
    "Failed to append: PRIMARY KEY or UNIQUE constraint violation",
    "Failed to append: Duplicate key",
    "Failed to append: NOT NULL constraint failed",
    "type mismatch in AppendDataChunk",
)


def is_data_error(error: BaseException) -> bool:
    """True when ``error`` (or an error it was raised from) says a value could not be stored: a
    data exception or integrity violation (SQLSTATE class 22 or 23), ADBC ``INVALID_DATA`` or
    ``INTEGRITY``, DuckDB's conversion, constraint or out-of-range errors, or a Python
    ``ValueError``/``OverflowError`` while converting values. Never for a transient error."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, Transient) or (seen is not error and is_transient(seen)):
            return False
        sqlstate = getattr(seen, "sqlstate", None)
        if sqlstate and sqlstate[:2] in DATA_SQLSTATE_CLASSES:
            return True
        if _status(seen) in DATA_STATUS or type(seen).__name__ in DATA_EXCEPTIONS:
            return True
        if isinstance(seen, (ValueError, OverflowError)) and not isinstance(seen, EvoFramesError):
            return True
        status = _status(seen)
        if status in ("INVALID_ARGUMENT", "INTERNAL") and str(seen).startswith(DUCKDB_DATA_MESSAGES, len(status) + 2):
            return True  # DuckDB over ADBC: the kind of error is named only at the start of the message
        if status == "INTERNAL" and str(seen).startswith(DUCKDB_APPEND_DATA_MESSAGES, len(status) + 2):
            return True
        seen = seen.__cause__
    return False


def translate(error: BaseException, what: str, target: str) -> EvoFramesError:
    """A driver error as an evo-frames error naming the operation and the target."""
    if isinstance(error, EvoFramesError):
        return error
    first = redact(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
    sqlstate = getattr(error, "sqlstate", None)
    state = f" [SQLSTATE {sqlstate}]" if sqlstate else ""
    cls = TransientSinkError if is_transient(error) else SinkError
    return cls(f"{target}: {what} failed: {first}{state}")


def with_retries(
    action: Callable[[], T],
    *,
    attempts: int,
    on_retry: Callable[[BaseException], None],
    what: str,
    base_delay: float = 1.0,
    max_delay: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``action``; on a transient error call ``on_retry`` (reconnect) and try again.

    Delays grow exponentially with full jitter, capped at ``max_delay``. Permanent errors and the
    last transient one propagate.
    """
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as e:
            if attempt == attempts or not is_transient(e):
                raise
            delay = random.uniform(0, min(max_delay, base_delay * 2 ** (attempt - 1)))
            log.warning("%s failed (attempt %d/%d), retrying in %.1fs: %s", what, attempt, attempts, delay, e)
            on_retry(e)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


#: what libpq says when the server is gone, going or coming back (connection failures carry no
#: SQLSTATE in ADBC's error, so the text is all there is)
_CONNECT_TRANSIENT_TEXT = (
    "connection refused",
    "connection reset",
    "server closed the connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "terminating connection due to administrator command",
    "no connection to the server",
    "could not receive data from server",
    "could not send data to server",
    "timeout expired",
)
#: SQLSTATEs of a failed connect that mean "the server is failing over" (57P01-57P03, 08001, 08006)
CONNECT_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "08001", "08006"})


def is_transient_connect(error: BaseException) -> bool:
    """True when a failed connect may succeed once a failover or restart is over."""
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate in CONNECT_TRANSIENT_SQLSTATES:
        return True
    lowered = str(error).lower()
    return any(text in lowered for text in _CONNECT_TRANSIENT_TEXT)


def is_server_restarting(error: BaseException) -> bool:
    """True when the server answered that it is starting up or shutting down (57P01-57P03)."""
    lowered = str(error).lower()
    return getattr(error, "sqlstate", None) in {"57P01", "57P02", "57P03"} or (
        "the database system is starting up" in lowered or "the database system is shutting down" in lowered
    )


def connect_within(
    connect: Callable[[], T],
    *,
    budget: float,
    display: str,
    transient: Callable[[BaseException], bool] = is_transient_connect,
    base_delay: float = 0.5,
    max_delay: float = 15.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``connect()``, retried on transient connect failures until ``budget`` seconds have passed.

    Delays grow exponentially with full jitter, capped at ``max_delay`` and at the time left; each
    ``connect()`` is itself bounded by the driver's connect timeout. When the budget is spent the
    error is a :class:`SinkError` of one line naming ``display`` (which carries no password) and
    the time waited. Permanent failures (a wrong password, a missing database) raise at once.
    """
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return connect()
        except Exception as e:
            if not transient(e) and not transient(e.__cause__ or e):
                raise
            waited = clock() - started
            left = budget - waited
            if left <= 0:
                first = redact(str(e).strip().splitlines()[0]) if str(e).strip() else type(e).__name__
                raise SinkError(
                    f"gave up connecting to {display} after {waited:.0f}s (retry_wait = {budget:g}s, "
                    f"{attempt} attempts): {first}"
                ) from None
            cap = min(max_delay, base_delay * 2 ** (attempt - 1))
            delay = min(left, cap / 2 + random.uniform(0, cap / 2))
            log.warning("connecting to %s failed (attempt %d), retrying in %.1fs: %s", display, attempt, delay, e)
            sleep(delay)
