"""Declarations that tie a transform module to the engine: tables, columns, entities.

A transform module in ``transforms/`` declares one :class:`Entity`: how to decode a bronze
record (an explicit Polars ``Struct``), how to derive its key, which CORE tables it fills and the
pure function that fills them. The engine builds the STG table, the SQL and the load plan from
these declarations, so both sinks see the same data and differ only in dialect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

if TYPE_CHECKING:  # the synth package imports this module's Sample
    from .synth.kit import Frame

#: logical column types; each sink maps them to its own SQL type (see ``sinks.dialect``)
ColumnType = Literal["bigint", "int", "decimal", "text", "bool", "date", "timestamptz", "json"]
COLUMN_TYPES: tuple[str, ...] = ("bigint", "int", "decimal", "text", "bool", "date", "timestamptz", "json")

#: the Polars dtype a transform must produce for each logical type (json is JSON text)
POLARS_TYPES: Mapping[str, pl.DataType] = {
    "bigint": pl.Int64(),
    "int": pl.Int32(),
    "decimal": pl.Decimal(15, 2),
    "text": pl.String(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "timestamptz": pl.Datetime("us", "UTC"),
    "json": pl.String(),
}

#: STG column holding a hash of the raw line, computed by the engine
CONTENT_HASH = "_content_hash"


@dataclass(frozen=True)
class Column:
    """One column of a target table.

    Attributes:
        name: snake_case column name.
        type: logical type, one of :data:`COLUMN_TYPES`.
        nullable: False adds NOT NULL.
        source: the bronze field the value is cast from, if any: a top-level key (``idBranch``)
            for a parent table, ``list[].field`` (``memberships[].idMembership``, or
            ``receivables[].status.id`` inside an object) for a child table. Unless the transform
            writes the column by hand, the engine derives it from this declaration alone: the
            value there, cleaned and cast to ``type`` (see :func:`evo_frames.expr.cast`). Either
            way the engine counts, per column, the values present there that could not be typed
            ("cast failures" in the run summary, ``evo_meta.cast_failures``).
        doc: one line of meaning for the data dictionary (``docs/tables.md``); a column with a
            ``source`` and no ``doc`` means what that EVO field means.
    """

    name: str
    type: ColumnType
    nullable: bool = True
    source: str | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column {self.name!r}: unknown type {self.type!r}; valid: {', '.join(COLUMN_TYPES)}")
        if self.source is not None and (self.source.count("[].") > 1 or not all(self.source_path)):
            raise ValueError(f"column {self.name!r}: source {self.source!r} is neither a bronze key nor `list[].field`")

    @property
    def source_list(self) -> str | None:
        """The list field of a child column's source (``memberships`` of ``memberships[].idMembership``)."""
        if self.source is None or "[]." not in self.source:
            return None
        return self.source.split("[].", 1)[0]

    @property
    def source_path(self) -> tuple[str, ...]:
        """The keys leading to the source value: from the record for a parent column, from the list
        element for a child column (``("status", "id")`` of ``receivables[].status.id``); empty
        without a source."""
        if self.source is None:
            return ()
        return tuple(self.source.split("[].", 1)[-1].split("."))


@dataclass(frozen=True)
class Index:
    """A secondary index: ``columns`` of the table, optionally partial (``where`` is SQL)."""

    name: str
    columns: tuple[str, ...]
    where: str | None = None


