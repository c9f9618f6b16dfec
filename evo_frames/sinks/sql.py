"""One sink for both targets: Arrow over ADBC, new rows straight into their tables, changed rows upserted.

Per chunk, inside the batch's transaction:

1. The probe: the chunk's keys, content hashes and lineage (no payload) go into a TEMP table, and
   one query returns the rows that are new, or whose content hash differs from the stored row's
   *and* whose (run_id, file, line) is the same or later: an older run never overwrites a newer
   one, a file re-sent at the same path with corrected content replaces what it brought before,
   and an unchanged record is dropped before any JSON parsing or index work.
2. New rows go straight into STG and the CORE parent: on PostgreSQL by binary COPY into the final
   (partitioned) tables, with no TEMP table and no INSERT … SELECT (``dialect.direct_copy``).
3. Changed rows go into a TEMP table and are upserted (``ON CONFLICT … DO UPDATE``).
4. For each child table, the children of changed parents are deleted and those of new and
   changed parents inserted (children mirror their parent).

The files manifest and rejects are written in the same transaction, so a file's rows and its
manifest row commit together.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import logging
import os
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import available_timezones

import polars as pl
import pyarrow as pa

from ..errors import ConfigError, SinkError, TransientSinkError
from ..spec import CONTENT_HASH, Column, Entity, Table
from .dialect import Dialect

log = logging.getLogger("evo_frames")

META_SCHEMA = "evo_meta"

FILES = Table(
    META_SCHEMA,
    "files",
    (
        Column(
            "path",
            "text",
            nullable=False,
            doc="the file's path, with the lake's scheme (an absolute path for local files)",
        ),
        Column("entity", "text", nullable=False, doc="the entity (entity=… folder)"),
        Column("run_id", "text", nullable=False, doc="the bronze run (run_id=… folder)"),
        Column("ingestion_date", "date", doc="the ingestion_date=… folder"),
        Column("size", "bigint", nullable=False, doc="size in bytes when loaded"),
        Column("etag", "text", nullable=False, doc="etag (or mtime) when loaded"),
        Column(
            "lines_read", "bigint", nullable=False, doc="non-blank lines read; = rows_loaded + duplicates + rejects"
        ),
        Column("blank_lines", "bigint", nullable=False, doc="blank lines skipped"),
        Column("rows_loaded", "bigint", nullable=False, doc="lines that reached STG (new, changed or unchanged)"),
        Column(
            "duplicates", "bigint", nullable=False, doc="lines superseded by a later line of the same key in the batch"
        ),
        Column("rejects", "bigint", nullable=False, doc="lines quarantined in evo_meta.rejects"),
        Column(
            "partial",
            "bool",
            nullable=False,
            doc="the gzip stream broke (truncated or corrupt): read again only once size or etag changes",
        ),
        Column("error", "text", doc="why the file is partial"),
        Column("load_id", "text", nullable=False, doc="the load that wrote this row"),
    ),
    primary_key=("path",),
    doc="one row per bronze file loaded (the manifest): a file whose path, size and etag are here is not read again",
)

REJECTS = Table(
    META_SCHEMA,
    "rejects",
    (
        Column("path", "text", nullable=False, doc="the file (as in evo_meta.files.path)"),
        Column("line", "bigint", nullable=False, doc="physical line number in the file, from 1 (STG's _source_line)"),
        Column("entity", "text", nullable=False, doc="the entity"),
        Column(
            "stage",
            "text",
            nullable=False,
            doc="read (bytes), decode (JSON), transform (key) or load (refused by the target)",
        ),
        Column("reason", "text", nullable=False, doc="what is wrong, naming the field and value"),
        Column("raw", "text", doc="the line (first 64 KiB)"),
        Column("raw_length", "bigint", doc="the line's full length in bytes"),
        Column("load_id", "text", nullable=False, doc="the load that found it"),
    ),
    primary_key=("path", "line"),
    doc="one row per line that could not be loaded",
)

LOADS = Table(
    META_SCHEMA,
    "runs",
    (
        Column("load_id", "text", nullable=False, doc="the load: UTC start time and a random suffix"),
        Column("entity", "text", nullable=False, doc="the entity"),
        Column("command", "text", doc="run or transform"),
        Column(
            "status",
            "text",
            nullable=False,
            doc="running, succeeded, partial (rejects above --max-bad-ratio), failed or interrupted (the process died)",
        ),
        Column("started_at", "timestamptz", nullable=False, doc="when it started"),
        Column("finished_at", "timestamptz", doc="when it ended (NULL while running or if it died)"),
        Column("host", "text", doc="host name of the process"),
        Column("pid", "bigint", doc="process id of the process"),
        Column("files", "bigint", doc="files loaded"),
        Column("lines_read", "bigint", doc="lines read (transform: STG rows read)"),
        Column("inserted", "bigint", doc="rows inserted (run: STG; transform: the CORE parent table)"),
        Column("updated", "bigint", doc="rows whose content changed"),
        Column("unchanged", "bigint", doc="rows read whose content was already stored"),
        Column("rejects", "bigint", doc="lines rejected"),
        Column("seconds", "decimal", doc="duration; records_per_second = lines_read / seconds"),
        Column("error", "text", doc="why it failed or was interrupted (passwords redacted)"),
    ),
    primary_key=("load_id", "entity"),
    doc="one row per load (evo-frames run or transform) and entity",
)

CAST_FAILURES = Table(
    META_SCHEMA,
    "cast_failures",
    (
        Column("load_id", "text", nullable=False, doc="the load"),
        Column("entity", "text", nullable=False, doc="the entity"),
        Column("path", "text", nullable=False, doc="the bronze file the values came from"),
        Column("table_name", "text", nullable=False, doc="the CORE table (schema.table)"),
        Column("column_name", "text", nullable=False, doc="the column"),
        Column("failures", "bigint", nullable=False, doc="values stored as NULL"),
    ),
    primary_key=("load_id", "path", "table_name", "column_name"),
    doc=(
        "per load, file, table and column: values present in the bronze line (a wrong scalar, an "
        "object or an array) that could not be typed and were stored as NULL"
    ),
)

KEY_STATS = Table(
    META_SCHEMA,
    "key_stats",
    (
        Column("entity", "text", nullable=False, doc="the entity"),
        Column("run_id", "text", nullable=False, doc="the bronze run the sampled records came from"),
        Column("path", "text", nullable=False, doc="key path: `a`, `a.b` in an object, `a[].b` in an array of objects"),
        Column("sampled", "bigint", nullable=False, doc="records of the run parsed (at most 2,000)"),
        Column("present", "bigint", nullable=False, doc="sampled records that carry the key"),
        Column("non_null", "bigint", nullable=False, doc="sampled records that carry it with a non-null value"),
        Column("types", "text", nullable=False, doc="JSON types seen, comma-separated"),
        Column("load_id", "text", nullable=False, doc="the load that sampled the run"),
    ),
    primary_key=("entity", "run_id", "path"),
    doc=(
        "per entity, run and JSON key path: how many of a sample of the run's STG records carry it; "
        "`evo-frames status` compares them with the keys the transforms read (see evo_frames.drift)"
    ),
)

META_TABLES = (FILES, REJECTS, LOADS, CAST_FAILURES, KEY_STATS)

#: earlier column names in evo_meta, renamed in place (data kept) by ``ensure_tables``:
#: ``(schema, table, old) -> new``
RENAMED_COLUMNS = {(META_SCHEMA, "rejects", "_source_file"): "path"}

#: columns the sink manages on every table, after the declared ones
MANAGED = ("_loaded_at", "_updated_at")


SHADOW = "__shadow"

#: the characters of an IANA zone name (checked before a name goes into ``SET TIME ZONE``)
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-/]+")


def shadow_table(table: Table) -> Table:
    """The table a full refresh builds before swapping it in for ``table``."""
    indexes = tuple(dataclasses.replace(i, name=i.name + SHADOW) for i in table.indexes)
    return dataclasses.replace(table, name=table.name + SHADOW, indexes=indexes)


def q(name: str) -> str:
    """Quote one identifier."""
    return '"' + name.replace('"', '""') + '"'


def qt(table: Table) -> str:
    return f"{q(table.schema)}.{q(table.name)}"


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


def _literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def interrupted_error(load: dict[str, Any]) -> str:
    """What an interrupted load's row says about it."""
    return f"the process (host {load['host']}, pid {load['pid']}) ended without recording an outcome"


