"""The connection to a target: opening it, transactions, and mapping driver errors at one boundary.

Every statement the sink runs goes through :meth:`Connection.execute`, :meth:`~Connection.query`,
:meth:`~Connection.ingest` or :meth:`~Connection.commit`, and each of them maps what the driver
raises in one place, :meth:`Connection._errors`: a driver error becomes a
:class:`~evo_frames.errors.SinkError` (a :class:`~evo_frames.errors.TransientSinkError` when a
retry may get past it, see :func:`evo_frames.retry.translate`) naming the target and the
operation; an evo-frames error raised inside passes through unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self
from zoneinfo import available_timezones

import polars as pl
import pyarrow as pa

from ..errors import ConfigError, EvoFramesError, TransientSinkError
from ..spec import Table
from .dialect import Dialect
from .fresh import FreshKeys
from .quoting import qt, select_casts

log = logging.getLogger("evo_frames")

#: the characters of an IANA zone name (checked before a name goes into ``SET TIME ZONE``)
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-/]+")

#: SQLSTATE of a unique violation: with ``concurrent=``, another transaction wrote the key first
UNIQUE_VIOLATION = "23505"


def arrow(frame: pl.DataFrame) -> pa.Table:
    """A frame as Arrow for the driver."""
    # large types are what the drivers accept from Polars without surprises (stack-notes §3)
    return frame.to_arrow()


class Connection:
    """A target database behind an ADBC DB-API connection, opened on first use.

    Subclasses provide :meth:`_connect` and the dialect.
    """

    dialect: Dialect

    def __init__(self, url: str, display: str, read_only: bool = False) -> None:
        self.url = url
        self.display = display
        #: the target's URL as a report shows it: without a password
        self.public_url = url
        #: never writes: DDL and DML fail (``status``, ``query``, exploration)
        self.read_only = read_only
        self._conn: Any = None
        #: partitions known to exist in this session (forgotten on rollback and reconnect)
        self._partitions: set[tuple[str, str]] = set()
        #: keys certainly new, by what this session wrote (forgotten on rollback and reconnect)
        self._fresh = FreshKeys()

    def _connect(self) -> Any:  # pragma: no cover - each target implements it
        raise NotImplementedError

    def database_url(self, name: str, folder: Path) -> str:  # pragma: no cover - each target implements it
        """The URL of a database ``name`` beside this one: on the same server, or a file in ``folder``."""
        raise NotImplementedError

    def _translate(self, error: Exception, what: str) -> EvoFramesError:
        """Map a driver error to an evo-frames error (see ``retry.classify``)."""
        from ..retry import translate

        return translate(error, what, self.display)

    @contextlib.contextmanager
    def _errors(self, what: str, *, concurrent: str | None = None) -> Iterator[None]:
        """The error boundary: a driver error raised inside becomes an evo-frames error naming
        ``what`` and the target; an evo-frames error passes through as it is.

        ``concurrent``: what a unique violation means here (another transaction inserted the
        key after this one looked): it becomes a :class:`TransientSinkError` that a replay gets
        past, since the replay finds the key stored.
        """
        try:
            yield
        except EvoFramesError:
            raise
        except Exception as e:
            if concurrent and getattr(e, "sqlstate", None) == UNIQUE_VIOLATION:
                raise TransientSinkError(f"{self.display}: {what}: {concurrent}") from e
            raise self._translate(e, what) from e

    def _select_casts(self, table: Table, alias: str = "s") -> str:
        """The select list casting staged ``alias`` columns to ``table``'s SQL types."""
        return select_casts(self.dialect, table, alias)

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
            with self._conn.cursor() as cur:
                for stmt in (*self.dialect.session_sql, *(self.dialect.read_only_sql if self.read_only else ())):
                    cur.execute(stmt)
            self._conn.commit()
        return self._conn

    def default_writers(self) -> int:
        """Writers when none are asked for: one per core, within half the server's free connections."""
        if not self.dialect.parallel_writers:
            return 1
        free = self.scalar(
            "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS free"
        )
        return max(1, min(os.cpu_count() or 1, int(free) // 2))

    def fork(self) -> Self:
        """Another sink on the same target, with its own connection (opened on first use)."""
        other = copy.copy(self)
        other._conn = None
        other._partitions = set()
        # what one writer knows of its own writes says nothing of the others'
        other._fresh = FreshKeys()
        for sink in (self, other):
            sink._fresh.disable()
        return other

    def reconnect(self) -> None:
        """Drop the connection (and its temp tables); the next use opens a fresh one."""
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # the connection is already broken; nothing to save
                log.debug("closing a broken connection failed", exc_info=True)
        self._conn = None
        self._partitions.clear()
        self._fresh.forget()

    def close(self) -> None:
        """Roll back what is open and close; a session the server already ended closes quietly
        (the server rolled it back), so closing never hides the error that led to it."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        for step in (conn.rollback, conn.close):
            try:
                step()
            except Exception as e:  # the driver's own types; the session is gone either way
                log.debug("%s: closing the session: %s", self.display, e)  # the log handler redacts

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_time_zone(self, zone: str) -> None:
        """Compute and show times in ``zone`` (an IANA name) for the rest of the session."""
        if not _ZONE_NAME.fullmatch(zone) or zone not in available_timezones():
            raise ConfigError(f"time zone {zone!r} is not an IANA time zone; use e.g. 'America/Sao_Paulo'")
        self.execute(self.dialect.time_zone_sql.format(zone), f"setting the session time zone to {zone}")

    def execute(self, sql: str, what: str | None = None) -> int:
        """Run one statement; return its row count."""
        with self._errors(what or sql.split("\n", 1)[0][:120]), self.conn.cursor() as cur:
            cur.execute(sql)
            return int(cur.rowcount) if cur.rowcount is not None and cur.rowcount >= 0 else 0

    def query(self, sql: str, what: str | None = None) -> pa.Table:
        """Run a query and return its result as Arrow."""
        with self._errors(what or sql.split("\n", 1)[0][:120]), self.conn.cursor() as cur:
            cur.execute(sql)
            table: pa.Table = cur.fetch_arrow_table()
            return table

    def scalar(self, sql: str) -> Any:
        """The first value of the first row of a query (None without rows)."""
        rows = self.query(sql).to_pylist()
        return next(iter(rows[0].values())) if rows else None

    def has_rows(self, table: Table) -> bool:
        """Whether ``table`` holds any row."""
        return bool(self.query(f"SELECT 1 AS x FROM {qt(table)} LIMIT 1").num_rows > 0)

    def count_rows(self, table: Table) -> int:
        """The rows of ``table``."""
        return int(self.scalar(f"SELECT count(*) FROM {qt(table)}") or 0)

    def ingest(self, name: str, data: pa.Table | pa.RecordBatchReader) -> None:
        """Stage Arrow data into a TEMP table ``name`` (replaced if it exists)."""
        with self._errors(f"staging {name}"), self.conn.cursor() as cur:
            cur.adbc_ingest(name, data, mode="replace", temporary=True)

    @contextlib.contextmanager
    def autocommit(self) -> Iterator[None]:
        """Run statements that refuse a transaction block (VACUUM, CREATE DATABASE, …)."""
        self.commit()
        self.conn.adbc_connection.set_autocommit(True)
        try:
            yield
        finally:
            if self._conn is not None:
                self._conn.adbc_connection.set_autocommit(False)

    def begin(self) -> None:
        # ADBC DB-API connections run with autocommit off: a transaction is always open
        self.conn  # noqa: B018 - opens the connection

    def commit(self) -> None:
        with self._errors("commit"):
            self.conn.commit()
        self._fresh.commit()

    def rollback(self) -> None:
        if self._conn is None:
            return
        # partitions created in the transaction are gone with it, and so are its rows
        self._partitions.clear()
        self._fresh.forget()
        try:
            self._conn.rollback()
        except Exception:  # a dead connection cannot roll back; reconnect() will replace it
            log.debug("rollback failed", exc_info=True)
            self.reconnect()