@dataclass(frozen=True)
class Table:
    """A target table.

    Attributes:
        schema: ``stg_evo`` or ``core``.
        name: table name without schema.
        columns: all columns the transform produces, in order. The sink adds ``_loaded_at``
            (first insert) and ``_updated_at`` (last content change).
        primary_key: key columns; upserts conflict on them.
        parent_key: for child tables, the columns that hold the parent's key. When a parent
            changes, all its children are deleted and the new ones inserted, so elements removed
            upstream disappear and nothing duplicates.
        partition_by: a ``date`` or ``timestamptz`` key column to range-partition on (monthly,
            created on demand) where the sink supports partitioning.
        indexes: secondary indexes, each serving a query listed in the README (or the load).
        retired_indexes: names of indexes earlier versions created; ``init`` drops them.
        doc: what one row is, for the data dictionary.
    """

    schema: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    parent_key: tuple[str, ...] = ()
    partition_by: str | None = None
    indexes: tuple[Index, ...] = ()
    retired_indexes: tuple[str, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        missing = [k for k in (*self.primary_key, *self.parent_key) if k not in names]
        if missing:
            raise ValueError(f"table {self.qualified}: key columns {missing} are not among its columns {names}")
        if self.partition_by is not None and self.partition_by not in self.primary_key:
            raise ValueError(
                f"table {self.qualified}: partition column {self.partition_by!r} must be in the primary key"
            )
        lists = {c.source_list for c in self.sourced}
        if self.parent_key and (len(lists) > 1 or None in lists):
            raise ValueError(
                f"table {self.qualified}: a child table's sources are fields of one list (`list[].field`); "
                f"got {[c.source for c in self.sourced]}"
            )
        flat = [c.source for c in self.sourced if c.source_list is not None or len(c.source_path) > 1]
        if not self.parent_key and flat:
            raise ValueError(f"table {self.qualified}: a parent table's sources are top-level bronze keys; got {flat}")

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def polars_schema(self) -> dict[str, pl.DataType]:
        return {c.name: POLARS_TYPES[c.type] for c in self.columns}

    @property
    def source_list(self) -> str | None:
        """The bronze list a child table's rows are the elements of (None for a parent table, or a
        child table with no column that has a ``source``)."""
        return next((c.source_list for c in self.sourced), None)

    def record_fields(self) -> dict[str, pl.DataType]:
        """The bronze fields the sources read, as decode dtypes: a parent table's record keys, a
        child table's element fields, in the order of the columns; scalars are ``pl.String``, a
        ``key.field`` source makes ``key`` a struct of its fields. For building a record type.

        >>> t = Table("core", "t", (Column("k", "bigint"), Column("a", "int", source="l[].a"),
        ...           Column("s", "int", source="l[].st.id"), Column("n", "text", source="l[].st.name")),
        ...           ("k",), parent_key=("k",))
        >>> t.record_fields()
        {'a': String, 'st': Struct({'id': String, 'name': String})}
        """
        tree: dict[str, Any] = {}
        for c in self.sourced:
            node = tree
            for name in c.source_path[:-1]:
                node = node.setdefault(name, {})
            node[c.source_path[-1]] = None

        def dtype(node: dict[str, Any]) -> dict[str, pl.DataType]:
            return {k: pl.String() if v is None else pl.Struct(dtype(v)) for k, v in node.items()}

        return dtype(tree)

    @property
    def sourced(self) -> tuple[Column, ...]:
        """The columns with a ``source``."""
        return tuple(c for c in self.columns if c.source is not None)

    def derived(self, hand: Collection[str] = ()) -> tuple[Column, ...]:
        """The columns the engine derives from their declaration: those with a ``source``, except
        the ones the transform writes by hand (``hand``, column names).

        Raises:
            ValueError: a name of ``hand`` is not a column of the table.

        >>> t = Table("core", "t", (Column("k", "bigint"), Column("a", "text", source="A"),
        ...           Column("b", "text", source="B")), ("k",))
        >>> [c.name for c in t.derived(hand=("b",))]
        ['a']
        """
        unknown = [name for name in hand if name not in self.column_names]
        if unknown:
            raise ValueError(
                f"table {self.qualified}: hand-written columns {unknown} are not among its columns "
                f"{list(self.column_names)}"
            )
        return tuple(c for c in self.sourced if c.name not in hand)


@dataclass(frozen=True)
class RecordZone:
    """A bronze field that names the time zone of each record's timestamps.

    Attributes:
        field: the top-level bronze field (entries: ``timeZone``).
        zones: its values → IANA zones. A record whose value is missing, empty or not listed is
            read in ``source_timezone``; the engine counts those records per value ("zone
            fallbacks" in the run summary) and reports the values it does not know.
    """

    field: str
    zones: Mapping[str, str]


@dataclass(frozen=True)
class TransformContext:
    """What a transform may know besides its input: settings, never I/O handles."""

    source_timezone: str = "America/Sao_Paulo"


@dataclass(frozen=True)
class Endpoint:
    """Where ``evo-frames extract`` fetches an entity from the EVO API, and how it writes it.

    A run covers ``--start`` .. ``--end`` in windows of ``months`` calendar months (counted from
    ``--start``) or of ``days`` days, the last one clipped at ``--end``. Each window is fetched
    with ``GET path?<start_param>=<first day>T00:00:00&<end_param>=<last day>T23:59:59.9999999``
    (the last 100 ns tick of the last day, so nothing on that day is left out and windows never
    overlap) plus ``params``, paged by ``skip``/``take`` until a page shorter than ``take``.

    Attributes:
        path: URL path under ``EVO_API_URL``, e.g. ``/api/v2/members``.
        window_field: the record field the API selects windows by (documentation and tests).
        start_param: query parameter of the window's first instant.
        end_param: query parameter of the window's last instant.
        take: records per page; at most what the API allows.
        part_size: records per full bronze part (the last part of a window holds the rest).
        months: window length in months, or 0 when ``days`` is given.
        days: window length in days, or 0 when ``months`` is given.
        prefix: ``strftime`` format of the window start in part names, e.g. ``%Y-%m_``.
        params: further query parameters sent with every page.
    """

    path: str
    window_field: str
    start_param: str
    end_param: str
    take: int
    part_size: int
    months: int = 0
    days: int = 0
    prefix: str = "%Y-%m_"
    params: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if (self.months > 0) == (self.days > 0):
            raise ValueError(f"endpoint {self.path}: give exactly one of months or days as the window length")
        if self.take < 1 or self.part_size < 1:
            raise ValueError(f"endpoint {self.path}: take and part_size must be at least 1")


#: ``keys(records, ctx)`` adds the key columns and ``_key_error`` (null when the key is fine,
#: else a reason naming the field and value); rows with an error go to ``evo_meta.rejects``
KeysFn = Callable[[pl.LazyFrame, TransformContext], pl.LazyFrame]
#: ``transform(records, ctx)`` returns one LazyFrame per CORE table, keyed by qualified table name
TransformFn = Callable[[pl.LazyFrame, TransformContext], dict[str, pl.LazyFrame]]


@dataclass(frozen=True)
class Sample:
    """How ``evo-frames synth`` writes realistic bronze of one entity (see :mod:`evo_frames.synth`).

    A module ``transforms/<entity>_sample.py`` declares it as ``SAMPLE``; the registry sets it as
    the entity's :attr:`Entity.sample`.

    Attributes:
        entity: name of the entity it samples.
        build: ``build(frame, populations)``: the records of ``frame`` (an
            :class:`evo_frames.synth.kit.Frame`) as a LazyFrame of ``i`` and ``line`` (JSON text),
            in ``i`` order; ``populations`` sizes the entities of :attr:`refers`.
        part_size: records in a full part file, as the extractor flushes them (pages x page size).
        batch_rows: records built per Polars query: large enough to amortise planning, small
            enough to bound memory.
        page_size: records per API request, for the manifest's request counts.
        history: start of the extracted history of a stock entity: its first run spreads the
            records over it. None for an event entity, whose first run spans the last
            ``min_span`` seconds.
        window_months: months per extraction window (window prefix ``YYYY-MM_``), or 0 for weekly
            windows (``YYYY-MM-DD_``).
        min_step: seconds between consecutive records at least.
        min_span: seconds a first run of an event entity spans at least.
        refers: records of each entity this one points at, per record of this one (so referenced
            ids stay inside what the same ``records`` generates for that entity).
        workers: the manifest's ``workers``.
        manifest: further keys of the manifest, before ``results``.
    """

    entity: str
    build: Callable[[Frame, Mapping[str, int]], pl.LazyFrame]
    part_size: int
    batch_rows: int
    page_size: int
    history: dt.date | None = None
    window_months: int = 0
    min_step: int = 1
    min_span: int = 0
    refers: Mapping[str, float] = field(default_factory=dict)
    workers: int = 4
    manifest: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Entity:
    """Everything the engine needs to load one EVO entity.

    Attributes:
        name: entity name as in the lake path (``entity=<name>``).
        record: explicit decode dtype of one bronze line; scalar leaves are ``pl.String`` so a
            value of an unexpected JSON type never fails a whole chunk (casts happen in the
            transform, where a failure becomes NULL and is counted).
        key: STG/CORE key columns, with their logical types.
        keys: adds key columns and ``_key_error`` to the decoded records.
        core: CORE tables, parent first.
        transform: the pure transform to CORE. Input: the decoded records (fields of ``record``
            plus key columns and lineage: ``_source_file``, ``_source_line``, ``run_id``,
            ``ingestion_date``), one row per record after latest-wins dedup. The parent table's
            frame must keep the input's rows and order (one row per record).
        order: position in ``--entity all`` (lower first).
        api: where ``evo-frames extract`` fetches the entity from, if anywhere.
        zone: the field naming each record's time zone, if the records have one.
        sample: its sample-data generator for ``synth``, set by the registry from the
            ``SAMPLE`` of a sample module; None when it has none.
        notes: Markdown for the data dictionary (``docs/tables.md``), after its introduction: what
            a reader of the entity's tables must know that no single column says; "" for nothing.
    """

    name: str
    record: pl.Struct
    key: tuple[Column, ...]
    keys: KeysFn
    core: tuple[Table, ...]
    transform: TransformFn
    order: int = 100
    api: Endpoint | None = None
    zone: RecordZone | None = None
    sample: Sample | None = None
    notes: str = ""
    stg: Table = field(init=False)

    def __post_init__(self) -> None:
        stg_cols = (
            *self.key,
            Column("raw_data", "json", nullable=False, doc="the bronze line as received (JSON)"),
            # xxhash64 of the raw line: unchanged re-sends are recognised without parsing JSON
            Column(
                CONTENT_HASH, "bigint", nullable=False, doc="xxhash64 of the raw line; equal hash, unchanged record"
            ),
            Column("_source_file", "text", nullable=False, doc="path of the bronze file the record came from"),
            Column("_source_line", "bigint", nullable=False, doc="its physical line number in that file, from 1"),
            Column(
                "run_id", "text", nullable=False, doc="the bronze run (extraction) of that file; CORE: _source_run_id"
            ),
            Column("ingestion_date", "date", doc="the ingestion_date=… folder of that file"),
        )
        partition = next((c.name for c in self.key if c.type in ("date", "timestamptz")), None)
        stg = Table(
            "stg_evo",
            f"{self.name}_raw",
            stg_cols,
            primary_key=tuple(c.name for c in self.key),
            partition_by=partition,
            # no query reads STG by run (runs are counted from evo_meta.files): it only cost loads
            retired_indexes=(f"idx_stg_{self.name}_run",),
            doc=f"one row per {self.name} key: the latest bronze line of that key (run, file, line) and its origin",
        )
        object.__setattr__(self, "stg", stg)
        if not self.core or self.core[0].parent_key:
            raise ValueError(f"entity {self.name}: the first CORE table must be the parent (no parent_key)")

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.key)

    @property
    def tables(self) -> tuple[Table, ...]:
        return (self.stg, *self.core)
