"""Schema of a target: tables, columns, indexes, monthly partitions, and full-refresh shadows.

``ensure_tables`` creates what is missing and upgrades what is older without dropping data; DDL
of concurrent processes is serialised by ``dialect.ddl_lock_sql``. Secondary indexes exist only
where ``dialect.secondary_indexes``, partitions only where ``dialect.partitions``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

import polars as pl

from ..errors import ConfigError, SinkError, TransientSinkError
from ..spec import Column, Entity, Table
from .connection import Connection
from .meta import MANAGED, META_TABLES, RENAMED_COLUMNS
from .quoting import literal, q, qt

SHADOW = "__shadow"


def shadow_table(table: Table) -> Table:
    """The table a full refresh builds before swapping it in for ``table``."""
    indexes = tuple(dataclasses.replace(i, name=i.name + SHADOW) for i in table.indexes)
    return dataclasses.replace(table, name=table.name + SHADOW, indexes=indexes)


def partition_name(table: Table, month: dt.date) -> str:
    """The name of the monthly partition of ``table`` starting at ``month`` (a date or datetime)."""
    return f"{table.name}_p{month.year:04d}_{month.month:02d}"


def _month_bounds(month: dt.date) -> tuple[str, str]:
    """The ``FROM`` and ``TO`` literals of the monthly partition starting at ``month``, as UTC
    instants: the year zero-padded (PostgreSQL reads ``'5-01-01'`` as 2005), and the month after
    December 9999 written as year 10000, which no Python date holds but PostgreSQL reads."""
    year, next_month = (month.year + 1, 1) if month.month == 12 else (month.year, month.month + 1)
    return f"{month.year:04d}-{month.month:02d}-01 00:00:00+00", f"{year:04d}-{next_month:02d}-01 00:00:00+00"


class Schema(Connection):
    """DDL on the sink's connection; see the module docstring."""

    def table_stats(self, table: Table) -> dict[str, int] | None:
        """``bytes`` and ``dead_rows`` of a stored table, or None where the target keeps no such
        statistics (``dialect.table_stats_sql``)."""
        if not self.dialect.table_stats_sql:
            return None
        stats = self.query(self.dialect.table_stats_sql.format(schema=table.schema, table=table.name))
        row = stats.to_pylist()[0]
        return {"bytes": int(row["bytes"]), "dead_rows": int(row["dead_rows"])}

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
        return {str(c) for c in rows.column("column_name").to_pylist()}

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
        return tuple(str(c) for c in rows.column("column_name").to_pylist())

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
            self.execute(self.dialect.ddl_lock_sql.format(literal(what)), f"waiting for concurrent DDL on {what}")

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
        empty = [t for t in tables if t.indexes and not self.has_rows(t)]
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
            part = partition_name(table, month)
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
