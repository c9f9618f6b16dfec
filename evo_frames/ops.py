"""Operations on a target: progress, history and sizes (``status``, read-only), maintenance (``optimize``)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from zoneinfo import ZoneInfo

from . import drift
from . import lake as lakes
from .config import Settings, storage_options
from .errors import SinkError, redact
from .registry import discover
from .sinks import SqlSink
from .sinks.sql import CAST_FAILURES, FILES, LOADS, REJECTS, interrupted_error, qt

_LOAD_COLUMNS = (
    "load_id, entity, command, status, started_at, finished_at, host, pid, files, lines_read, inserted, "
    "updated, unchanged, rejects, CAST(seconds AS DOUBLE PRECISION) AS seconds, error"
)


def _iso(value: dt.datetime | None, zone: str) -> str | None:
    """ISO 8601 with the offset of ``zone``: ``2026-12-02T03:19:29.645993-03:00``."""
    return value.astimezone(ZoneInfo(zone)).isoformat() if value is not None else None


def _loads(sink: SqlSink, where: str, limit: int, dead: set[tuple[str, str]], zone: str) -> list[dict[str, Any]]:
    """Rows of evo_meta.runs, latest first, with a rate; dead ``running`` ones shown as interrupted."""
    out: list[dict[str, Any]] = sink.query(
        f"SELECT {_LOAD_COLUMNS} FROM {qt(LOADS)} WHERE {where} ORDER BY started_at DESC, entity LIMIT {int(limit)}"
    ).to_pylist()
    for row in out:
        row.update(started_at=_iso(row["started_at"], zone), finished_at=_iso(row["finished_at"], zone))
        if (row["load_id"], row["entity"]) in dead:
            row.update(status="interrupted", error=interrupted_error(row))
        row["records_per_second"] = round(row["lines_read"] / row["seconds"]) if row["seconds"] else 0
    return out


def _casts(sink: SqlSink, load: dict[str, Any] | None) -> dict[str, int]:
    if load is None:
        return {}
    rows = sink.query(
        f"SELECT table_name, column_name, sum(failures) AS n FROM {qt(CAST_FAILURES)} "
        f"WHERE load_id = '{load['load_id']}' AND entity = '{load['entity']}' "
        "GROUP BY table_name, column_name ORDER BY table_name, column_name"
    ).to_pylist()
    return {f"{r['table_name']}.{r['column_name']}": int(r["n"]) for r in rows}


def status(
    sink: SqlSink,
    settings: Settings,
    entity: str | None = None,
    *,
    loads: int = 0,
    rejects: int = 0,
    time_zone: str | None = None,
) -> dict[str, Any]:
    """Per entity: files in the lake vs loaded, the latest load (whatever its outcome, with its
    error and the values it could not type) and the latest successful one, rows per table,
    rejects and sizes; with ``loads``/``rejects``, the latest that many loads and rejected lines.

    Only reads: works on a read-only sink and for a role that may only SELECT. Times are shown
    in ``time_zone`` (default: ``source_timezone``) as ISO 8601 with their offset.
    """
    zone = time_zone or settings.source_timezone
    sink.set_time_zone(zone)
    entities = discover()
    chosen = [entities[entity]] if entity else list(entities.values())
    problems = sink.layout_problems()
    if problems:
        raise SinkError(f"{sink.display}: {problems[0]}")
    dead = {(r["load_id"], r["entity"]) for r in sink.dead_loads(entity)}
    report: dict[str, Any] = {"target": sink.display, "lake": redact(settings.lake), "entities": {}}
    for ent in chosen:
        in_lake, layout = lakes.list_files(
            settings.lake, ent.name, prefix=settings.lake_prefix, storage_options=storage_options(settings.lake)
        )
        # loaded = in the lake now and in the manifest with the same size and etag; manifest rows
        # of files no longer in the lake (deleted, or listed under another root) are counted apart
        recorded = {
            r["path"]: r
            for r in sink.query(
                f"SELECT path, size, etag, partial FROM {qt(FILES)} WHERE entity = '{ent.name}'"
            ).to_pylist()
        }
        loaded = [
            recorded[f.path]
            for f in in_lake
            if f.path in recorded and (int(recorded[f.path]["size"]), recorded[f.path]["etag"]) == (f.size, f.etag)
        ]
        gone = len(set(recorded) - {f.path for f in in_lake})
        n_rejects = sink.scalar(f"SELECT count(*) FROM {qt(REJECTS)} WHERE entity = '{ent.name}'")
        latest = _loads(sink, f"entity = '{ent.name}'", 1, dead, zone)
        succeeded = f"entity = '{ent.name}' AND status IN ('succeeded', 'partial') AND files > 0"
        success = _loads(sink, succeeded, 1, dead, zone)
        last_attempt = latest[0] if latest else None
        if last_attempt:
            last_attempt["cast_failures"] = _casts(sink, last_attempt)
        tables: dict[str, Any] = {}
        for table in ent.tables:
            if not sink.existing_columns(table):
                tables[table.qualified] = {"rows": None}  # created by the entity's first run
                continue
            info: dict[str, Any] = {"rows": int(sink.scalar(f"SELECT count(*) FROM {qt(table)}") or 0)}
            if sink.dialect.table_stats_sql:
                stats = sink.query(sink.dialect.table_stats_sql.format(schema=table.schema, table=table.name))
                row = stats.to_pylist()[0]
                info.update(bytes=int(row["bytes"]), dead_rows=int(row["dead_rows"]))
            tables[table.qualified] = info
        report["entities"][ent.name] = {
            "files_in_lake": len(in_lake),
            "files_loaded": len(loaded),
            "files_partial": sum(bool(r["partial"]) for r in loaded),
            "files_loaded_not_in_lake": gone,
            "layout_problems": layout,
            "rejects": int(n_rejects or 0),
            "last_attempt": last_attempt,
            "last_success": success[0] if success else None,
            "tables": tables,
            "drift": drift.report(sink, ent),
        }
    where = f"entity = '{entity}'" if entity else "true"
    if loads:
        report["loads"] = _loads(sink, where, loads, dead, zone)
    if rejects:
        report["rejects"] = [
            {**r, "recorded_at": _iso(r["recorded_at"], zone)}
            for r in sink.query(
                f"SELECT path, line, entity, stage, reason, raw, raw_length, load_id, "
                f"_loaded_at AS recorded_at FROM {qt(REJECTS)} WHERE {where} "
                f"ORDER BY _loaded_at DESC, path, line LIMIT {int(rejects)}"
            ).to_pylist()
        ]
    return report


def optimize(sink: SqlSink, actions: list[str], entity: str | None = None) -> list[str]:
    """Run maintenance (``analyze``, ``vacuum``, ``reindex``) on the entities' tables, in autocommit.

    Returns one line per statement run or action skipped.
    """
    entities = discover()
    chosen = [entities[entity]] if entity else list(entities.values())
    sink.ensure_tables(chosen)
    done: list[str] = []
    with sink.autocommit():
        for action in actions:
            template = sink.dialect.maintenance.get(action)
            if template is None:
                done.append(f"{action}: not needed on {sink.dialect.name}")
                continue
            statements = dict.fromkeys(
                template.format(table=qt(t)) for ent in chosen for t in ent.tables
            )  # CHECKPOINT-like statements without {table} run once
            for stmt in statements:
                started = time.perf_counter()
                sink.execute(stmt, f"{action} ({stmt})")
                done.append(f"{stmt}: {time.perf_counter() - started:.1f}s")
    return done
