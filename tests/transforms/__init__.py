"""Helpers shared by the transform tests: bronze lines in, collected and checked CORE frames out.

A test writes records as dicts (or raw JSON text), :func:`decode` turns them into the frame the
engine hands a transform (decoded with the entity's ``RECORD``, plus lineage), and :func:`load`
runs ``keys`` and ``transform`` and checks every table against its declaration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from evo_frames.spec import Entity, Table, TransformContext

RUN_ID = "20260111T031522Z"
SOURCE_FILE = "bronze/evo/entity=x/ingestion_date=2026-01-11/run_id=20260111T031522Z/2025-02_part-00001.jsonl.gz"
CTX = TransformContext()  # America/Sao_Paulo

Record = Mapping[str, Any] | str


def utc(*parts: int) -> datetime:
    """A UTC instant, as Polars returns ``timestamptz`` values."""
    return datetime(*parts, tzinfo=UTC)


def decode(entity: Entity, records: Sequence[Record], run_ids: Sequence[str] | None = None) -> pl.LazyFrame:
    """The transform's input: ``records`` decoded with ``entity.record``, one line each, plus lineage."""
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    frame = pl.Series("raw", lines, dtype=pl.String).str.json_decode(entity.record).struct.unnest()
    return frame.lazy().with_columns(
        _source_file=pl.lit(SOURCE_FILE),
        _source_line=pl.int_range(1, pl.len() + 1, dtype=pl.Int64),
        run_id=pl.Series(run_ids, dtype=pl.String) if run_ids is not None else pl.lit(RUN_ID),
        ingestion_date=pl.lit(date(2026, 1, 11)),
    )


def key_errors(entity: Entity, records: Sequence[Record], ctx: TransformContext = CTX) -> list[str | None]:
    """``_key_error`` of each record, in order."""
    return entity.keys(decode(entity, records), ctx).collect()["_key_error"].to_list()


def load(
    entity: Entity,
    records: Sequence[Record],
    ctx: TransformContext = CTX,
    run_ids: Sequence[str] | None = None,
) -> dict[str, pl.DataFrame]:
    """Runs ``keys`` then ``transform`` on good-key records; every table checked by :func:`check_table`."""
    keyed = entity.keys(decode(entity, records, run_ids), ctx).collect()
    assert keyed["_key_error"].null_count() == keyed.height, keyed["_key_error"].to_list()
    frames = {name: lf.collect() for name, lf in entity.transform(keyed.lazy(), ctx).items()}
    assert list(frames) == [t.qualified for t in entity.core]
    for table in entity.core:
        check_table(table, frames[table.qualified])
    parent = frames[entity.core[0].qualified]
    assert parent.height == len(records), "the parent table keeps one row per record"
    key = entity.key_names
    assert parent.select(key).equals(keyed.select(key)), "the parent table keeps the input order"
    return {table.name: frames[table.qualified] for table in entity.core}


def check_table(table: Table, frame: pl.DataFrame) -> None:
    """Columns, order and dtypes as declared; primary key unique; NOT NULL columns without nulls."""
    assert list(frame.schema.items()) == list(table.polars_schema().items()), table.qualified
    assert not frame.select(table.primary_key).is_duplicated().any(), f"{table.qualified}: duplicate keys"
    for column in table.columns:
        if not column.nullable:
            assert frame[column.name].null_count() == 0, f"{table.qualified}.{column.name} has nulls"


def row(frame: pl.DataFrame, index: int = 0) -> dict[str, Any]:
    return frame.row(index, named=True)


def column(frame: pl.DataFrame, name: str) -> list[Any]:
    return frame[name].to_list()
