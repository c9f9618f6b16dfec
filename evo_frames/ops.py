"""Operations on a target: progress and sizes (``status``)."""

from __future__ import annotations

import time
from typing import Any

from . import lake as lakes
from .config import Settings, storage_options
from .registry import discover
from .sinks import SqlSink
from .sinks.sql import FILES, LOADS, REJECTS, qt


def status(sink: SqlSink, settings: Settings, entity: str | None = None) -> dict[str, Any]:
    """Files in the lake vs loaded, the last run's rate, rows per table, rejects and sizes, per entity."""
    entities = discover()
    chosen = [entities[entity]] if entity else list(entities.values())
    sink.ensure_tables(chosen)
    report: dict[str, Any] = {"target": sink.display, "lake": settings.lake, "entities": {}}
    for ent in chosen:
        in_lake, problems = lakes.list_files(
            settings.lake, ent.name, prefix=settings.lake_prefix, storage_options=storage_options(settings.lake)
        )
        files = sink.query(
            f"SELECT count(*) AS n, sum(CASE WHEN partial THEN 1 ELSE 0 END) AS partial, "
            f"CAST(max(_loaded_at) AS TEXT) AS last FROM {qt(FILES)} WHERE entity = '{ent.name}'"
        ).to_pylist()[0]
        rejects = sink.scalar(f"SELECT count(*) FROM {qt(REJECTS)} WHERE entity = '{ent.name}'")
        runs = sink.query(
            f"SELECT status, files, lines_read, inserted, updated, unchanged, rejects, "
            f"CAST(seconds AS DOUBLE PRECISION) AS seconds, CAST(started_at AS TEXT) AS started_at "
            f"FROM {qt(LOADS)} WHERE entity = '{ent.name}' AND command = 'run' AND files > 0 "
            f"ORDER BY started_at DESC LIMIT 1"
        ).to_pylist()
        last_run = runs[0] if runs else None
        if last_run and last_run["seconds"]:
            last_run["records_per_second"] = round(last_run["lines_read"] / last_run["seconds"])
        tables: dict[str, Any] = {}
        for table in ent.tables:
            info: dict[str, Any] = {"rows": int(sink.scalar(f"SELECT count(*) FROM {qt(table)}") or 0)}
            if sink.dialect.table_stats_sql:
                stats = sink.query(sink.dialect.table_stats_sql.format(schema=table.schema, table=table.name))
                row = stats.to_pylist()[0]
                info.update(bytes=int(row["bytes"]), dead_rows=int(row["dead_rows"]))
            tables[table.qualified] = info
        report["entities"][ent.name] = {
            "files_in_lake": len(in_lake),
            "files_loaded": int(files["n"] or 0),
            "files_partial": int(files["partial"] or 0),
            "layout_problems": problems,
            "rejects": int(rejects or 0),
            "last_load": files["last"],
            "last_run": last_run,
            "tables": tables,
        }
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
