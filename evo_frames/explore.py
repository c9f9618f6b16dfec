"""Exploration of a target from Python or Jupyter: Polars frames of STG, CORE and the bookkeeping.

:class:`Explorer` opens the configured target (flags > environment > config file, like the
CLI) for each question and closes it after, so that a notebook never holds a DuckDB file that a
load wants to write. Every method that reads rows takes ``limit`` (default
:data:`DEFAULT_LIMIT`) and the database applies it, so nothing loads 100M rows by accident:
pass ``limit=None`` to read everything, or aggregate in SQL with :meth:`Explorer.sql`.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pyarrow as pa

from . import drift as drifts
from .api import connect
from .config import Settings, load_settings
from .errors import ConfigError
from .registry import discover
from .sinks import Sink
from .sinks.meta import FILES, KEY_STATS, LOADS, REJECTS
from .sinks.quoting import q, qt
from .spec import Entity, Table

#: rows a method returns unless told otherwise
DEFAULT_LIMIT = 10_000


def _plain(table: pa.Table) -> pl.DataFrame:
    """A query result as plain Polars types: driver extension types (PostgreSQL ``jsonb``, ``numeric``)
    become their storage (text), and ``numeric`` then a Decimal of its declared precision (or Float64)."""
    columns: dict[str, pl.Series] = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        if not isinstance(field.type, pa.BaseExtensionType):
            columns[field.name] = pl.Series(field.name, column)
            continue
        series = pl.Series(field.name, pa.chunked_array([c.storage for c in column.chunks], field.type.storage_type))
        meta = field.metadata or {}
        if meta.get(b"POSTGRESQL:type") == b"numeric":
            typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1")) - 4  # PostgreSQL stores (precision << 16 | scale) + 4
            series = series.cast(pl.Decimal(typmod >> 16, typmod & 0xFFFF) if typmod >= 0 else pl.Float64)
        columns[field.name] = series
    return pl.DataFrame(list(columns.values()))


class Explorer:
    """Questions to one target, answered as Polars DataFrames.

    Args:
        settings: resolved settings; else ``config`` and ``overrides`` (``target=``, ``lake=``, …)
            over the environment and the config file.

    A tiny DuckDB target with sample members:

    >>> import tempfile
    >>> from evo_frames import api
    >>> from evo_frames.explore import Explorer
    >>> lake, target = "memory://explore-doctest", f"duckdb://{tempfile.mkdtemp()}/evo.duckdb"
    >>> _ = api.synth("members", records=40, runs=1, lake=lake)
    >>> _ = api.run("members", lake=lake, target=target)
    >>> ex = Explorer(target=target)

    STG records decoded with the entity's own record type, nested lists kept as lists:

    >>> stg = ex.stg("members", limit=5)
    >>> stg.height, stg.schema["memberships"].__class__.__name__, "run_id" in stg.columns
    (5, 'List', True)

    A CORE table, bounded, and its NULLs per column:

    >>> ex.core("evo_members", columns=["member_id", "status"], limit=3).columns
    ['member_id', 'status']
    >>> ex.nulls("core.evo_members").filter(pl.col("column") == "member_id")["nulls"].item()
    0

    Bookkeeping and drift:

    >>> ex.files("members")["lines_read"].sum() == ex.runs("members")["lines_read"].sum()
    True
    >>> ex.rejects("members").height
    0
    >>> drift = ex.drift("members")
    >>> drift.filter(pl.col("path") == "idMember").select("read", "share").row(0)
    (True, 1.0)
    >>> ex.sql("SELECT count(*) AS n FROM core.evo_members")["n"].item()
    40
    """

    def __init__(self, settings: Settings | None = None, *, config: str | None = None, **overrides: Any) -> None:
        self.settings = settings if settings is not None else load_settings(overrides, config=config)
        self.entities = discover()

    def _open(self) -> Sink:
        # the one place that opens the target: read-only, exploration never writes
        return connect(self.settings, read_only=True)

    def sql(self, query: str, *, limit: int | None = DEFAULT_LIMIT) -> pl.DataFrame:
        """The result of one SQL query, at most ``limit`` rows (None: all)."""
        bounded = query if limit is None else f"SELECT * FROM ({query.rstrip().rstrip(';')}) AS _q LIMIT {int(limit)}"
        with self._open() as sink:
            return _plain(sink.query(bounded))

    def entity(self, name: str) -> Entity:
        if name not in self.entities:
            raise ConfigError(f"unknown entity {name!r}; valid: {', '.join(self.entities)}")
        return self.entities[name]

    def table(self, name: str) -> Table:
        """A declared table by ``schema.name`` or by name alone (``evo_members``, ``members_raw``)."""
        tables = {t.qualified: t for e in self.entities.values() for t in e.tables}
        tables.update({t.qualified: t for t in (FILES, REJECTS, LOADS, KEY_STATS)})
        found = [t for qualified, t in tables.items() if name in (qualified, t.name)]
        if not found:
            raise ConfigError(f"unknown table {name!r}; valid: {', '.join(sorted(tables))}")
        return found[0]

    def stg(self, entity: str, *, run_id: str | None = None, limit: int | None = DEFAULT_LIMIT) -> pl.DataFrame:
        """STG records of ``entity`` (of one run if given), in key order: the fields of the record
        type decoded from ``raw_data``, then the key and lineage columns."""
        ent = self.entity(entity)
        lineage = [c for c in ent.stg.column_names if c != "raw_data"]
        where = f" WHERE run_id = '{run_id}'" if run_id else ""
        keys = ", ".join(q(k) for k in ent.key_names)
        frame = self.sql(
            f"SELECT {', '.join(q(c) for c in lineage)}, CAST(raw_data AS TEXT) AS raw_data "
            f"FROM {qt(ent.stg)}{where} ORDER BY {keys}",
            limit=limit,
        )
        return (
            frame.with_columns(pl.col("raw_data").str.json_decode(ent.record).alias("_record"))
            .select("_record", *lineage, "raw_data")
            .unnest("_record")
        )

    def core(self, table: str, *, columns: list[str] | None = None, limit: int | None = DEFAULT_LIMIT) -> pl.DataFrame:
        """Rows of a CORE table (``evo_members`` or ``core.evo_members``), in primary-key order."""
        t = self.table(table)
        cols = ", ".join(q(c) for c in columns) if columns else "*"
        return self.sql(f"SELECT {cols} FROM {qt(t)} ORDER BY {', '.join(q(k) for k in t.primary_key)}", limit=limit)

    def nulls(self, table: str) -> pl.DataFrame:
        """Per column of ``table``: rows, NULLs and their share (one pass over the table)."""
        t = self.table(table)
        counts = ", ".join(f"count({q(c)}) AS {q(c)}" for c in t.column_names)
        row = self.sql(f"SELECT count(*) AS _rows, {counts} FROM {qt(t)}", limit=None).row(0, named=True)
        total = int(row.pop("_rows"))
        return pl.DataFrame(
            {
                "column": list(row),
                "rows": [total] * len(row),
                "nulls": [total - int(v) for v in row.values()],
            }
        ).with_columns((pl.col("nulls") / pl.col("rows")).fill_nan(0.0).alias("share"))

    def _meta(self, table: Table, entity: str | None, order: str, limit: int | None) -> pl.DataFrame:
        where = f" WHERE entity = '{self.entity(entity).name}'" if entity else ""
        return self.sql(f"SELECT * FROM {qt(table)}{where} ORDER BY {order}", limit=limit)

    def files(self, entity: str | None = None, *, limit: int | None = DEFAULT_LIMIT) -> pl.DataFrame:
        """``evo_meta.files``: the bronze files loaded, newest first."""
        return self._meta(FILES, entity, "_loaded_at DESC, path", limit)

    def runs(self, entity: str | None = None, *, limit: int | None = DEFAULT_LIMIT) -> pl.DataFrame:
        """``evo_meta.runs``: one row per load and entity, newest first, with ``records_per_second``."""
        frame = self._meta(LOADS, entity, "started_at DESC, entity", limit)
        return frame.with_columns(
            (pl.col("lines_read") / pl.col("seconds").cast(pl.Float64)).fill_nan(None).alias("records_per_second")
        )

    def rejects(self, entity: str | None = None, *, limit: int | None = DEFAULT_LIMIT) -> pl.DataFrame:
        """``evo_meta.rejects``: lines that could not be loaded, by file and line."""
        return self._meta(REJECTS, entity, "path, line", limit)

    def drift(self, entity: str) -> pl.DataFrame:
        """Key statistics of ``entity`` per run (see :mod:`evo_frames.drift`): ``path``, ``sampled``,
        ``present``, ``non_null``, JSON ``types``, ``read`` by a transform, ``share``, ``non_null_share``."""
        with self._open() as sink:
            return drifts.frame(sink, self.entity(entity))