#: STG columns naming where a row's content came from, compared in this order (latest wins)
LINEAGE = ("run_id", "_source_file", "_source_line")


def _newer_content(new: str, old: str) -> str:
    """SQL: row ``new`` differs from row ``old`` in content and comes from the same or a later
    (run, file, line): the same one when a file is re-sent at its path with corrected content."""
    later = f"({', '.join(f'{new}.{c}' for c in LINEAGE)}) >= ({', '.join(f'{old}.{c}' for c in LINEAGE)})"
    return f"({new}.{q(CONTENT_HASH)} IS DISTINCT FROM {old}.{q(CONTENT_HASH)} AND {later})"


def _partition(table: Table, month: dt.date) -> str:
    """The name of the monthly partition of ``table`` starting at ``month`` (a date or datetime)."""
    return f"{table.name}_p{month.year:04d}_{month.month:02d}"


def _month_bounds(month: dt.date) -> tuple[str, str]:
    """The ``FROM`` and ``TO`` literals of the monthly partition starting at ``month``, as UTC
    instants: the year zero-padded (PostgreSQL reads ``'5-01-01'`` as 2005), and the month after
    December 9999 written as year 10000, which no Python date holds but PostgreSQL reads."""
    year, next_month = (month.year + 1, 1) if month.month == 12 else (month.year, month.month + 1)
    return f"{month.year:04d}-{month.month:02d}-01 00:00:00+00", f"{year:04d}-{next_month:02d}-01 00:00:00+00"


