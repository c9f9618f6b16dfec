"""The Python entry points, for notebooks and scripts; the CLI is a thin layer over them.

>>> from evo_frames import api
>>> import tempfile
>>> lake, target = "memory://api-doctest", f"duckdb://{tempfile.mkdtemp()}/evo.duckdb"
>>> _ = api.synth("entries", records=50, runs=1, lake=lake)
>>> api.run("entries", lake=lake, target=target)[0].rows_loaded > 0
True
>>> api.query("SELECT count(*) AS n FROM core.evo_entries", target=target)["n"][0] > 0
True
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import polars as pl
import polars.selectors as cs

from .config import Settings, load_settings, storage_options
from .extract import Credentials, ExtractSummary, extract_entity, new_run_id, progress_for
from .extract import Progress as ExtractProgress
from .pipeline import Summary, new_load_id, run_entity, transform_entity
from .progress import Progress
from .registry import discover, select
from .sinks import Sink, open_sink
from .synth import ENTITIES, SynthResult, generate


def connect(settings: Settings, *, read_only: bool = False) -> Sink:
    """The sink of ``settings.target`` (connects on first use).

    ``read_only=True`` is for reading: it never runs DDL or DML and never creates a file or folder
    (DuckDB opens the file read-only; PostgreSQL sessions are read-only, so a SELECT-only role
    suffices). :meth:`~evo_frames.sinks.Sink.layout_problems` says whether the target was
    initialised.
    """
    return open_sink(
        settings.target,
        memory_limit=settings.duckdb_memory,
        connect_timeout=settings.connect_timeout,
        statement_timeout=settings.statement_timeout,
        lock_timeout=settings.lock_timeout,
        read_only=read_only,
        retry_wait=settings.retry_wait,
    )


def _resolve(settings: Settings | None, config: str | None, overrides: dict[str, Any]) -> Settings:
    return settings if settings is not None else load_settings(overrides, config=config)


def run(
    entity: str = "all",
    *,
    run_id: str | None = None,
    since: dt.date | None = None,
    full_refresh: bool = False,
    settings: Settings | None = None,
    config: str | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> list[Summary]:
    """Load bronze files not yet loaded, like ``evo-frames run``.

    Settings: ``settings`` as resolved, else ``overrides`` (e.g. ``lake=``, ``target=``) over the
    environment and the config file. ``progress`` receives the figures of each batch (see
    :mod:`evo_frames.progress`); none are shown by default.
    """
    resolved = _resolve(settings, config, overrides)
    load_id = new_load_id()
    with connect(resolved) as sink:
        return [
            run_entity(
                sink, ent, resolved, load_id=load_id, run_id=run_id, since=since, reload=full_refresh, progress=progress
            )
            for ent in select(discover(), entity)
        ]


def transform(
    entity: str = "all",
    *,
    full_refresh: bool = False,
    settings: Settings | None = None,
    config: str | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> list[Summary]:
    """STG → CORE without reading the lake, like ``evo-frames transform``."""
    resolved = _resolve(settings, config, overrides)
    load_id = new_load_id()
    with connect(resolved) as sink:
        return [
            transform_entity(sink, ent, resolved, load_id=load_id, full_refresh=full_refresh, progress=progress)
            for ent in select(discover(), entity)
        ]


def query(
    sql: str,
    *,
    time_zone: str | None = None,
    settings: Settings | None = None,
    config: str | None = None,
    **overrides: Any,
) -> pl.DataFrame:
    """Run one read-only SQL query on the target and return a Polars DataFrame.

    Times are local to ``time_zone`` (an IANA name; default: ``source_timezone``): the session
    computes in it (``hour(entry_date)``, ``CAST(entry_date AS DATE)``, ``date_trunc``) and
    TIMESTAMPTZ columns come back in it.
    """
    resolved = _resolve(settings, config, overrides)
    zone = time_zone or resolved.source_timezone
    with connect(resolved, read_only=True) as sink:
        sink.layout_problems()  # a target never initialised says so
        sink.set_time_zone(zone)
        frame = pl.from_arrow(sink.query(sql))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(cs.datetime(time_zone="*").dt.convert_time_zone(zone))


def synth(
    entity: str = "all",
    *,
    records: int = 20_000,
    seed: int = 0,
    runs: int = 2,
    settings: Settings | None = None,
    config: str | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> dict[str, SynthResult | None]:
    """Write sample bronze into the lake, like ``evo-frames synth``.

    Returns each entity's result, or None where the lake already holds those runs (nothing is
    overwritten: delete the entity's folder to generate it again).
    """
    resolved = _resolve(settings, config, overrides)
    names = ENTITIES if entity == "all" else (entity,)
    out: dict[str, SynthResult | None] = {}
    for name in names:
        try:
            out[name] = generate(
                resolved.lake, name, records, seed=seed, runs=runs, prefix=resolved.lake_prefix,
                storage_options=storage_options(resolved.lake), progress=progress,
            )  # fmt: skip
        except FileExistsError:
            out[name] = None
    return out


def extract(
    entity: str = "all",
    *,
    start: dt.date,
    end: dt.date,
    resume: bool = False,
    settings: Settings | None = None,
    config: str | None = None,
    progress: ExtractProgress | None = None,
    **overrides: Any,
) -> list[ExtractSummary]:
    """EVO API → bronze, like ``evo-frames extract``; one run id for all entities of the call.

    Credentials come from ``EVO_API_URL``, ``EVO_USERNAME`` and ``EVO_PASSWORD``. Windows that
    failed are listed in each summary's ``failed``; rerun with ``resume=True`` to complete them.
    """
    resolved = _resolve(settings, config, overrides)
    credentials = Credentials.from_env()
    chosen = [e for e in select(discover(), entity) if entity != "all" or e.api is not None]
    run_id = new_run_id()
    shown = progress or progress_for(sys.stderr)
    try:
        return [
            extract_entity(ent, start, end, resolved, credentials=credentials, run_id=run_id, resume=resume,
                           progress=shown)
            for ent in chosen
        ]  # fmt: skip
    finally:
        shown.close()
