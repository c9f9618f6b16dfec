"""The bookkeeping tables in ``evo_meta`` (declared in :mod:`evo_frames.sinks.meta`): the files
manifest and its rejects, cast failures, key statistics, and the runs with the lock that tells
other processes a load is alive.

The manifest, rejects and cast failures are written inside the batch's open transaction, so a
file's rows and its manifest row commit together; a load's run row commits on its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterable, Iterator
from typing import Any

import polars as pl

from .connection import Connection, arrow
from .meta import CAST_FAILURES, FILES, KEY_STATS, LOADS, REJECTS, interrupted_error
from .quoting import literal, q, qt

log = logging.getLogger("evo_frames")


class Bookkeeping(Connection):
    """Reads and writes of the ``evo_meta`` tables; see the module docstring."""

    def loaded_files(self, entity: str) -> dict[str, tuple[int, str]]:
        """``path -> (size, etag)`` of the files of ``entity`` already loaded, partial ones included:
        a partial file is read again only once its size or etag changes."""
        return {path: (size, etag) for path, (size, etag, _) in self.manifest(entity).items()}

    def manifest(self, entity: str, paths: Iterable[str] | None = None) -> dict[str, tuple[int, str, str]]:
        """``path -> (size, etag, load_id)`` of the manifest rows of ``entity`` (of ``paths`` only, if given)."""
        where = f"entity = {literal(entity)}"
        if paths is not None:
            paths = sorted(set(paths))
            if not paths:
                return {}
            where += f" AND path IN ({', '.join(literal(p) for p in paths)})"
        rows = self.query(f"SELECT path, size, etag, load_id FROM {qt(FILES)} WHERE {where}", "reading the manifest")
        return {r["path"]: (int(r["size"]), r["etag"], r["load_id"]) for r in rows.to_pylist()}

    def record_files(self, files: pl.DataFrame, rejects: pl.DataFrame) -> None:
        """Write manifest rows (replacing older ones of the same paths) and their rejects."""
        self.ingest("_ef_files", arrow(files.select(FILES.column_names)))
        self.execute(
            f"DELETE FROM {qt(REJECTS)} x WHERE EXISTS (SELECT 1 FROM _ef_files f WHERE f.path = x.path)",
            "clearing earlier rejects of reloaded files",
        )
        self.execute(
            f"DELETE FROM {qt(FILES)} x WHERE EXISTS (SELECT 1 FROM _ef_files f WHERE f.path = x.path)",
            "replacing manifest rows",
        )
        self.execute(
            f"INSERT INTO {qt(FILES)} ({', '.join(q(c) for c in FILES.column_names)}) "
            f"SELECT {self._select_casts(FILES)} FROM _ef_files s",
            "writing manifest rows",
        )
        if rejects.height:
            self.ingest("_ef_rejects", arrow(rejects.select(REJECTS.column_names)))
            self.execute(
                f"INSERT INTO {qt(REJECTS)} ({', '.join(q(c) for c in REJECTS.column_names)}) "
                f"SELECT {self._select_casts(REJECTS)} FROM _ef_rejects s "
                f"ON CONFLICT ({', '.join(q(k) for k in REJECTS.primary_key)}) DO NOTHING",
                "writing rejects",
            )

    def record_cast_failures(self, load_id: str, entity: str, casts: dict[tuple[str, str, str], int]) -> None:
        """Add to the load's counts of values that could not be typed, per (path, table, column),
        inside the open transaction."""
        if not casts:
            return
        frame = pl.DataFrame(
            [
                {"load_id": load_id, "entity": entity, "path": p, "table_name": t, "column_name": c, "failures": n}
                for (p, t, c), n in casts.items()
            ],
            schema=CAST_FAILURES.polars_schema(),
        )
        self.ingest("_ef_casts", arrow(frame))
        cols = ", ".join(q(c) for c in CAST_FAILURES.column_names)
        key = ", ".join(q(k) for k in CAST_FAILURES.primary_key)
        self.execute(
            f"INSERT INTO {qt(CAST_FAILURES)} ({cols}) SELECT {self._select_casts(CAST_FAILURES)} FROM _ef_casts s "
            f"ON CONFLICT ({key}) DO UPDATE SET failures = {qt(CAST_FAILURES)}.failures + EXCLUDED.failures",
            "recording values that could not be typed",
        )

    @contextlib.contextmanager
    def holding_load(self, load_id: str, entity: str) -> Iterator[None]:
        """Hold the lock that tells other processes the load is alive, on a session of its own
        (reconnects of the load's connection do not drop it)."""
        if not self.dialect.load_lock_sql:
            yield
            return
        holder = self.conn.adbc_clone()
        try:
            with holder.cursor() as cur:
                cur.execute(self.dialect.load_lock_sql.format(literal(f"{load_id}/{entity}")))
            holder.commit()
            yield
        finally:
            try:
                holder.close()
            except Exception:  # a broken session has released its locks already
                log.debug("closing the load's lock session failed", exc_info=True)

    def dead_loads(self, entity: str | None = None) -> list[dict[str, Any]]:
        """Loads recorded as ``running`` whose process is gone: on PostgreSQL no session holds
        their lock; on DuckDB, which lets one process write at a time, any other process's."""
        where = f" AND entity = {literal(entity)}" if entity else ""
        running = self.query(
            f"SELECT load_id, entity, host, pid FROM {qt(LOADS)} WHERE status = 'running'{where}"
        ).to_pylist()
        dead = []
        for r in running:
            key = literal(f"{r['load_id']}/{r['entity']}")
            if self.dialect.load_held_sql:
                alive = bool(self.scalar(self.dialect.load_held_sql.format(key)))
            else:
                alive = r["pid"] == os.getpid() and r["host"] == socket.gethostname()
            if not alive:
                dead.append(r)
        return dead

    def mark_interrupted(self, entity: str) -> None:
        """Record the dead loads of ``entity`` (see :meth:`dead_loads`) as ``interrupted``, and commit."""
        for r in self.dead_loads(entity):
            self.execute(
                f"UPDATE {qt(LOADS)} SET status = 'interrupted', error = {literal(interrupted_error(r))} "
                f"WHERE load_id = {literal(r['load_id'])} AND entity = {literal(r['entity'])} "
                "AND status = 'running'",
                "recording an interrupted load",
            )
        self.commit()

    def record_load(self, load: dict[str, Any]) -> None:
        """Insert or update one ``evo_meta.runs`` row and commit it."""
        frame = pl.DataFrame([load], schema=LOADS.polars_schema())
        self.ingest("_ef_load", arrow(frame))
        updates = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in LOADS.column_names if c not in LOADS.primary_key)
        self.execute(
            f"INSERT INTO {qt(LOADS)} ({', '.join(q(c) for c in LOADS.column_names)}) "
            f"SELECT {self._select_casts(LOADS)} FROM _ef_load s "
            f"ON CONFLICT ({', '.join(q(k) for k in LOADS.primary_key)}) DO UPDATE SET {updates}",
            "recording the load",
        )
        self.commit()

    def record_key_stats(self, entity: str, stats: pl.DataFrame) -> None:
        """Replace the key statistics of ``entity`` of the runs in ``stats`` (rows of
        ``evo_meta.key_stats``, see :func:`evo_frames.drift.key_stats`) by ``stats``, and commit."""
        if self.dialect.lock_sql:
            # two loads that read files of one run both replace its statistics: the second waits
            # for the first to commit, so that its DELETE sees (and replaces) the first's rows
            key = literal(f"evo_frames:{entity}:key_stats")
            self.execute(self.dialect.lock_sql.format(key), f"locking the key statistics of {entity}")
        self.ingest("_ef_key_stats", arrow(stats.select(KEY_STATS.column_names)))
        self.execute(
            f"DELETE FROM {qt(KEY_STATS)} x WHERE x.entity = {literal(entity)} "
            "AND x.run_id IN (SELECT DISTINCT run_id FROM _ef_key_stats)",
            "replacing key statistics",
        )
        self.execute(
            f"INSERT INTO {qt(KEY_STATS)} ({', '.join(q(c) for c in KEY_STATS.column_names)}) "
            f"SELECT {self._select_casts(KEY_STATS)} FROM _ef_key_stats s",
            "writing key statistics",
        )
        self.commit()
