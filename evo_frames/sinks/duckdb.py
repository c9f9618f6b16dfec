"""The embedded DuckDB target: ``duckdb:///abs/file.duckdb`` or ``duckdb:rel/file.duckdb``."""

from __future__ import annotations

import logging
import re
import time
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

    def __init__(self, url: str, memory_limit: str, read_only: bool = False, *, lock_timeout: int = 0) -> None:
        self.path = duckdb_path(url)
        super().__init__(url, f"duckdb:{self.path}", read_only)
        from ..config import check_memory_limit

        #: validated: it is written into a SET statement (DuckDB does not bind SET values)
        self.memory_limit = check_memory_limit(memory_limit)
        #: a writer waits this long for another process to close the file; a reader never waits
        self.lock_timeout = 0 if read_only else lock_timeout

    def database_url(self, name: str, folder: Path) -> str:
        """A DuckDB file ``name``.duckdb in ``folder``."""
        return f"duckdb://{folder / name}.duckdb"

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
        deadline = time.monotonic() + self.lock_timeout
        waited = False
        while True:
            try:
                conn = adbc_driver_manager.dbapi.connect(
                    driver=adbc_driver_duckdb.driver_path(), entrypoint="duckdb_adbc_init", db_kwargs=kwargs
                )
                break
            except Exception as e:
                if "Could not set lock" not in str(e):
                    raise self._translate(e, f"opening {self.path}") from e
                held = _LOCK_HOLDER.search(str(e))
                holder = f" (pid {held[1]})" if held else ""
                if time.monotonic() >= deadline:
                    wait = f"; waited {self.lock_timeout}s (lock_timeout)" if self.lock_timeout else ""
                    raise SinkError(
                        f"{self.path} is locked by another process{holder}{wait}; "
                        "wait for it to finish or stop it, then retry"
                    ) from e
                if not waited:
                    log.warning(
                        "%s is open in another process%s; waiting up to %ds for it to finish",
                        self.path,
                        holder,
                        self.lock_timeout,
                    )
                    waited = True
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        with conn.cursor() as cur:
            cur.execute(f"SET memory_limit = '{self.memory_limit}'")
        return conn
