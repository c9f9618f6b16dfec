"""Schema drift: the JSON keys the API sends compared with the keys the transforms read.

The keys an entity reads are its record type (``Entity.record``, the Polars ``Struct`` that
``json_decode`` gets): a field of it is read, nested ``Struct`` fields as ``parent.child`` and the
fields of a list of structs as ``parent[].child``. Nothing else lists them.

The keys sent are counted at load time, cheaply: after a run's files load, a sample of at most
:data:`SAMPLE_RECORDS` of the STG records that run wrote (picked by content hash, so spread over
all its files) is parsed, and per key path the records that carry the key, and carry it with a
non-null value, are stored in ``evo_meta.key_stats`` (entity, run, path). That costs one index
scan of the run's rows and a few thousand JSON parses, whatever the table's size, and the
history of each key survives even when later runs overwrite the records in STG. A key carried by
fewer than about 1 in :data:`SAMPLE_RECORDS` records of a run may go unseen.

:func:`report` is what ``evo-frames status`` shows: keys found that no transform reads (with the
share of the last run's records that carry them and the first run they appeared in), and keys a
transform reads that the last run's sample never carried, or carried only as null.

>>> read_paths(pl.Struct({"id": pl.String, "tags": pl.List(pl.Struct({"name": pl.String}))}))
['id', 'tags', 'tags[].name']
>>> for row in key_stats(['{"id": 1, "tags": [{"name": "a", "new": null}]}', '{"id": 2, "extra": "x"}']).rows():
...     print(row)
('extra', 2, 1, 1, 'string')
('id', 2, 2, 2, 'number')
('tags', 2, 1, 1, 'array')
('tags[].name', 2, 1, 1, 'string')
('tags[].new', 2, 1, 0, 'null')
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import polars as pl

from .sinks import SqlSink
from .sinks.sql import FILES, KEY_STATS, q, qt
from .spec import CONTENT_HASH, Entity

#: STG records parsed per run
SAMPLE_RECORDS = 2_000

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def read_paths(record: pl.DataType, prefix: str = "") -> list[str]:
    """The key paths a record type reads, sorted: ``a``, ``a.b`` (struct), ``a[].b`` (list of structs)."""
    out: list[str] = []
    assert isinstance(record, pl.Struct)
    for f in record.fields:
        path = prefix + f.name
        out.append(path)
        inner = f.dtype.inner if isinstance(f.dtype, pl.List) else None
        if isinstance(f.dtype, pl.Struct):
            out += read_paths(f.dtype, path + ".")
        elif isinstance(inner, pl.Struct):
            out += read_paths(inner, path + "[].")
    return sorted(out)


def _walk(
    value: dict[str, Any], prefix: str, present: set[str], non_null: set[str], types: dict[str, set[str]]
) -> None:
    for key, v in value.items():
        path = prefix + key
        present.add(path)
        types[path].add(_JSON_TYPES.get(type(v), "null"))
        if v is not None:
            non_null.add(path)
        if isinstance(v, dict):
            _walk(v, path + ".", present, non_null, types)
        elif isinstance(v, list):
            for element in v:
                if isinstance(element, dict):
                    _walk(element, path + "[].", present, non_null, types)


def key_stats(raws: Iterable[str]) -> pl.DataFrame:
    """Per key path of the JSON records ``raws``: records sampled, carrying it, carrying it non-null,
    and the JSON types seen (comma-separated). A path inside an array counts a record once."""
    sampled = 0
    present: dict[str, int] = defaultdict(int)
    non_null: dict[str, int] = defaultdict(int)
    types: dict[str, set[str]] = defaultdict(set)
    for raw in raws:
        record = json.loads(raw)
        if not isinstance(record, dict):
            continue
        sampled += 1
        seen: set[str] = set()
        filled: set[str] = set()
        _walk(record, "", seen, filled, types)
        for path in seen:
            present[path] += 1
        for path in filled:
            non_null[path] += 1
    paths = sorted(present)
    return pl.DataFrame(
        {
            "path": paths,
            "sampled": [sampled] * len(paths),
            "present": [present[p] for p in paths],
            "non_null": [non_null[p] for p in paths],
            "types": [",".join(sorted(types[p])) for p in paths],
        },
        schema={"path": pl.String, "sampled": pl.Int64, "present": pl.Int64, "non_null": pl.Int64, "types": pl.String},
    )


def _sample(sink: SqlSink, entity: Entity, run_id: str) -> list[str]:
    """The raw JSON of up to :data:`SAMPLE_RECORDS` STG records of ``run_id``, spread by content hash."""
    keys = ", ".join(q(k) for k in entity.key_names)
    match = " AND ".join(f"s.{q(k)} = k.{q(k)}" for k in entity.key_names)
    rows = sink.query(
        f"SELECT CAST(s.raw_data AS TEXT) AS raw FROM {qt(entity.stg)} s JOIN ("
        f"SELECT {keys} FROM {qt(entity.stg)} WHERE run_id = '{run_id}' ORDER BY {q(CONTENT_HASH)} "
        f"LIMIT {SAMPLE_RECORDS}) k ON {match}"
    )
    raws: list[str] = rows.column("raw").to_pylist()  # raw_data is NOT NULL: text throughout
    return raws


def record(sink: SqlSink, entity: Entity, load_id: str) -> None:
    """Store the key statistics of every run that ``load_id`` loaded files of (replacing older ones)."""
    runs = sink.query(
        f"SELECT DISTINCT run_id FROM {qt(FILES)} WHERE entity = '{entity.name}' AND load_id = '{load_id}'"
    ).column("run_id")
    frames = [
        key_stats(raws).with_columns(entity=pl.lit(entity.name), run_id=pl.lit(run_id), load_id=pl.lit(load_id))
        for run_id in runs.to_pylist()
        if (raws := _sample(sink, entity, run_id))
    ]
    if not frames:
        return
    sink.ingest("_ef_key_stats", pl.concat(frames).select(KEY_STATS.column_names).to_arrow())
    sink.execute(
        f"DELETE FROM {qt(KEY_STATS)} x WHERE x.entity = '{entity.name}' "
        "AND x.run_id IN (SELECT DISTINCT run_id FROM _ef_key_stats)",
        "replacing key statistics",
    )
    casts = ", ".join(f"CAST(s.{q(c.name)} AS {sink.dialect.types[c.type]})" for c in KEY_STATS.columns)
    sink.execute(
        f"INSERT INTO {qt(KEY_STATS)} ({', '.join(q(c) for c in KEY_STATS.column_names)}) "
        f"SELECT {casts} FROM _ef_key_stats s",
        "writing key statistics",
    )
    sink.commit()


def frame(sink: SqlSink, entity: Entity) -> pl.DataFrame:
    """The stored key statistics of ``entity``, one row per run and key path, oldest run first,
    with ``read`` (a transform reads the path), ``share`` and ``non_null_share`` of the sample."""
    if not sink.existing_columns(KEY_STATS):
        stats = pl.DataFrame(schema=KEY_STATS.polars_schema())
    else:
        table = sink.query(
            f"SELECT {', '.join(q(c) for c in KEY_STATS.column_names)} FROM {qt(KEY_STATS)} "
            f"WHERE entity = '{entity.name}' ORDER BY run_id, path"
        )
        stats = pl.DataFrame(pl.from_arrow(table)).cast(KEY_STATS.polars_schema())  # type: ignore[arg-type]
    read = read_paths(entity.record)
    return stats.drop("entity").with_columns(
        pl.col("path").is_in(read).alias("read"),
        (pl.col("present") / pl.col("sampled")).alias("share"),
        (pl.col("non_null") / pl.col("sampled")).alias("non_null_share"),
    )


def _parent(path: str) -> str | None:
    """``a`` for ``a.b`` and ``a[].b``; None at the top level."""
    head, dot, _ = path.rpartition(".")
    return (head.removesuffix("[]") or None) if dot else None


def report(sink: SqlSink, entity: Entity) -> dict[str, Any]:
    """Drift of ``entity`` for ``status``: see the module docstring.

    Returns ``last_run`` and ``sampled`` (records of it parsed), ``unread`` (``key``, ``share`` of
    the last run, ``first_run``), ``absent`` and ``null_only`` (read keys, in the last run). A key
    under one that is itself listed is left out, since its parent says it all.
    """
    stats = frame(sink, entity)
    if stats.is_empty():
        return {"last_run": None, "sampled": 0, "unread": [], "absent": [], "null_only": []}
    last_run = stats["run_id"].max()
    last = stats.filter(pl.col("run_id") == last_run)
    firsts = stats.filter(pl.col("present") > 0).group_by("path").agg(pl.col("run_id").min().alias("first_run"))
    unread_all = set(stats.filter(~pl.col("read"))["path"])
    share = dict(last.select("path", "share").iter_rows())
    unread = [
        {"key": path, "share": round(share.get(path, 0.0), 4), "first_run": first}
        for path, first in firsts.filter(pl.col("path").is_in(unread_all)).sort("path").iter_rows()
        if _parent(path) not in unread_all
    ]
    filled = set(last.filter(pl.col("non_null") > 0)["path"])
    carried = set(last["path"])
    read = [p for p in read_paths(entity.record) if _parent(p) is None or _parent(p) in filled]
    return {
        "last_run": last_run,
        "sampled": int(last.select(pl.col("sampled").max().fill_null(0)).item()),
        "unread": unread,
        "absent": [p for p in read if p not in carried],
        "null_only": [p for p in read if p in carried and p not in filled],
    }


def report_text(drift: dict[str, Any]) -> list[str]:
    """The lines ``status`` prints for :func:`report`."""
    if drift["last_run"] is None:
        return ["  drift: no key statistics yet (they are gathered as files load)"]
    lines = [f"  drift (keys of {drift['sampled']} sampled records of run {drift['last_run']}):"]
    unread = ", ".join(f"{u['key']} ({u['share']:.1%}, since {u['first_run']})" for u in drift["unread"])
    lines.append(f"    sent, read by no transform: {unread or 'none'}")
    lines.append(f"    read, absent in the last run: {', '.join(drift['absent']) or 'none'}")
    lines.append(f"    read, only null in the last run: {', '.join(drift['null_only']) or 'none'}")
    return lines
