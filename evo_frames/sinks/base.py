"""The interface the engine loads, reads and maintains a target through.

:class:`Sink` holds exactly the methods that the load (:mod:`evo_frames.pipeline`), ``status``
and ``optimize`` (:mod:`evo_frames.ops`), drift, exploration, the Python API and the bench call;
the modules type against it, not against the SQL implementation behind it
(:class:`~evo_frames.sinks.sql.SqlSink`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import polars as pl
import pyarrow as pa

from ..spec import Entity, Table
from .dialect import Dialect


@dataclass
class Counts:
    """Rows of one table affected by a load."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def add(self, other: Counts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted


@dataclass
class Probe:
    """What the target holds of a chunk's rows: the row numbers of the new ones (key absent) and of
    the changed ones (another content hash, from the same or a later run, file and line); every
    other row is unchanged, or older than the stored one, and is not written."""

    new: pl.Series
    changed: pl.Series


@dataclass
class Written:
    """What writing a chunk did: the counts per table, and the row numbers (in the STG frame
    written) of the rows inserted and of those updated; the other rows were left as stored."""

    counts: dict[str, Counts]
    new: pl.Series
    changed: pl.Series


@runtime_checkable
class Sink(Protocol):
    """A target database: one connection, opened on first use, with a transaction always open."""

    #: the target's SQL differences (types, what it supports), as data
    dialect: Dialect
    #: the target as shown in messages and reports, without a password
    display: str
    #: the target's URL without a password
    public_url: str

    # connection and transactions

    def __enter__(self) -> Sink: ...
    def __exit__(self, *exc: object) -> None: ...
    def close(self) -> None: ...
    def fork(self) -> Sink: ...
    def reconnect(self) -> None: ...
    def default_writers(self) -> int: ...
    def set_time_zone(self, zone: str) -> None: ...
    def begin(self) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...
    def autocommit(self) -> contextlib.AbstractContextManager[None]: ...

    def database_url(self, name: str, folder: Path) -> str: ...

    # statements

    def execute(self, sql: str, what: str | None = None) -> int: ...
    def query(self, sql: str, what: str | None = None) -> pa.Table: ...
    def scalar(self, sql: str) -> Any: ...
    def has_rows(self, table: Table) -> bool: ...
    def count_rows(self, table: Table) -> int: ...

    # schema

    def ensure_tables(self, entities: Iterable[Entity]) -> list[str]: ...
    def existing_columns(self, table: Table) -> set[str]: ...
    def layout_problems(self) -> list[str]: ...
    def table_stats(self, table: Table) -> dict[str, int] | None: ...
    def defer_indexes(self, tables: Iterable[Table]) -> list[Table]: ...
    def build_indexes(self, tables: Iterable[Table]) -> None: ...
    def begin_refresh(self, entity: Entity) -> None: ...
    def finish_refresh(self, entity: Entity) -> None: ...

    # loading

    def lock(self, entity: Entity, paths: Iterable[str] = ()) -> None: ...
    def probe_chunk(self, entity: Entity, rows: pl.DataFrame) -> Probe: ...
    def write_chunk(
        self,
        entity: Entity,
        stg: pl.DataFrame,
        core: Callable[[], dict[str, pl.DataFrame]],
        contested: Callable[[pl.DataFrame], pl.Series] | None = None,
        probe: Probe | None = None,
    ) -> Written: ...
    def read_stg(self, entity: Entity, batch_rows: int, batch_bytes: int) -> Iterator[pl.DataFrame]: ...
    def write_core(
        self, entity: Entity, keys: pl.DataFrame, core: dict[str, pl.DataFrame], *, shadow: bool
    ) -> dict[str, Counts]: ...

    # bookkeeping (evo_meta)

    def manifest(self, entity: str, paths: Iterable[str] | None = None) -> dict[str, tuple[int, str, str]]: ...
    def record_files(self, files: pl.DataFrame, rejects: pl.DataFrame) -> None: ...
    def record_cast_failures(self, load_id: str, entity: str, casts: dict[tuple[str, str, str], int]) -> None: ...
    def record_key_stats(self, entity: str, stats: pl.DataFrame) -> None: ...
    def holding_load(self, load_id: str, entity: str) -> contextlib.AbstractContextManager[None]: ...
    def dead_loads(self, entity: str | None = None) -> list[dict[str, Any]]: ...
    def mark_interrupted(self, entity: str) -> None: ...
    def record_load(self, load: dict[str, Any]) -> None: ...