def _arrow(frame: pl.DataFrame) -> pa.Table:
    # large types are what the drivers accept from Polars without surprises (stack-notes §3)
    return frame.to_arrow()


class SqlSink:
    """A target database behind an ADBC DB-API connection; see the module docstring.

    Subclasses only provide :meth:`_connect` and the dialect.
    """

    dialect: Dialect

    def __init__(self, url: str, display: str, read_only: bool = False) -> None:
        self.url = url
        self.display = display
        #: never writes: DDL and DML fail (``status``, ``query``, exploration)
        self.read_only = read_only
        self._conn: Any = None
        self._partitions: set[tuple[str, str]] = set()

    # connection -----------------------------------------------------------------------------

    def _connect(self) -> Any:  # pragma: no cover - each target implements it
        raise NotImplementedError

    def _translate(self, error: Exception, what: str) -> Exception:
        """Map a driver error to an evo-frames error (see ``retry.classify``)."""
        from ..retry import translate

        return translate(error, what, self.display)

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

    def fork(self) -> SqlSink:
        """Another sink on the same target, with its own connection (opened on first use)."""
        other = copy.copy(self)
        other._conn = None
        other._partitions = set()
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

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rollback()
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SqlSink:
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
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql)
                return int(cur.rowcount) if cur.rowcount is not None and cur.rowcount >= 0 else 0
        except Exception as e:
            raise self._translate(e, what or sql.split("\n", 1)[0][:120]) from e

    def query(self, sql: str, what: str | None = None) -> pa.Table:
        """Run a query and return its result as Arrow."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql)
                return cur.fetch_arrow_table()
        except Exception as e:
            raise self._translate(e, what or sql.split("\n", 1)[0][:120]) from e

    def scalar(self, sql: str) -> Any:
        rows = self.query(sql).to_pylist()
        return next(iter(rows[0].values())) if rows else None

    def ingest(self, name: str, data: pa.Table | pa.RecordBatchReader) -> None:
        """Stage Arrow data into a TEMP table ``name`` (replaced if it exists)."""
        try:
            with self.conn.cursor() as cur:
                cur.adbc_ingest(name, data, mode="replace", temporary=True)
        except Exception as e:
            raise self._translate(e, f"staging {name}") from e

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
        try:
            self.conn.commit()
        except Exception as e:
            raise self._translate(e, "commit") from e

    def rollback(self) -> None:
        if self._conn is None:
            return
        # partitions created in the transaction are gone with it
        self._partitions.clear()
        try:
            self._conn.rollback()
        except Exception:  # a dead connection cannot roll back; reconnect() will replace it
            log.debug("rollback failed", exc_info=True)
            self.reconnect()

    # schema ---------------------------------------------------------------------------------

    def _column_ddl(self, col: Column) -> str:
        null = "" if col.nullable else " NOT NULL"
        return f"{q(col.name)} {self.dialect.types[col.type]}{null}"

    def _table_ddl(self, table: Table) -> tuple[str, list[tuple[str, str]]]:
        cols = [(c.name, self._column_ddl(c)) for c in table.columns]
        cols += [(m, f"{q(m)} TIMESTAMPTZ NOT NULL DEFAULT now()") for m in MANAGED]
        pk = ", ".join(q(k) for k in table.primary_key)
        body = ",\n  ".join(d for _, d in cols)
        partition = ""
        if table.partition_by and self.dialect.partitions:
            partition = f" PARTITION BY RANGE ({q(table.partition_by)})"
        sql = f"CREATE TABLE IF NOT EXISTS {qt(table)} (\n  {body},\n  PRIMARY KEY ({pk})\n){partition}"
        return sql, cols

    def existing_columns(self, table: Table) -> set[str]:
        return self._columns(table.schema, table.name)

    def _columns(self, schema: str, name: str) -> set[str]:
        rows = self.query(
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_schema = '{schema}' AND table_name = '{name}'"
        )
        return set(rows.column("column_name").to_pylist())

    def layout_problems(self) -> list[str]:
        """What keeps this target from being read as an evo-frames target, without changing it.

        Raises:
            SinkError: the target was never initialised (no evo_meta tables), naming ``init``/``run``.
        """
        missing = {t.qualified: set(t.column_names) - self._columns(t.schema, t.name) for t in META_TABLES}
        if all(len(cols) == len(t.columns) for t, cols in zip(META_TABLES, missing.values(), strict=True)):
            raise SinkError(
                f"{self.display} is not initialised (no evo_meta tables); create the tables with "
                f"evo-frames init --target <this target>, or load with evo-frames run"
            )
        return [
            f"{name} lacks {', '.join(sorted(cols))}; upgrade the target with evo-frames init"
            for name, cols in missing.items()
            if cols
        ]

    def primary_key(self, table: Table) -> tuple[str, ...]:
        """The primary-key columns of the stored ``table``, in key order."""
        rows = self.query(
            "SELECT k.column_name FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name "
            "AND k.table_schema = c.table_schema AND k.table_name = c.table_name "
            f"WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = '{table.schema}' "
            f"AND c.table_name = '{table.name}' ORDER BY k.ordinal_position"
        )
        return tuple(rows.column("column_name").to_pylist())

    def ensure_tables(self, entities: Iterable[Entity]) -> list[str]:
        """Create or upgrade schemas, tables and indexes; idempotent and non-destructive.

        Returns:
            One line per change made (empty when everything was in place).
        """
        changes: list[str] = []
        tables = [*META_TABLES, *(t for entity in entities for t in entity.tables)]
        self.lock_ddl()
        for schema in sorted({t.schema for t in tables}):
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {q(schema)}")
        changes += self._rename_legacy()
        for table in tables:
            changes += self._ensure_table(table)
            self._ensure_indexes(table)
        self.commit()
        return changes

    def lock_ddl(self, what: str = "schema") -> None:
        """Wait for other processes' schema, index or partition DDL on ``what`` to commit, and hold
        off theirs until this transaction ends (PostgreSQL): two first loads at once then never
        race on ``CREATE SCHEMA``, a table, an index name or a partition."""
        if self.dialect.ddl_lock_sql:
            self.execute(self.dialect.ddl_lock_sql.format(_literal(what)), f"waiting for concurrent DDL on {what}")

    def _rename_legacy(self) -> list[str]:
        """Rename columns of an older layout (:data:`RENAMED_COLUMNS`)."""
        changes = []
        for (schema, table, old), new in RENAMED_COLUMNS.items():
            have = self._columns(schema, table)
            if old in have and new not in have:
                self.execute(
                    f"ALTER TABLE {q(schema)}.{q(table)} RENAME COLUMN {q(old)} TO {q(new)}",
                    f"renaming column {schema}.{table}.{old}",
                )
                changes.append(f"renamed column {schema}.{table}.{old} to {new}")
        return changes

    def _ensure_table(self, table: Table) -> list[str]:
        ddl, cols = self._table_ddl(table)
        have = self.existing_columns(table)
        if not have:
            self.execute(ddl, f"creating {table.qualified}")
            return [f"created {table.qualified}"]
        key = self.primary_key(table)
        if key != table.primary_key:
            raise ConfigError(
                f"table {table.qualified} has the primary key ({', '.join(key)}), but this version keys it by "
                f"({', '.join(table.primary_key)}): an older evo-frames created it. Drop it (DROP TABLE "
                f"{table.qualified}) and rebuild it: `evo-frames run --full-refresh` reloads STG from the lake, "
                "`evo-frames transform --full-refresh` CORE from STG"
            )
        changes = []
        for name, col_ddl in cols:
            if name not in have:
                # a NOT NULL column cannot be added to rows that exist; it is added nullable
                self.execute(
                    f"ALTER TABLE {qt(table)} ADD COLUMN IF NOT EXISTS {col_ddl.replace(' NOT NULL', '')}",
                    f"adding column {table.qualified}.{name}",
                )
                changes.append(f"added column {table.qualified}.{name}")
        return changes

    def _ensure_indexes(self, table: Table) -> None:
        for name in table.retired_indexes if self.dialect.secondary_indexes else ():
            self.execute(f"DROP INDEX IF EXISTS {q(table.schema)}.{q(name)}", f"dropping the retired index {name}")
        for index in table.indexes if self.dialect.secondary_indexes else ():
            where = f" WHERE {index.where}" if index.where else ""
            cols_sql = ", ".join(q(c) for c in index.columns)
            self.execute(
                f"CREATE INDEX IF NOT EXISTS {q(index.name)} ON {qt(table)} ({cols_sql}){where}",
                f"creating index {index.name}",
            )

    def defer_indexes(self, tables: Iterable[Table]) -> list[Table]:
        """Drop the secondary indexes of empty tables, so that a first load builds each once, at the end.

        Returns the tables to pass to :meth:`build_indexes` afterwards. Should the process die in
        between, the next ``ensure_tables`` creates the missing indexes.
        """
        if not self.dialect.secondary_indexes:
            return []
        self.lock_ddl()
        empty = [t for t in tables if t.indexes and self.query(f"SELECT 1 AS x FROM {qt(t)} LIMIT 1").num_rows == 0]
        for table in empty:
            for index in table.indexes:
                self.execute(f"DROP INDEX IF EXISTS {q(table.schema)}.{q(index.name)}", f"deferring index {index.name}")
        self.commit()
        return empty

    def build_indexes(self, tables: Iterable[Table]) -> None:
        """Create the secondary indexes of ``tables`` (those :meth:`defer_indexes` dropped)."""
        tables = list(tables)
        if not tables:
            return
        self.lock_ddl()
        for table in tables:
            self._ensure_indexes(table)
        self.commit()

    def begin_refresh(self, entity: Entity) -> None:
        """Create empty shadow copies of the entity's CORE tables (without secondary indexes)."""
        for table in entity.core:
            shadow = shadow_table(table)
            self.execute(f"DROP TABLE IF EXISTS {qt(shadow)}", f"dropping an old {shadow.qualified}")
            self._ensure_table(shadow)
        self.commit()
        self._partitions.clear()

    def finish_refresh(self, entity: Entity) -> None:
        """Index the shadow tables once, then swap them in for the live ones in one transaction."""
        for table in entity.core:
            self._ensure_indexes(shadow_table(table))
        self.commit()
        for table in entity.core:
            self.execute(
                f"DROP TABLE IF EXISTS {qt(table)}", f"dropping the old {table.qualified} (views on it block this)"
            )
        schemas = sorted({t.schema for t in entity.core})
        for schema in schemas:
            for kind, name in self._shadow_relations(schema):
                self.execute(
                    f"ALTER {kind} {q(schema)}.{q(name)} RENAME TO {q(name.replace(SHADOW, ''))}",
                    f"renaming {schema}.{name}",
                )
        self.commit()
        self._partitions.clear()

    def _shadow_relations(self, schema: str) -> list[tuple[str, str]]:
        found = [
            ("TABLE", r["table_name"])
            for r in self.query(
                f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'"
            ).to_pylist()
        ]
        if self.dialect.index_names_sql:
            found += [
                ("INDEX", r["name"]) for r in self.query(self.dialect.index_names_sql.format(schema=schema)).to_pylist()
            ]
        return [(kind, name) for kind, name in found if SHADOW in name]

    def _ensure_partitions(self, table: Table, frame: pl.DataFrame) -> None:
        """Create the monthly partitions the frame's rows need (PostgreSQL)."""
        if not (table.partition_by and self.dialect.partitions) or frame.height == 0:
            return
        months = frame.select(pl.col(table.partition_by).dt.truncate("1mo").unique().drop_nulls()).to_series()
        for month in months.to_list():
            part = _partition(table, month)
            if (table.qualified, part) in self._partitions:
                continue
            # held until the batch commits: a concurrent creator of the same partition waits, then finds it
            self.lock_ddl(f"{table.schema}.{part}")
            start, end = _month_bounds(month)
            try:
                self.execute(
                    f"CREATE TABLE IF NOT EXISTS {q(table.schema)}.{q(part)} PARTITION OF {qt(table)} "
                    f"FOR VALUES FROM ('{start}') TO ('{end}')",
                    f"creating partition {table.schema}.{part}",
                )
            except SinkError as e:
                # a parallel writer created it at the same moment: the replay finds it in place
                if getattr(e.__cause__, "sqlstate", None) in ("42P07", "23505"):
                    raise TransientSinkError(f"{e}; created by a concurrent load, retrying") from e
                raise
            self._partitions.add((table.qualified, part))

    # loading --------------------------------------------------------------------------------

    def lock(self, entity: Entity, paths: Iterable[str] = ()) -> None:
        """Serialise concurrent loads of one entity until the transaction ends: without ``paths``
        the entity as a whole; with them, only those files (in path order, so two batches never
        wait for each other crosswise), which loads of other files pass by."""
        if not self.dialect.lock_sql:
            return
        if not paths:
            self.execute(self.dialect.lock_sql.format(f"'evo_frames:{entity.name}'"), f"locking {entity.name}")
            return
        for path in sorted(set(paths)):
            self.execute(
                self.dialect.lock_sql.format(_literal(f"evo_frames:{entity.name}:file:{path}")),
                f"locking {entity.name} file {path!r}",
            )

    def _key_cast(self, entity: Entity) -> str:
        return ", ".join(f"CAST(s.{q(c.name)} AS {self.dialect.types[c.type]}) AS {q(c.name)}" for c in entity.key)

    def _select_casts(self, table: Table, alias: str = "s") -> str:
        return ", ".join(f"CAST({alias}.{q(c.name)} AS {self.dialect.types[c.type]})" for c in table.columns)

    def write_chunk(
        self,
        entity: Entity,
        stg: pl.DataFrame,
        core: dict[str, pl.DataFrame],
        contested: Callable[[pl.DataFrame], pl.Series] | None = None,
    ) -> dict[str, Counts]:
        """Write one deduplicated chunk; see the module docstring. Runs inside the open transaction.

        With parallel writers, ``contested(keys)`` claims the keys the probe found new and returns
        the row numbers (in ``keys``) of those another writer's open transaction claimed first:
        they are upserted, so the database waits for that transaction and keeps the newer row,
        instead of copied, which would fail on the other's key.
        """
        stg_t = entity.stg
        rows = stg.select(*entity.key_names, CONTENT_HASH, *LINEAGE).with_row_index("_row")
        # rows bound for an empty table or partition (a first load, a new month) are new: no probe
        empty = self._empty(stg_t, stg)
        stored = self._lookup(stg_t, entity.key_names, [CONTENT_HASH, *LINEAGE])
        new, changed = self._probe(
            rows.filter(~empty),
            f"{stored} WHERE t._found IS NULL OR {_newer_content('s', 't')}",
            "t._found IS NULL",
            f"comparing {stg_t.qualified}",
        )
        new = pl.concat([rows.filter(empty)["_row"], new]).sort()
        keys = stg.select(entity.key_names)
        if contested is not None and len(new):
            taken = new.gather(contested(keys[new]))
            new, changed = new.filter(~new.is_in(taken.implode())), pl.concat([changed, taken]).sort()
        if len(new):
            self._append(stg_t, stg if len(new) == stg.height else stg[new])
        if len(changed):
            # the same comparison again, on the row as it is when the upsert reaches it: whatever
            # the commit order of concurrent batches, the newer row stays, and only the rows this
            # upsert wrote go on to CORE
            guard = _newer_content("EXCLUDED", "x")
            written = self._upsert(stg_t, stg[changed], guard=guard, returning=entity.key_names)
            written = written.cast(dict(keys.schema))
            changed = keys.with_row_index("_row").join(written, on=list(entity.key_names), how="semi")["_row"]
        unchanged = stg.height - len(new) - len(changed)
        counts = {stg_t.qualified: Counts(inserted=len(new), updated=len(changed), unchanged=unchanged)}
        counts.update(self._write_core(entity, entity.core, core, keys, new, changed))
        return counts

    def _empty(self, table: Table, frame: pl.DataFrame) -> pl.Series:
        """Per row of ``frame``: whether the partition it goes to (or the table) holds no row yet."""
        if not (table.partition_by and self.dialect.partitions):
            empty = self.query(f"SELECT 1 AS x FROM {qt(table)} LIMIT 1").num_rows == 0
            return pl.repeat(empty, frame.height, eager=True)
        self._ensure_partitions(table, frame)
        month = frame[table.partition_by].dt.truncate("1mo")
        empty = [
            m
            for m in month.unique().drop_nulls().to_list()
            if self.query(f"SELECT 1 AS x FROM {q(table.schema)}.{q(_partition(table, m))} LIMIT 1").num_rows == 0
        ]
        return month.is_in(pl.Series(empty, dtype=month.dtype).implode())

    def _probe(self, keys: pl.DataFrame, join_where: str, is_new: str, what: str) -> tuple[pl.Series, pl.Series]:
        """Stage ``keys`` (no payload; ``_row`` numbers the rows) and return the row numbers of
        the new and of the changed rows.

        ``join_where`` joins the staged rows ``s`` to what is stored and keeps the rows to write;
        ``is_new`` tells the new ones apart. Only these small columns cross the wire twice: the
        rows themselves go out once, new ones straight into their table (:meth:`_append`).
        """
        if keys.height == 0:
            return pl.Series("_row", [], pl.UInt32), pl.Series("_row", [], pl.UInt32)
        self.ingest("_ef_probe", _arrow(keys))
        found = self.query(f"SELECT s._row, {is_new} AS _is_new FROM _ef_probe s {join_where}", what)
        rows = pl.from_arrow(found)
        assert isinstance(rows, pl.DataFrame)
        rows = rows.sort("_row")
        return (
            rows.filter(pl.col("_is_new"))["_row"].cast(pl.UInt32),
            rows.filter(~pl.col("_is_new"))["_row"].cast(pl.UInt32),
        )

    @staticmethod
    def _lookup(table: Table, keys: Sequence[str], columns: Sequence[str], alias: str = "t") -> str:
        """``LEFT JOIN LATERAL`` fetching ``columns`` of the stored row with the staged row's key.

        ``LIMIT 1`` keeps the planner from turning it into a hash join over the whole table: each
        staged row costs one primary-key probe, however large the table grows.
        """
        match = " AND ".join(f"x.{q(k)} = s.{q(k)}" for k in keys)
        cols = ", ".join(f"x.{q(c)}" for c in columns)
        return (
            f"LEFT JOIN LATERAL (SELECT {cols}, 1 AS _found FROM {qt(table)} x WHERE {match} LIMIT 1) {alias} ON true"
        )

    def _write_core(
        self,
        entity: Entity,
        tables: Sequence[Table],
        core: dict[str, pl.DataFrame],
        keys: pl.DataFrame,
        new: pl.Series,
        changed: pl.Series,
    ) -> dict[str, Counts]:
        """Write the CORE rows of the ``new`` and ``changed`` records (row numbers of the parent
        frame and of ``keys``) into ``tables``, parent first; children mirror their parent."""
        counts: dict[str, Counts] = {}
        for declared, table in zip(entity.core, tables, strict=True):
            frame = core[declared.qualified]
            if table.parent_key:
                counts[declared.qualified] = self._replace_children(table, frame, keys, new, changed)
            else:
                counts[declared.qualified] = self._write(table, frame, new, changed)
        return counts

    def write_core(
        self, entity: Entity, keys: pl.DataFrame, core: dict[str, pl.DataFrame], *, shadow: bool
    ) -> dict[str, Counts]:
        """Write CORE rows derived from STG (``transform``), inside the open transaction.

        Into the shadow tables of a full refresh every key is new; otherwise only keys whose
        CORE parent row is missing or older than the STG row are written.
        """
        keys = keys.select(entity.key_names)
        if shadow:
            tables = [shadow_table(t) for t in entity.core]
            new, changed = pl.int_range(keys.height, dtype=pl.UInt32, eager=True), pl.Series([], dtype=pl.UInt32)
        else:
            tables = list(entity.core)
            parent = entity.core[0]
            stg_row = self._lookup(entity.stg, entity.key_names, ["_updated_at"], alias="g")
            core_row = self._lookup(parent, entity.key_names, ["_updated_at"], alias="p")
            older = "p._found IS NULL OR p._updated_at < g._updated_at"
            new, changed = self._probe(
                keys.with_row_index("_row"),
                f"{stg_row} {core_row} WHERE g._found IS NOT NULL AND ({older})",
                "p._found IS NULL",
                f"comparing {parent.qualified} with {entity.stg.qualified}",
            )
        return self._write_core(entity, tables, core, keys, new, changed)

    def _write(self, table: Table, frame: pl.DataFrame, new: pl.Series, changed: pl.Series) -> Counts:
        """Write the rows ``new`` (certainly absent: appended) and ``changed`` (upserted) of ``frame``."""
        if len(new):
            self._append(table, frame if len(new) == frame.height else frame[new])
        if len(changed):
            self._upsert(table, frame[changed])
        return Counts(inserted=len(new), updated=len(changed), unchanged=frame.height - len(new) - len(changed))

    def _append(self, table: Table, frame: pl.DataFrame) -> None:
        """Insert rows whose keys are certainly absent from ``table``: no conflict handling.

        With ``dialect.direct_copy`` they go by binary COPY straight into the table (no TEMP
        table, no INSERT … SELECT); the Arrow types must then be exactly the column types,
        since COPY does not cast, and JSON goes as binary ``jsonb`` (version byte 1, then the
        text), which the server parses as it would the text.
        """
        self._ensure_partitions(table, frame)
        data = frame.select(table.column_names)
        if not self.dialect.direct_copy:
            self.ingest("_ef_new", _arrow(data))
            cols = ", ".join(q(c) for c in table.column_names)
            self.execute(
                f"INSERT INTO {qt(table)} ({cols}) SELECT {self._select_casts(table)} FROM _ef_new s",
                f"inserting into {table.qualified}",
            )
            return
        json_cols = [c.name for c in table.columns if c.type == "json"]
        data = data.with_columns(pl.concat_str(pl.lit("\x01"), pl.col(c)).cast(pl.Binary).alias(c) for c in json_cols)
        try:
            with self.conn.cursor() as cur:
                cur.adbc_ingest(table.name, _arrow(data), mode="append", db_schema_name=table.schema)
        except Exception as e:
            if getattr(e, "sqlstate", None) == "23505":
                # another run's open transaction inserted one of these keys after the probe: a
                # replay probes again and finds the key stored
                raise TransientSinkError(
                    f"{self.display}: copying into {table.qualified}: a concurrent load inserted one of its keys first"
                ) from e
            raise self._translate(e, f"copying into {table.qualified}") from e

    def _upsert(
        self, table: Table, frame: pl.DataFrame, guard: str | None = None, returning: Sequence[str] = ()
    ) -> Any:
        """Stage ``frame`` and upsert it into ``table`` (alias ``x``): ``ON CONFLICT`` on its primary key.

        ``guard`` (SQL over ``EXCLUDED`` and ``x``) decides whether a stored row is replaced. Returns
        the rows written, or with ``returning`` the frame of those columns of the rows written.
        """
        self._ensure_partitions(table, frame)
        self.ingest("_ef_stage", _arrow(frame.select(table.column_names)))
        cols = ", ".join(q(c) for c in (*table.column_names, *MANAGED))
        updates = [c for c in table.column_names if c not in table.primary_key] + ["_updated_at"]
        set_sql = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in updates)
        sql = (
            f"INSERT INTO {qt(table)} AS x ({cols}) SELECT {self._select_casts(table)}, now(), now() FROM _ef_stage s "
            f"ON CONFLICT ({', '.join(q(k) for k in table.primary_key)}) DO UPDATE SET {set_sql}"
            + (f" WHERE {guard}" if guard else "")
        )
        what = f"upserting {table.qualified}"
        if not returning:
            return self.execute(sql, what)
        written = pl.from_arrow(self.query(f"{sql} RETURNING {', '.join(f'x.{q(c)}' for c in returning)}", what))
        assert isinstance(written, pl.DataFrame)
        return written

    def _replace_children(
        self, table: Table, frame: pl.DataFrame, keys: pl.DataFrame, new: pl.Series, changed: pl.Series
    ) -> Counts:
        """Delete the children of the ``changed`` parents, then write those of ``new`` and ``changed``."""
        deleted = 0
        if len(changed):
            self.ingest("_ef_changed", _arrow(keys[changed]))
            # the planner must know how few parents changed before deleting children by them
            self.execute("ANALYZE _ef_changed")
            match = " AND ".join(f"c.{q(k)} = x.{q(p)}" for k, p in zip(keys.columns, table.parent_key, strict=True))
            deleted = self.execute(
                f"DELETE FROM {qt(table)} x WHERE EXISTS (SELECT 1 FROM _ef_changed c WHERE {match})",
                f"deleting children in {table.qualified}",
            )
        parents = keys[pl.concat([new, changed])].rename(dict(zip(keys.columns, table.parent_key, strict=True)))
        # a child may have moved from another parent: its id conflicts, and the upsert moves it
        children = frame.join(parents, on=list(table.parent_key), how="semi")
        inserted = self._upsert(table, children) if children.height else 0
        return Counts(inserted=inserted, deleted=deleted)

    # bookkeeping ----------------------------------------------------------------------------

    def loaded_files(self, entity: str) -> dict[str, tuple[int, str]]:
        """``path -> (size, etag)`` of the files of ``entity`` already loaded, partial ones included:
        a partial file is read again only once its size or etag changes."""
        return {path: (size, etag) for path, (size, etag, _) in self.manifest(entity).items()}

    def manifest(self, entity: str, paths: Iterable[str] | None = None) -> dict[str, tuple[int, str, str]]:
        """``path -> (size, etag, load_id)`` of the manifest rows of ``entity`` (of ``paths`` only, if given)."""
        where = f"entity = {_literal(entity)}"
        if paths is not None:
            paths = sorted(set(paths))
            if not paths:
                return {}
            where += f" AND path IN ({', '.join(_literal(p) for p in paths)})"
        rows = self.query(f"SELECT path, size, etag, load_id FROM {qt(FILES)} WHERE {where}", "reading the manifest")
        return {r["path"]: (int(r["size"]), r["etag"], r["load_id"]) for r in rows.to_pylist()}

    def record_files(self, files: pl.DataFrame, rejects: pl.DataFrame) -> None:
        """Write manifest rows (replacing older ones of the same paths) and their rejects."""
        self.ingest("_ef_files", _arrow(files.select(FILES.column_names)))
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
            self.ingest("_ef_rejects", _arrow(rejects.select(REJECTS.column_names)))
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
        self.ingest("_ef_casts", _arrow(frame))
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
                cur.execute(self.dialect.load_lock_sql.format(_literal(f"{load_id}/{entity}")))
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
        where = f" AND entity = {_literal(entity)}" if entity else ""
        running = self.query(
            f"SELECT load_id, entity, host, pid FROM {qt(LOADS)} WHERE status = 'running'{where}"
        ).to_pylist()
        dead = []
        for r in running:
            key = _literal(f"{r['load_id']}/{r['entity']}")
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
                f"UPDATE {qt(LOADS)} SET status = 'interrupted', error = {_literal(interrupted_error(r))} "
                f"WHERE load_id = {_literal(r['load_id'])} AND entity = {_literal(r['entity'])} "
                "AND status = 'running'",
                "recording an interrupted load",
            )
        self.commit()

    def record_load(self, load: dict[str, Any]) -> None:
        """Insert or update one ``evo_meta.runs`` row and commit it."""
        frame = pl.DataFrame([load], schema=LOADS.polars_schema())
        self.ingest("_ef_load", _arrow(frame))
        updates = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in LOADS.column_names if c not in LOADS.primary_key)
        self.execute(
            f"INSERT INTO {qt(LOADS)} ({', '.join(q(c) for c in LOADS.column_names)}) "
            f"SELECT {self._select_casts(LOADS)} FROM _ef_load s "
            f"ON CONFLICT ({', '.join(q(k) for k in LOADS.primary_key)}) DO UPDATE SET {updates}",
            "recording the load",
        )
        self.commit()

    def read_stg(self, entity: Entity, batch_rows: int, batch_bytes: int) -> Iterator[pl.DataFrame]:
        """Stream the STG rows of ``entity`` (raw_data as text) in batches of about ``batch_rows``
        rows or ``batch_bytes`` of JSON text, whichever comes first.

        Reads through a second connection to the same database, so the caller can write on the
        sink's own connection while the stream is open.
        """
        cols = ", ".join(
            f"CAST({q(c)} AS TEXT) AS {q(c)}" if c == "raw_data" else q(c) for c in entity.stg.column_names
        )
        reader = self.conn.adbc_clone()
        try:
            with reader.cursor() as cur:
                for stmt in self.dialect.session_sql:
                    cur.execute(stmt)
                cur.execute(f"SELECT {cols} FROM {qt(entity.stg)}")
                pending: list[pl.DataFrame] = []
                rows = text = 0
                for batch in cur.fetch_record_batch():
                    frame = pl.from_arrow(batch)
                    assert isinstance(frame, pl.DataFrame)
                    pending.append(frame)
                    rows += frame.height
                    text += int(frame["raw_data"].str.len_bytes().sum())
                    if rows >= batch_rows or text >= batch_bytes:
                        yield pl.concat(pending)
                        pending, rows, text = [], 0, 0
                if pending:
                    yield pl.concat(pending)
        except SinkError:
            raise
        except Exception as e:
            raise self._translate(e, f"reading {entity.stg.qualified}") from e
        finally:
            reader.close()
