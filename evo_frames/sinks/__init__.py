"""Targets: PostgreSQL (production) and DuckDB (embedded dry-runs), one interface.

>>> open_sink("mysql://x", memory_limit="1GB", connect_timeout=5, statement_timeout=60)
Traceback (most recent call last):
...
evo_frames.errors.ConfigError: unknown target 'mysql://x'; use duckdb:///abs/file.duckdb, duckdb:rel/file.duckdb or postgresql://user:pass@host:port/db
"""

from __future__ import annotations

from ..errors import ConfigError, redact
from .base import Counts, Probe, Sink, Written
from .sql import SqlSink

__all__ = ["Counts", "Probe", "Sink", "SqlSink", "Written", "open_sink"]


def open_sink(
    url: str,
    *,
    memory_limit: str,
    connect_timeout: int,
    statement_timeout: int,
    lock_timeout: int = 0,
    read_only: bool = False,
    retry_wait: float = 300.0,
) -> SqlSink:
    """The sink for a target URL (no connection is made until first use).

    ``read_only``: never write, never create a file (a missing DuckDB file is an error).
    ``lock_timeout``: seconds a DuckDB writer waits for another process's file lock.
    ``retry_wait``: seconds a PostgreSQL reconnect waits out a failover.
    """
    if url.startswith("duckdb:"):
        from .duckdb import DuckDBSink

        return DuckDBSink(url, memory_limit, read_only, lock_timeout=lock_timeout)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresSink

        return PostgresSink(url, connect_timeout, statement_timeout, read_only, retry_wait)
    raise ConfigError(
        f"unknown target {redact(url)!r}; use duckdb:///abs/file.duckdb, duckdb:rel/file.duckdb "
        "or postgresql://user:pass@host:port/db"
    )
