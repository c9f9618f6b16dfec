"""The embedded DuckDB target: ``duckdb:///abs/file.duckdb`` or ``duckdb:rel/file.duckdb``."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SinkError
from .dialect import DUCKDB
from .sql import SqlSink


def duckdb_path(url: str) -> Path:
    """The database file of a DuckDB target URL.

    >>> duckdb_path("duckdb:///tmp/x.duckdb"), duckdb_path("duckdb:data/x.duckdb")
    (PosixPath('/tmp/x.duckdb'), PosixPath('data/x.duckdb'))
    """
    rest = url.removeprefix("duckdb:")
    if rest.startswith("///"):
        return Path(rest[2:])
    if rest.startswith("//"):
        raise ConfigError(
            f"target {url!r} has a host part; use duckdb:///abs/path.duckdb (three slashes) or duckdb:rel/path.duckdb"
        )
    if not rest:
        raise ConfigError(f"target {url!r} names no file; use duckdb:///abs/path.duckdb or duckdb:rel/path.duckdb")
    return Path(rest)


log = logging.getLogger("evo_frames")

#: DuckDB's "Conflicting lock is held in /usr/bin/python3 (PID 1234)"
_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


class DuckDBSink(SqlSink):
    """A DuckDB file through DuckDB's own ADBC driver (shipped in the duckdb wheel)."""

    dialect = DUCKDB

    def __init__(self, url: str, memory_limit: str, read_only: bool = False) -> None:
        self.path = duckdb_path(url)
        super().__init__(url, f"duckdb:{self.path}", read_only)
        from ..config import check_memory_limit

        #: validated: it is written into a SET statement (DuckDB does not bind SET values)
        self.memory_limit = check_memory_limit(memory_limit)

    def _connect(self) -> Any:
        import adbc_driver_duckdb
        import adbc_driver_manager.dbapi

        if not self.path.exists():
            if self.read_only:
                raise SinkError(
                    f"no DuckDB database at {self.path}; create it with evo-frames init --target {self.url}, "
                    "or load with evo-frames run"
                )
            log.warning("creating new database at %s", self.path.absolute())
            self.path.parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"path": str(self.path), **({"access_mode": "READ_ONLY"} if self.read_only else {})}
        try:
            conn = adbc_driver_manager.dbapi.connect(
                driver=adbc_driver_duckdb.driver_path(), entrypoint="duckdb_adbc_init", db_kwargs=kwargs
            )
        except Exception as e:
            held = _LOCK_HOLDER.search(str(e))
            if "Could not set lock" in str(e):
                raise SinkError(
                    f"{self.path} is locked by another process{f' (pid {held[1]})' if held else ''}; "
                    "wait for it to finish or stop it, then retry"
                ) from e
            raise self._translate(e, f"opening {self.path}") from e
        with conn.cursor() as cur:
            cur.execute(f"SET memory_limit = '{self.memory_limit}'")
        return conn
