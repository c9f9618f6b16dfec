"""Key and content hash first: what a reload needs of a line before it knows whether it changed.

A reload mostly re-sends records the target already holds. Such a line costs its key (decoded
from the few fields :attr:`Entity.keys` reads) and the xxhash64 of its raw text, which the
target compares with the stored row's; only the new and changed lines are then decoded with the
entity's whole record type and transformed (:meth:`evo_frames.pipeline.Loader._flush`).
"""

from __future__ import annotations

import threading

import polars as pl
import polars_hash as plh

from .spec import CONTENT_HASH, Entity, TransformContext

#: the columns besides the record's fields that ``Entity.keys`` is given (see read_file)
_LINEAGE = {
    "_source_line": pl.Int64,
    "raw": pl.String,
    "_source_file": pl.String,
    "run_id": pl.String,
    "ingestion_date": pl.Date,
}

_cache: dict[int, tuple[Entity, pl.Struct]] = {}
_lock = threading.Lock()


def _keys_resolve(entity: Entity, fields: list[pl.Field]) -> bool:
    frame = pl.LazyFrame(schema={**{f.name: f.dtype for f in fields}, **_LINEAGE})
    try:
        entity.keys(frame, TransformContext()).select(*entity.key_names, "_key_error").collect_schema()
    except (pl.exceptions.PolarsError, KeyError, TypeError, ValueError):
        return False
    return True


def key_record(entity: Entity) -> pl.Struct:
    """The decode type of the record fields that ``entity.keys`` reads (the whole record when
    that cannot be told): the top-level fields without which its key columns do not resolve.

    >>> from transforms.members import ENTITY
    >>> key_record(ENTITY)
    Struct({'idMember': String})
    """
    with _lock:
        hit = _cache.get(id(entity))
        if hit is not None and hit[0] is entity:
            return hit[1]
    fields = list(entity.record.fields)
    needed = [f for f in fields if not _keys_resolve(entity, [g for g in fields if g is not f])]
    dtype = pl.Struct(needed) if needed and _keys_resolve(entity, needed) else entity.record
    with _lock:
        _cache[id(entity)] = (entity, dtype)
    return dtype


def content_hash() -> pl.Expr:
    """xxhash64 of the raw line (column ``raw``), as the signed 64-bit ``_content_hash`` STG stores."""
    return plh.col("raw").nchash.xxhash64().reinterpret(signed=True).alias(CONTENT_HASH)
