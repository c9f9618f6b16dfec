"""The output checks of a transform, and the values it could not type (cast failures).

Shared by ``run`` (each chunk of a batch), ``transform`` (each chunk of STG rows) and ``bench``
(its decode stage): :func:`transform_records` collects an entity's CORE frames checked against
the declared tables, and counts per file the source values that became NULL once typed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

import polars as pl

from . import expr as E
from .errors import TransformError
from .expr import text
from .spec import Entity, TransformContext

#: values that could not be typed, per ``(path, table, column)``
CastCounts = dict[tuple[str, str, str], int]


def transform_records(
    entity: Entity, records: pl.DataFrame, ctx: TransformContext
) -> tuple[dict[str, pl.DataFrame], CastCounts]:
    """The checked CORE frames of deduplicated records, and the values that could not be typed.

    One query computes the tables and the child tables' cast failures: a child frame built with
    :func:`evo_frames.expr.child_table` shares its typed element rows with the count, so each
    value is parsed once.
    """
    try:
        frames = entity.transform(records.lazy(), ctx)
        counted = _child_failures(entity, records, frames, ctx)
        core, sums = _collect_checked(entity, frames, records, [f for _, f in counted])
    except pl.exceptions.PolarsError as e:
        raise _failed(entity, records, e) from e
    casts: CastCounts = defaultdict(int)
    _parent_failures(entity, records, core, casts)
    _add_failures(casts, [t for t, _ in counted], sums)
    return core, dict(casts)


def _failed(entity: Entity, records: pl.DataFrame, error: pl.exceptions.PolarsError) -> TransformError:
    """A Polars error raised by an entity's transform, as a transform error naming the entity, its
    module and the files of the records it was given."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    files = records["_source_file"].unique(maintain_order=True).to_list() if "_source_file" in records.columns else []
    where = f" from {files[0]}" + (f" and {len(files) - 1} more file(s)" if len(files) > 1 else "") if files else ""
    return TransformError(
        f"transform {entity.name} ({entity.transform.__module__}) failed on {records.height} record(s){where}: "
        f"{type(error).__name__}: {detail}; fix the transform, then rerun"
    )


def _collect_checked(
    entity: Entity, frames: dict[str, pl.LazyFrame], records: pl.DataFrame, extra: Sequence[pl.LazyFrame]
) -> tuple[dict[str, pl.DataFrame], list[pl.DataFrame]]:
    """Collect a transform's frames cast to the declared types (refusing missing tables/columns),
    and ``extra`` in the same query (shared subplans computed once)."""
    expected = {t.qualified: t for t in entity.core}
    if set(frames) != set(expected):
        raise TransformError(
            f"transform {entity.name} returned tables {sorted(frames)}; it declares {sorted(expected)}"
        )
    everything = pl.collect_all([*(frames[name] for name in expected), *extra])
    collected, rest = everything[: len(expected)], everything[len(expected) :]
    out: dict[str, pl.DataFrame] = {}
    for (name, table), frame in zip(expected.items(), collected, strict=True):
        missing = [c for c in table.column_names if c not in frame.columns]
        if missing:
            raise TransformError(f"transform {entity.name}: table {name} lacks columns {missing}")
        try:
            out[name] = frame.select([pl.col(c).cast(dtype) for c, dtype in table.polars_schema().items()])
        except pl.exceptions.PolarsError as e:
            raise TransformError(f"transform {entity.name}: table {name} has a column of the wrong type: {e}") from e
    parent = entity.core[0].qualified
    if out[parent].height != records.height:
        raise TransformError(
            f"transform {entity.name}: parent table {parent} has {out[parent].height} rows for "
            f"{records.height} records; the parent must keep one row per record"
        )
    return out, rest


def _add_failures(casts: CastCounts, tables: Sequence[str], sums: Sequence[pl.DataFrame]) -> None:
    for table_name, frame in zip(tables, sums, strict=True):
        for row in frame.iter_rows(named=True):
            path = row.pop("_source_file")
            for name, n in row.items():
                if n:
                    casts[(path, table_name, name)] += n


