"""Cleaning and casting expressions shared by the transforms, and the columns derived from
their declarations.

Bronze scalars are decoded as strings (see :class:`evo_frames.spec.Entity`), so every typed
column is a cast of a string. Each helper trims, turns an empty string into NULL and casts
leniently: a value that cannot be cast becomes NULL, which the engine counts per column.

A column declared with a ``source`` (:class:`evo_frames.spec.Column`) needs no expression of its
own: :func:`parent_table` and :func:`child_table` cast it from that source with :func:`cast`, and a
transform writes by hand only the columns that are more than that (fallback chains, picks, keys,
computed values).

>>> import polars as pl
>>> df = pl.DataFrame({"v": [" 12 ", "", "x", None]})
>>> df.select(bigint("v")).to_series().to_list()
[12, None, None, None]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import polars as pl

from .spec import Column, RecordZone, Table

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.f"


def _as_expr(value: str | pl.Expr) -> pl.Expr:
    return pl.col(value) if isinstance(value, str) else value


def text(value: str | pl.Expr) -> pl.Expr:
    """Trimmed string; empty or whitespace-only becomes NULL."""
    s = _as_expr(value).cast(pl.String).str.strip_chars()
    # when/then, not replace("", None): replace costs ~0.3 ms per call, more than it saves on a chunk
    return pl.when(s != "").then(s)


def bigint(value: str | pl.Expr) -> pl.Expr:
    """64-bit integer; ``" 12 "`` → 12, anything else (``"12.5"``, ``"x"``) → NULL."""
    return text(value).cast(pl.Int64, strict=False)


def int32(value: str | pl.Expr) -> pl.Expr:
    """32-bit integer (counters, small codes); out of range → NULL."""
    return bigint(value).cast(pl.Int32, strict=False)


#: the largest magnitude DECIMAL(15,2) holds, exclusive
_MONEY_LIMIT = 10**13


def money(value: str | pl.Expr) -> pl.Expr:
    """DECIMAL(15,2), rounded half away from zero at the cent, as PostgreSQL rounds ``numeric``.

    The text is parsed as a decimal, not a float, so ``"1.005"`` rounds to 1.01. A value that does
    not fit (|value| >= 10^13 once rounded) is NULL, counted as a cast failure like any other:
    Polars' own cast raises on it even when not strict.
    """
    d = text(value).cast(pl.Decimal(38, 20), strict=False).round(2, mode="half_away_from_zero")
    return pl.when(d.abs() < _MONEY_LIMIT).then(d).cast(pl.Decimal(15, 2))


def number(value: str | pl.Expr) -> pl.Expr:
    """A plain double (non-money measures)."""
    return text(value).cast(pl.Float64, strict=False)


def flag(value: str | pl.Expr) -> pl.Expr:
    """Boolean; missing/null → False; ``true/false/1/0`` (any case) parsed; anything else → NULL."""
    s = _as_expr(value).cast(pl.String).str.strip_chars().str.to_lowercase().fill_null("")
    return s.replace_strict(_FLAGS | {"": False}, default=None, return_dtype=pl.Boolean)


_FLAGS = {"true": True, "1": True, "false": False, "0": False}


def record_zone(zone: RecordZone, fallback: str) -> pl.Expr:
    """The IANA zone of each record: its zone field through ``zone.zones``, else ``fallback``.

    >>> z = RecordZone("tz", {"SA Western Standard Time": "America/Manaus"})
    >>> df = pl.DataFrame({"tz": ["SA Western Standard Time", "Mars Standard Time", " ", None]})
    >>> df.select(record_zone(z, "America/Sao_Paulo")).to_series().to_list()
    ['America/Manaus', 'America/Sao_Paulo', 'America/Sao_Paulo', 'America/Sao_Paulo']
    """
    return text(zone.field).replace_strict(dict(zone.zones), default=pl.lit(fallback), return_dtype=pl.String)


#: the years every target and Python can hold (PostgreSQL's timestamptz and ``datetime`` both can):
#: a date or an instant (in UTC) outside them becomes NULL, counted as a value that could not be typed
MIN_YEAR, MAX_YEAR = 1, 9999


def in_range(value: pl.Expr) -> pl.Expr:
    """``value`` (a date, or a datetime in UTC) where its year is 1..9999, else NULL.

    >>> import datetime as dt
    >>> df = pl.DataFrame({"d": [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2025, 1, 1)]})
    >>> df.select(in_range(pl.col("d").dt.offset_by("-1d"))).to_series().to_list()
    [None, datetime.date(9999, 12, 30), datetime.date(2024, 12, 31)]
    """
    return pl.when(value.dt.year().is_between(MIN_YEAR, MAX_YEAR)).then(value)


def _in_zone(local: pl.Expr, tz: str) -> pl.Expr:
    return local.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")


def _clean_ts(value: str | pl.Expr) -> pl.Expr:
    return _as_expr(value).cast(pl.String).str.strip_chars().str.replace(" ", "T", literal=True)


def _completed(s: pl.Expr, n: pl.Expr) -> pl.Expr:
    # complete the short forms so that one format parses every value (a single strptime pass)
    return s + pl.when(n == 10).then(pl.lit("T00:00:00")).when(n == 16).then(pl.lit(":00")).otherwise(pl.lit(""))


def _local_of(full: pl.Expr) -> pl.Expr:
    return full.str.strptime(pl.Datetime("us"), _TS_FORMAT, strict=False, exact=True)


def _offset_of(full: pl.Expr) -> pl.Expr:
    return full.str.replace(r"[Zz]$", "+00:00").str.strptime(
        pl.Datetime("us", "UTC"), _TS_FORMAT + "%z", strict=False, exact=True
    )


def _local_and_offset(value: str | pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """The naive local time of an offset-less value, and the UTC instant of a value with an offset."""
    # no empty-to-NULL step: an empty string fails both parses anyway, and a smaller expression
    # is cheaper to plan (a members transform plans about 20 of these)
    s = _clean_ts(value)
    full = _completed(s, s.str.len_bytes())
    return _local_of(full), _offset_of(full)


#: the common form, which Polars parses about 3x faster than the general format
_TS_FAST_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _with_local_and_offset(frame: pl.LazyFrame, values: Mapping[str, pl.Expr]) -> pl.LazyFrame:
    """Adds ``_local_<c>`` and ``_offset_<c>`` (as in :func:`_local_and_offset`) for each ``c: value``.

    The same values as :func:`_local_and_offset`, staged so that each step reads columns: Polars
    evaluates a subexpression once per reference (inside ``when``/``then`` too), so the one-expression
    form parses and cleans every value several times. The common ``YYYY-MM-DDTHH:MM:SS`` form is
    parsed with the fast fixed format; only the other values go through the general parse.
    """
    if not values:
        return frame
    cols = list(values)
    frame = frame.with_columns(_clean_ts(v).alias(f"_ts_s_{c}") for c, v in values.items())
    frame = frame.with_columns(
        pl.col(f"_ts_s_{c}")
        .str.strptime(pl.Datetime("us"), _TS_FAST_FORMAT, strict=False, exact=True)
        .alias(f"_ts_fast_{c}")
        for c in cols
    )
    # the values the fast form did not read (null where it did)
    frame = frame.with_columns(
        pl.when(pl.col(f"_ts_fast_{c}").is_null()).then(pl.col(f"_ts_s_{c}")).alias(f"_ts_s_{c}") for c in cols
    )
    frame = frame.with_columns(
        _completed(pl.col(f"_ts_s_{c}"), pl.col(f"_ts_s_{c}").str.len_bytes()).alias(f"_ts_s_{c}") for c in cols
    )
    frame = frame.with_columns(
        *(pl.coalesce(pl.col(f"_ts_fast_{c}"), _local_of(pl.col(f"_ts_s_{c}"))).alias(f"_local_{c}") for c in cols),
        *(_offset_of(pl.col(f"_ts_s_{c}")).alias(f"_offset_{c}") for c in cols),
    )
    return frame.drop(*(f"_ts_{part}_{c}" for c in cols for part in ("s", "fast")))


def with_timestamps(frame: pl.LazyFrame, values: Mapping[str, pl.Expr], tz: str) -> pl.LazyFrame:
    """Adds, for each ``column: value`` of ``values``, :func:`timestamp` of ``value`` in ``tz``:
    the same values, computed in stages over all the columns at once (several times cheaper).

    >>> df = pl.DataFrame({"t": ["2025-11-03T06:41:17.5", "2025-11-03", "2025-11-03T06:41:17Z", "x"]})
    >>> out = with_timestamps(df.lazy(), {"at": pl.col("t")}, "America/Sao_Paulo").collect()
    >>> out.columns, [str(v) for v in out["at"]]
    (['t', 'at'], ['2025-11-03 09:41:17.500000+00:00', '2025-11-03 03:00:00+00:00', \
'2025-11-03 06:41:17+00:00', 'None'])
    """
    if not values:
        return frame
    staged = _with_local_and_offset(frame, values)
    staged = staged.with_columns(
        pl.coalesce(_in_zone(pl.col(f"_local_{c}"), tz), pl.col(f"_offset_{c}")).alias(c) for c in values
    )
    return staged.with_columns(in_range(pl.col(c)).alias(c) for c in values).drop(
        *(f"_{part}_{c}" for c in values for part in ("local", "offset"))
    )


def timestamp(value: str | pl.Expr, tz: str) -> pl.Expr:
    """TIMESTAMPTZ (UTC) from an EVO timestamp.

    Offset-less values are local time in ``tz`` (EVO sends Brazilian local time). An ambiguous
    local time (the hour repeated when daylight saving ends) takes the earlier instant; a
    non-existent one (the hour skipped when it starts) becomes NULL. Values that carry an offset
    or ``Z`` keep it. Accepted: ``YYYY-MM-DD[(T| )HH:MM[:SS[.f]]]``. An instant whose year in UTC
    is outside 1..9999 (``0000-01-01``, or ``9999-12-31T23:59:59`` read west of UTC) becomes NULL.

    >>> df = pl.DataFrame({"t": ["2025-11-03T06:41:17.5", "2025-11-03", "2025-11-03T06:41:17Z", "x"]})
    >>> [str(v) for v in df.select(timestamp("t", "America/Sao_Paulo")).to_series()]
    ['2025-11-03 09:41:17.500000+00:00', '2025-11-03 03:00:00+00:00', '2025-11-03 06:41:17+00:00', 'None']
    """
    local, offset = _local_and_offset(value)
    return in_range(pl.coalesce(_in_zone(local, tz), offset))


def is_timestamp(value: str | pl.Expr) -> pl.Expr:
    """True where :func:`timestamp` reads the value in some zone (cheaper: no zone is applied).

    >>> pl.DataFrame({"t": ["2025-11-03T06:41:17", "2025-11-03", "2025-11-03T06:41:17Z", "x", None]}).select(
    ...     is_timestamp("t")).to_series().to_list()
    [True, True, True, False, False]
    """
    local, offset = _local_and_offset(value)
    return local.is_not_null() | offset.is_not_null()


def with_is_timestamp(frame: pl.LazyFrame, values: Mapping[str, pl.Expr]) -> pl.LazyFrame:
    """Adds, for each ``column: value`` of ``values``, :func:`is_timestamp` of ``value`` (the
    same values, parsed in stages with the fast path of :func:`with_timestamps`).

    >>> df = pl.DataFrame({"t": ["2025-11-03T06:41:17", "2025-11-03", "2025-11-03T06:41:17Z", "x", None]})
    >>> with_is_timestamp(df.lazy(), {"ok": pl.col("t")}).collect()["ok"].to_list()
    [True, True, True, False, False]
    """
    if not values:
        return frame
    staged = _with_local_and_offset(frame, values)
    return staged.with_columns(
        (pl.col(f"_local_{c}").is_not_null() | pl.col(f"_offset_{c}").is_not_null()).alias(c) for c in values
    ).drop(*(f"_{part}_{c}" for c in values for part in ("local", "offset")))


def with_zoned_timestamps(
    records: pl.LazyFrame, fields: Mapping[str, str], tz: str, zone: RecordZone, zone_column: str
) -> pl.LazyFrame:
    """Adds ``zone_column`` (each record's IANA zone, see :func:`record_zone`) and, for each
    ``column: field`` of ``fields``, the TIMESTAMPTZ of ``field`` read in that zone (else like
    :func:`timestamp`).

    >>> z = RecordZone("tz", {"SA Western Standard Time": "America/Manaus"})
    >>> df = pl.DataFrame({"t": ["2025-03-10T08:00:00"] * 2, "tz": ["SA Western Standard Time", None]})
    >>> out = with_zoned_timestamps(df.lazy(), {"at": "t"}, "America/Sao_Paulo", z, "zone").collect()
    >>> [(str(at), zone) for at, zone in out.select("at", "zone").rows()]
    [('2025-03-10 12:00:00+00:00', 'America/Manaus'), ('2025-03-10 11:00:00+00:00', 'America/Sao_Paulo')]
    """
    # parsed once here: inside the expressions below each would be parsed again per zone
    staged = _with_local_and_offset(
        records.with_columns(record_zone(zone, tz).alias(zone_column)), {c: pl.col(f) for c, f in fields.items()}
    )
    names = [tz, *sorted(set(zone.zones.values()) - {tz})]
    in_zone = pl.col(zone_column)

    def read(c: str) -> pl.Expr:
        # replace_time_zone takes one zone per call: each zone converts only its own records
        local = pl.col(f"_local_{c}")
        zoned = (_in_zone(pl.when(in_zone == z).then(local), z) for z in names)
        return in_range(pl.coalesce(*zoned, pl.col(f"_offset_{c}")))

    return staged.with_columns(read(c).alias(c) for c in fields).drop(
        *(f"_{part}_{c}" for c in fields for part in ("local", "offset"))
    )


def date(value: str | pl.Expr) -> pl.Expr:
    """DATE from a date or a midnight timestamp (the calendar date as sent, no zone shift); a
    year outside 1..9999 becomes NULL.

    >>> pl.DataFrame({"d": ["2025-11-03T06:41:17", "0000-01-01", "0005-03-01", "x"]}).select(
    ...     date("d")).to_series().to_list()
    [datetime.date(2025, 11, 3), None, datetime.date(5, 3, 1), None]
    """
    return in_range(text(value).str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d", strict=False, exact=True))


def full_name(first: str | pl.Expr, last: str | pl.Expr) -> pl.Expr:
    """``trim(first || ' ' || last)`` with NULL parts skipped; NULL when both are empty."""
    joined = pl.concat_str([text(first).fill_null(""), text(last).fill_null("")], separator=" ")
    return text(joined)


#: the lineage column every CORE table carries: the bronze run of the record a row comes from
SOURCE_RUN_ID = "_source_run_id"


def source_run_id() -> pl.Expr:
    """The ``_source_run_id`` lineage column every CORE table carries."""
    return pl.col("run_id").alias(SOURCE_RUN_ID)


def _cast_with(fn: Callable[[pl.Expr], pl.Expr]) -> Callable[[pl.Expr, str], pl.Expr]:
    return lambda value, tz: fn(value)


#: the standard cleaning and cast of each logical type (``json`` is text as sent, trimmed)
_CASTS: Mapping[str, Callable[[pl.Expr, str], pl.Expr]] = {
    "bigint": _cast_with(bigint),
    "int": _cast_with(int32),
    "decimal": _cast_with(money),
    "text": _cast_with(text),
    "bool": _cast_with(flag),
    "date": _cast_with(date),
    "timestamptz": timestamp,
    "json": _cast_with(text),
}

#: logical types whose cast never turns a present value into NULL (nothing to count)
INFALLIBLE = frozenset({"text", "json"})

#: the struct column holding the list element in the rows of :func:`elements`
ELEMENT = "_el"


def cast(column: Column, value: pl.Expr, tz: str) -> pl.Expr:
    """``value``, a bronze string, cleaned and cast to ``column``'s type the standard way:
    :func:`bigint`, :func:`int32`, :func:`money`, :func:`text`, :func:`flag`, :func:`date` or
    :func:`timestamp` (offset-less values read in ``tz``).

    >>> df = pl.DataFrame({"v": [" 7 ", "x"]})
    >>> df.select(cast(Column("n", "int"), pl.col("v"), "UTC")).to_series().to_list()
    [7, None]
    """
    return _CASTS[column.type](value, tz)


def source_value(column: Column) -> pl.Expr:
    """The bronze value at ``column.source``: the record's key for a parent column, the field of
    the list element (:data:`ELEMENT`) for a child column.

    >>> rows = pl.DataFrame({"_el": [{"status": {"id": "3"}}]})
    >>> rows.select(source_value(Column("s", "int", source="receivables[].status.id"))).item()
    '3'
    """
    if column.source is None:
        raise ValueError(f"column {column.name!r} has no source")
    path = column.source_path
    value = pl.col(ELEMENT) if column.source_list is not None else pl.col(path[0])
    for name in path if column.source_list is not None else path[1:]:
        value = value.struct.field(name)
    return value


@dataclass(frozen=True)
class ColumnPlan:
    """How :func:`parent_table` or :func:`child_table` built the frame of one table.

    Attributes:
        table: the qualified table name.
        derived: columns cast from their declared ``source`` by the engine.
        hand: columns the transform wrote by hand (with or without a ``source``).
    """

    table: str
    derived: tuple[str, ...]
    hand: tuple[str, ...]


def column_plan(frame: pl.LazyFrame) -> ColumnPlan | None:
    """The :class:`ColumnPlan` of a transform's frame, if :func:`parent_table` or :func:`child_table`
    built it."""
    plan = getattr(frame, "column_plan", None)
    return plan if isinstance(plan, ColumnPlan) else None


def _derived(table: Table, tz: str, hand: Mapping[str, pl.Expr]) -> tuple[ColumnPlan, dict[str, pl.Expr]]:
    derived = {c.name: cast(c, source_value(c), tz).alias(c.name) for c in table.derived(hand)}
    if SOURCE_RUN_ID in table.column_names and SOURCE_RUN_ID not in hand:
        derived[SOURCE_RUN_ID] = source_run_id()
    plan = ColumnPlan(table.qualified, tuple(c for c in derived if c != SOURCE_RUN_ID), tuple(hand))
    return plan, derived


def _staged_timestamps(table: Table, derived: Mapping[str, pl.Expr]) -> dict[str, pl.Expr]:
    """The source values of the derived ``timestamptz`` columns, which :func:`with_timestamps`
    computes in stages."""
    return {c.name: source_value(c) for c in table.columns if c.name in derived and c.type == "timestamptz"}


def columns(table: Table, tz: str, /, **hand: pl.Expr) -> list[pl.Expr]:
    """One expression per column of the parent ``table``, in its order, over the bronze records.

    A column of ``hand`` takes that expression; a column with a ``source`` is that record key
    cleaned and cast (:func:`cast`); ``_source_run_id`` is :func:`source_run_id`; any other
    column is taken as it is from the frame (the key columns, or one the transform staged).

    Raises:
        ValueError: a name of ``hand`` is not a column of ``table``.
    """
    return _columns(table, _derived(table, tz, hand)[1], hand)


def _columns(table: Table, derived: Mapping[str, pl.Expr], hand: Mapping[str, pl.Expr]) -> list[pl.Expr]:
    return [hand[c].alias(c) if c in hand else derived[c] if c in derived else pl.col(c) for c in table.column_names]


def parent_table(records: pl.LazyFrame, table: Table, tz: str, /, **hand: pl.Expr) -> pl.LazyFrame:
    """The rows of the parent ``table``: ``records`` selected to :func:`columns`, one row per record.

    The result carries its :class:`ColumnPlan` (see :func:`column_plan`).

    >>> t = Table("core", "t", (Column("k", "bigint"), Column("n", "int", source="N"),
    ...           Column("label", "text", source="L")), ("k",))
    >>> recs = pl.DataFrame({"k": [1, 2], "N": [" 7 ", "x"], "L": ["a", None], "M": ["b", "c"]}).lazy()
    >>> parent_table(recs, t, "UTC", label=pl.coalesce(text("L"), text("M"))).collect().rows()
    [(1, 7, 'a'), (2, None, 'c')]
    """
    plan, derived = _derived(table, tz, hand)
    stamps = _staged_timestamps(table, derived)
    staged = with_timestamps(records, {f"_ts:{c}": v for c, v in stamps.items()}, tz)
    derived.update({c: pl.col(f"_ts:{c}").alias(c) for c in stamps})
    out = staged.select(_columns(table, derived, hand))
    out.column_plan = plan  # type: ignore[attr-defined]
    return out


#: how :func:`with_json_lists` types one leaf of a JSON object (timestamps stay ``text``: as sent)
JsonLeaf = Literal["int", "number", "bool", "text"]


def _boolean(value: str | pl.Expr) -> pl.Expr:
    # like flag, but a missing value stays NULL: inside JSON text, absent is not false
    return text(value).str.to_lowercase().replace_strict(_FLAGS, default=None, return_dtype=pl.Boolean)


_JSON_LEAF: Mapping[str, Callable[[pl.Expr], pl.Expr]] = {
    "int": bigint,
    "number": number,
    "bool": _boolean,
    "text": text,
}


def with_json_lists(frame: pl.LazyFrame, lists: Mapping[str, tuple[pl.Expr, Mapping[str, JsonLeaf]]]) -> pl.LazyFrame:
    """Adds, for each ``column: (value, fields)`` of ``lists``, the JSON array text of the list of
    objects ``value`` (a ``json`` column), its leaves typed by ``fields``.

    Keys keep their API spelling and the order of ``fields``; leaves are cleaned like the typed
    columns (trimmed, ``''`` → null, bad values → null). A null list (missing, JSON ``null`` or
    not an array) gives NULL, an empty one ``[]``; null elements are dropped. Whole-column work:
    the elements of all rows are exploded, typed and encoded at once, then joined per row.

    >>> dt = pl.List(pl.Struct({"id": pl.String, "days": pl.String, "ok": pl.String}))
    >>> df = pl.DataFrame({"v": [[{"id": "7", "days": " 3 ", "ok": "true"}, None], [], None]}, {"v": dt})
    >>> out = with_json_lists(df.lazy(), {"j": (pl.col("v"), {"id": "int", "days": "number", "ok": "bool"})})
    >>> out.collect()["j"].to_list()
    ['[{"id":7,"days":3.0,"ok":true}]', '[]', None]
    """
    row = "_json_row"
    base = frame.with_row_index(row)
    for column, (value, fields) in lists.items():
        e = pl.col("_json_el")
        typed = pl.struct(*(_JSON_LEAF[kind](e.struct.field(name)).alias(name) for name, kind in fields.items()))
        encoded = (
            base.select(row, value.alias("_json_el"))
            .explode("_json_el")
            .filter(e.is_not_null())
            .group_by(row)
            .agg(typed.struct.json_encode().str.join(",").alias("_json_items"))
        )
        items = pl.col("_json_items").fill_null("")
        base = (
            base.with_columns(value.is_null().alias("_json_null"))
            .join(encoded, on=row, how="left", maintain_order="left")
            .with_columns(pl.when(~pl.col("_json_null")).then(pl.lit("[") + items + pl.lit("]")).alias(column))
            .drop("_json_items", "_json_null")
        )
    return base.drop(row)


#: the latest-wins order of records (see DESIGN "Latest wins"): run, then file, then line
LATEST_ORDER = ("run_id", "_source_file", "_source_line")


def elements(records: pl.LazyFrame, field: str, keep: Sequence[str]) -> pl.LazyFrame:
    """One row per non-null element of the list column ``field`` of ``records``.

    The element is the struct column ``_el``; ``keep`` columns (the parent key) and the lineage
    columns of :data:`LATEST_ORDER` come along, and ``_pos`` is the element's position in its
    list. Null, empty and non-array lists (decoded as null) give no rows.

    >>> dt = pl.List(pl.Struct({"id": pl.String}))
    >>> recs = pl.DataFrame(
    ...     {"k": [1, 2, 3], "items": [[{"id": "a"}, None, {"id": "b"}], [], None], "run_id": "r",
    ...      "_source_file": "f", "_source_line": [1, 2, 3]},
    ...     schema_overrides={"items": dt},
    ... )
    >>> out = elements(recs.lazy(), "items", ["k"]).collect()
    >>> out.select("k", pl.col("_el").struct.field("id"), "_pos").rows()
    [(1, 'a', 0), (1, 'b', 2)]
    """
    return (
        records.select(*keep, *LATEST_ORDER, pl.col(field).alias("_el"))
        .filter(pl.col("_el").list.len() > 0)
        .with_columns(_pos=pl.int_ranges(pl.col("_el").list.len()))
        .explode("_el", "_pos")
        .filter(pl.col("_el").is_not_null())
    )


def keep_latest(frame: pl.LazyFrame, key: Sequence[str]) -> pl.LazyFrame:
    """One row per ``key``: the one from the newest record, and there the last in its list.

    "Newest" is the latest-wins order of the records (:data:`LATEST_ORDER`); ties inside one
    record go to the higher ``_pos``. The result is in that order.

    >>> df = pl.DataFrame({"id": [1, 1, 2, 1], "run_id": ["r2", "r1", "r1", "r2"], "_source_file": "f",
    ...                    "_source_line": [1, 1, 1, 1], "_pos": [0, 0, 0, 1], "v": ["a", "b", "c", "d"]})
    >>> keep_latest(df.lazy(), ["id"]).collect().select("id", "v").rows()
    [(2, 'c'), (1, 'd')]
    """
    ordered = frame.sort(*LATEST_ORDER, "_pos", maintain_order=True)
    return ordered.unique(key, keep="last", maintain_order=True)


def elements_of(records: pl.LazyFrame, table: Table) -> pl.LazyFrame:
    """:func:`elements` of the child ``table``: the list its sources name, with its parent key."""
    if table.source_list is None:
        raise ValueError(f"table {table.qualified}: no column has a `list[].field` source to take elements from")
    return elements(records, table.source_list, table.parent_key)


def child_table(rows: pl.LazyFrame, table: Table, tz: str, /, **hand: pl.Expr) -> pl.LazyFrame:
    """The rows of the child ``table`` from the element rows ``rows`` of :func:`elements`.

    Each column with a ``source`` is that field of the element cleaned and cast (:func:`cast`),
    ``_source_run_id`` is :func:`source_run_id`, then the ``hand`` columns are added (they may
    read the derived ones); other columns are taken from ``rows`` as they are (the parent key,
    or one the transform staged). Rows whose primary key is incomplete are dropped, a repeated
    key keeps its latest row (see :func:`keep_latest`) and the table's columns are selected.

    The result carries its :class:`ColumnPlan` and, as its ``element_rows`` attribute, the typed
    rows: the engine counts cast failures on the values typed there (a value present in ``_el``
    whose column is NULL), in the same query, so nothing is parsed twice.

    Raises:
        ValueError: a name of ``hand`` is not a column of ``table``.

    >>> from evo_frames.spec import Column
    >>> dt = pl.List(pl.Struct({"id": pl.String}))
    >>> t = Table("core", "t", (Column("k", "bigint"), Column("id", "bigint", source="items[].id")), ("k", "id"),
    ...           parent_key=("k",))
    >>> recs = pl.DataFrame({"k": [1], "items": [[{"id": "7"}, {"id": "x"}, {"id": "7"}]], "run_id": "r",
    ...                      "_source_file": "f", "_source_line": [1]}, schema_overrides={"items": dt})
    >>> child_table(elements_of(recs.lazy(), t), t, "UTC").collect().rows()
    [(1, 7)]
    """
    plan, derived = _derived(table, tz, hand)
    stamps = _staged_timestamps(table, derived)
    typed = with_timestamps(rows, stamps, tz)
    typed = typed.with_columns(e for c, e in derived.items() if c not in stamps)
    if hand:
        typed = typed.with_columns(e.alias(c) for c, e in hand.items())
    complete = pl.all_horizontal(*(pl.col(k).is_not_null() for k in table.primary_key))
    out = keep_latest(typed.filter(complete), table.primary_key).select(table.column_names)
    out.element_rows = typed  # type: ignore[attr-defined]
    out.column_plan = plan  # type: ignore[attr-defined]
    return out
