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