def _by_file(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.group_by("_source_file").agg(pl.exclude("_source_file").cast(pl.Int64).sum())


def _parent_failures(entity: Entity, records: pl.DataFrame, core: dict[str, pl.DataFrame], casts: CastCounts) -> None:
    """Parent columns: a present value at the source key whose typed column is NULL."""
    parent = entity.core[0]
    sourced = [(c.name, c.source) for c in parent.columns if c.source is not None and c.source in records.columns]
    if not sourced:
        return
    nulls = core[parent.qualified].select(pl.col(name).is_null().alias(f"_null:{name}") for name, _ in sourced)
    frame = records.select("_source_file", "raw", *dict.fromkeys(src for _, src in sourced)).hstack(nulls)
    # a non-empty scalar that the cast turned into NULL: one pass over all columns
    lost = [(_present(pl.col(src)) & pl.col(f"_null:{name}")).alias(name) for name, src in sourced]
    # objects and arrays at a scalar key were decoded as null: only lines holding one at such a
    # key (one regular expression over the raw lines) are parsed again to find them
    keys = "|".join(re.escape(src) for _, src in sourced)
    # a line with no "[" and no "{" after its first character holds no object or array at all:
    # two literal scans rule most flat lines out before the regular expression runs
    raw = pl.col("raw").str
    nested_at_all = raw.contains("[", literal=True) | (raw.count_matches("{", literal=True) > 1)
    held = frame.filter(nested_at_all).lazy().filter(raw.contains(f'"(?:{keys})"\\s*:\\s*[\\[{{]'))
    nested = [
        (
            pl.col(f"_null:{name}")
            & ~_present(pl.col(src))
            & _present(pl.col("raw").str.json_path_match(_json_path(src)))
        ).alias(name)
        for name, src in sourced
    ]
    sums = pl.collect_all(
        [_by_file(frame.lazy().select("_source_file", *lost)), _by_file(held.select("_source_file", *nested))]
    )
    _add_failures(casts, [parent.qualified] * 2, sums)


def _child_failures(
    entity: Entity, records: pl.DataFrame, frames: dict[str, pl.LazyFrame], ctx: TransformContext
) -> list[tuple[str, pl.LazyFrame]]:
    """Per child table, a lazy count by file of the values present in a list element and NULL once typed.

    A frame of ``frames`` built by :func:`evo_frames.expr.child_table` is counted on its
    ``element_rows`` (the transform's own typed values); otherwise the values are typed here.
    """
    counted: list[tuple[str, pl.LazyFrame]] = []
    for table in entity.core[1:]:
        rows = getattr(frames.get(table.qualified), "element_rows", None)
        by_list: dict[str, list[pl.Expr]] = defaultdict(list)
        for col in table.sourced:
            if col.source_list is not None and col.type not in E.INFALLIBLE:
                value = E.source_value(col)
                typed = pl.col(col.name) if rows is not None else E.cast(col, value, ctx.source_timezone)
                by_list[col.source_list].append((_present(value) & typed.is_null()).alias(col.name))
        for items, failed in by_list.items():
            if items not in records.columns:
                continue
            source = rows if rows is not None else E.elements(records.lazy(), items, [])
            counted.append((table.qualified, _by_file(source.select("_source_file", *failed))))
    return counted


def _json_path(key: str) -> str:
    return '$["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]'


def _present(value: pl.Expr) -> pl.Expr:
    return value.cast(pl.String).str.strip_chars().fill_null("") != ""


#: the ``zone_fallbacks`` label of records whose zone field is missing or empty
NO_ZONE = "(missing)"


def count_zone_fallbacks(entity: Entity, records: pl.DataFrame, counts: dict[str, int]) -> None:
    """Add, per value of the entity's zone field, the records it does not map to a zone."""
    if entity.zone is None or entity.zone.field not in records.columns:
        return
    names = records.select(text(entity.zone.field).fill_null(NO_ZONE).alias("zone"))
    fallbacks = names.filter(~pl.col("zone").is_in(list(entity.zone.zones))).group_by("zone").len()
    for name, n in fallbacks.iter_rows():
        counts[name] = counts.get(name, 0) + n
