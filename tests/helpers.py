"""Small tools the integration tests share: write bronze, load it, read tables back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import fsspec

from evo_frames.config import Settings
from evo_frames.pipeline import Summary, new_load_id, run_entity
from evo_frames.registry import discover
from evo_frames.sinks import SqlSink, open_sink

ENTITIES = discover()


def bronze_path(lake: str, entity: str, run_id: str, name: str, day: str | None = None) -> str:
    day = day or f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}"
    return f"{lake.rstrip('/')}/bronze/evo/entity={entity}/ingestion_date={day}/run_id={run_id}/{name}"


def write_bronze(
    lake: str,
    entity: str,
    run_id: str,
    lines: Iterable[dict[str, Any] | str | bytes],
    name: str = "2025-11-03_part-00001.jsonl.gz",
    *,
    storage_options: dict[str, Any] | None = None,
    raw: bytes | None = None,
) -> str:
    """Write one part file; dict lines are JSON-encoded like the extractor (UTF-8, no trailing newline)."""
    path = bronze_path(lake, entity, run_id, name)
    if raw is None:
        parts = [
            x if isinstance(x, bytes) else (x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)).encode()
            for x in lines
        ]
        raw = gzip.compress(b"\n".join(parts), mtime=0)
    fs, p = fsspec.core.url_to_fs(path, **(storage_options or {}))
    fs.makedirs(p.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(p, "wb") as f:
        f.write(raw)
    return path


def settings(lake: str | Path, target: str, **overrides: Any) -> Settings:
    return dataclasses.replace(Settings(), lake=str(lake), target=target, **overrides)


def sink_for(target: str) -> SqlSink:
    return open_sink(target, memory_limit="1GB", connect_timeout=10, statement_timeout=600)


def load(lake: str | Path, target: str, entity: str = "entries", **kw: Any) -> Summary:
    """One ``run`` of one entity, in-process."""
    options = {k: kw.pop(k) for k in ("batch_size", "workers", "writers", "chunk_rows") if k in kw}
    with sink_for(target) as sink:
        return run_entity(sink, ENTITIES[entity], settings(lake, target, **options), load_id=new_load_id(), **kw)


def rows(target: str, sql: str) -> list[dict[str, Any]]:
    with sink_for(target) as sink:
        return sink.query(sql).to_pylist()


def scalar(target: str, sql: str) -> Any:
    with sink_for(target) as sink:
        return sink.scalar(sql)


def _normal(value: Any) -> Any:
    # the same instant or number may come back as different Python types from the two drivers
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, decimal.Decimal):
        return str(value.quantize(decimal.Decimal("0.01")))
    return value


def table_rows(target: str, table: Any, columns: Iterable[str]) -> list[tuple[Any, ...]]:
    """``columns`` of every row of ``table``, in primary-key order, comparable across targets."""
    columns = list(columns)
    cols = ", ".join(f'"{c}"' for c in columns)
    order = ", ".join(f'"{c}"' for c in table.primary_key)
    got = rows(target, f"SELECT {cols} FROM {table.qualified} ORDER BY {order}")
    return [tuple(_normal(r[c]) for c in columns) for r in got]
