"""The ``evo-frames`` command line: a thin typed layer over the engine.

Every command resolves its settings with :func:`evo_frames.config.load_settings` (flag > env >
config file > default), and every :class:`~evo_frames.errors.EvoFramesError` becomes one line on
stderr and its exit code (1 failure, 2 bad usage/configuration) in :func:`main`; tracebacks only
with ``--verbose``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Annotated, Any

import typer

from . import __version__
from .config import Settings, load_settings
from .errors import ConfigError, EvoFramesError, redact

log = logging.getLogger("evo_frames")

app = typer.Typer(
    name="evo-frames",
    help=(
        "Load W12 EVO data from a bronze lake of gzipped JSON lines into PostgreSQL or DuckDB: STG "
        "(raw JSON + lineage), CORE (typed tables), exactly once. The entities are those the "
        "transforms package declares (see --entity)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state: dict[str, Any] = {"verbose": False}


def _entity_names() -> tuple[str, ...]:
    """The registry's entities in load order (``$EVO_FRAMES_TRANSFORMS`` or ``transforms``)."""
    from .registry import discover

    return tuple(discover())


def _entity(value: str) -> str:
    valid = (*_entity_names(), "all")
    if value not in valid:
        raise typer.BadParameter(f"unknown entity {value!r}; valid: {', '.join(valid)}")
    return value


def _one_entity(value: str | None) -> str | None:
    if value is not None and value not in (valid := _entity_names()):
        raise typer.BadParameter(f"unknown entity {value!r}; valid: {', '.join(valid)}")
    return value


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as e:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD, e.g. 2026-01-11") from e


EntityOpt = Annotated[str, typer.Option("--entity", "-e", help="An entity of the registry, or all.", callback=_entity)]
OneEntityOpt = Annotated[
    str | None,
    typer.Option("--entity", "-e", help="An entity of the registry (default: all).", callback=_one_entity),
]
LakeOpt = Annotated[
    str | None, typer.Option("--lake", help="Lake URL or path [env EVO_FRAMES_LAKE; default data/lake].")
]
TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target",
        help="duckdb:///abs/file.duckdb, duckdb:rel/file.duckdb or postgresql://user:pass@host:port/db "
        "[env EVO_FRAMES_TARGET; default duckdb:data/evo.duckdb].",
    ),
]
ConfigOpt = Annotated[
    str | None, typer.Option("--config", help="Config file [env EVO_FRAMES_CONFIG; default ./config.toml if present].")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Show only the summary and errors (no progress, no warnings).")
]


def _settings(config: str | None, **flags: Any) -> Settings:
    settings = load_settings(flags, config=config)
    log.debug("settings: %r (from %s)", settings, dict(settings.origins))
    return settings


def _sink(settings: Settings, read_only: bool = False) -> Any:
    from .api import connect

    return connect(settings, read_only=read_only)


def _progress(quiet: bool) -> Any:
    """Live progress on a terminal, one line per batch elsewhere, none with --quiet (on stderr)."""
    from .progress import display

    if quiet:
        logging.getLogger("evo_frames").setLevel(logging.ERROR)
    return display(quiet)


def _emit(data: Any, as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(text)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"evo-frames {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress and show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    _state["verbose"] = verbose
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


class _LogFormatter(logging.Formatter):
    """Log lines without any secret, and with control characters escaped: a file name cannot
    forge a log line."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        from .lake import shown

        return shown(super().formatMessage(record))

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _format_summary(s: Any) -> str:
    from .lake import shown

    lines = [f"{s.entity} -> {s.target}"]
    if s.error:
        lines.append(f"  {s.status}: {shown(s.error)}")
    if s.source == "stg":
        lines.append(
            f"  rows: {s.lines_read} read from STG, {s.rows_written} written to CORE, {s.rows_unchanged} unchanged"
        )
    else:
        lines += [
            f"  files: {s.files_found} found, {s.files_skipped} already loaded, {s.files_loaded} loaded"
            + (
                f", {s.files_loaded_elsewhere} loaded meanwhile by a concurrent load"
                if s.files_loaded_elsewhere
                else ""
            )
            + (f", {len(s.files_partial)} partial (truncated gzip)" if s.files_partial else ""),
            f"  lines: {s.lines_read} read, {s.rows_loaded} loaded, {s.duplicates} duplicates, {s.rejects} rejected",
        ]
        if s.files_loaded == 0:
            lines.append("  nothing new: every file is already loaded, no row changed")
    for table, c in s.tables.items():
        extra = f", {c.deleted} deleted" if c.deleted else ""
        lines.append(f"  {table}: {c.inserted} inserted, {c.updated} updated, {c.unchanged} unchanged{extra}")
    if s.cast_failures:
        lines.append(
            "  values that could not be cast (stored as NULL): "
            + ", ".join(f"{k}={v}" for k, v in sorted(s.cast_failures.items()))
        )
    if s.zone_fallbacks:
        lines.append(
            "  records without a known time zone (read in source_timezone): "
            + ", ".join(f"{k}={v}" for k, v in sorted(s.zone_fallbacks.items()))
        )
    for problem in s.problems:
        lines.append(f"  problem: {shown(problem)}")
    lines.append(f"  {s.seconds:.1f}s, {s.records_per_second:,.0f} records/s")
    return "\n".join(lines)


@app.command()
def run(
    entity: EntityOpt,
    lake: LakeOpt = None,
    target: TargetOpt = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Load only this run (YYYYMMDDTHHMMSSZ).")] = None,
    all_runs: Annotated[
        bool, typer.Option("--all-runs", help="Consider every run (the default; conflicts with --run-id).")
    ] = False,
    since: Annotated[
        dt.date | None,
        typer.Option("--since", help="Only files with ingestion_date >= YYYY-MM-DD.", parser=_date, metavar="<str>"),
    ] = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Reload the selected files even if already loaded.")
    ] = False,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Files per transaction [10].", min=1)] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Files decoded ahead in parallel [2].", min=1)
    ] = None,
    writers: Annotated[
        int | None,
        typer.Option(
            "--writers", help="Batches loaded at once on their own connections [0: from cores and the server].", min=0
        ),
    ] = None,
    max_bad_ratio: Annotated[
        float | None,
        typer.Option("--max-bad-ratio", help="Exit 3 if rejected/read lines exceeds this [1.0].", min=0.0, max=1.0),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Load new bronze files into STG and CORE.

    Files already in evo_meta.files (same path, size and etag) are skipped. Exits 3 when the
    share of rejected lines exceeds --max-bad-ratio, after loading everything else.
    """
    from .api import run as run_load

    if run_id and all_runs:
        raise ConfigError("--run-id and --all-runs conflict; give one of them")
    settings = _settings(
        config,
        lake=lake,
        target=target,
        batch_size=batch_size,
        workers=workers,
        writers=writers,
        max_bad_ratio=max_bad_ratio,
    )
    with _progress(quiet) as progress:
        summaries = run_load(
            entity, run_id=run_id, since=since, full_refresh=full_refresh, settings=settings, progress=progress
        )
    if all(s.files_found == 0 for s in summaries):
        raise EvoFramesError(
            f"no bronze files for {entity} under {redact(settings.lake)}/{settings.lake_prefix}/entity=…; "
            f"make sample data with: evo-frames synth --lake {redact(settings.lake)}"
        )
    if all(s.error for s in summaries):  # e.g. a --run-id or --since that matches no file
        raise EvoFramesError("; ".join(s.error or "" for s in summaries))
    _emit(
        [s.to_dict() for s in summaries] if len(summaries) > 1 else summaries[0].to_dict(),
        as_json,
        "\n".join(_format_summary(s) for s in summaries),
    )
    read = sum(s.lines_read for s in summaries)
    bad = sum(s.rejects for s in summaries)
    if read and bad / read > settings.max_bad_ratio:
        typer.echo(
            f"rejected {bad} of {read} lines ({bad / read:.2%}), above --max-bad-ratio {settings.max_bad_ratio}; "
            "see evo_meta.rejects",
            err=True,
        )
        raise typer.Exit(3)


@app.command()
def extract(
    entity: EntityOpt,
    start: Annotated[
        dt.date, typer.Option("--start", help="First day of the range, YYYY-MM-DD.", parser=_date, metavar="<str>")
    ],
    end: Annotated[
        dt.date,
        typer.Option("--end", help="Last day of the range (included), YYYY-MM-DD.", parser=_date, metavar="<str>"),
    ],
    lake: LakeOpt = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the latest run over the same days: redo only its windows that did not complete.",
        ),
    ] = False,
    workers: Annotated[int | None, typer.Option("--workers", help="Windows fetched at once [4].", min=1)] = None,
    requests_per_minute: Annotated[
        float | None,
        typer.Option("--requests-per-minute", help="API requests per minute, all windows together [40].", min=0.1),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch the EVO API into the bronze lake, window by window.

    Needs EVO_API_URL, EVO_USERNAME and EVO_PASSWORD. Every window is paged to its end or fails:
    failed windows are named, recorded in the run's _manifest.json and exit 1; --resume redoes them.
    """
    from .api import extract as run_extract

    settings = _settings(config, lake=lake, extract_workers=workers, requests_per_minute=requests_per_minute)
    summaries = run_extract(entity, start=start, end=end, resume=resume, settings=settings)
    _emit(
        [s.to_dict() for s in summaries] if len(summaries) > 1 else summaries[0].to_dict(),
        as_json,
        "\n".join(
            f"{s.entity}: nothing to resume (no incomplete run over {start} .. {end})"
            if not s.run_id
            else f"{s.entity} -> {s.run_dir}: {s.complete} of {s.windows} windows complete"
            + (f" ({s.redone} redone)" if s.resumed else "")
            + f", {s.records:,} records in {s.parts} parts, {s.requests} requests, {s.seconds:.1f}s"
            + f" ({s.records / max(s.seconds, 1e-9):,.0f} records/s)"
            for s in summaries
        ),
    )
    failed = [f"{s.entity} {period}: {error}" for s in summaries for period, error in s.failed]
    if failed:
        raise EvoFramesError(
            f"{len(failed)} window(s) failed and are recorded as failed in the run's _manifest.json; "
            f"rerun the same command with --resume once the API answers: " + "; ".join(failed)
        )


@app.command()
def transform(
    entity: EntityOpt,
    target: TargetOpt = None,
    full_refresh: Annotated[
        bool,
        typer.Option("--full-refresh", help="Rebuild the CORE tables into shadow tables and swap them in atomically."),
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rebuild CORE from STG, without the lake.

    Incremental by default: only records whose CORE row is missing or older than STG.
    """
    from .api import transform as run_transform

    settings = _settings(config, target=target)
    with _progress(quiet) as progress:
        summaries = run_transform(entity, full_refresh=full_refresh, settings=settings, progress=progress)
    if all(s.error for s in summaries):
        raise EvoFramesError("; ".join(s.error or "" for s in summaries))
    _emit(
        [s.to_dict() for s in summaries] if len(summaries) > 1 else summaries[0].to_dict(),
        as_json,
        "\n".join(_format_summary(s) for s in summaries),
    )


@app.command()
def init(target: TargetOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Create or upgrade schemas, tables and indexes.

    Idempotent and non-destructive: an older layout gains its missing columns.
    """
    from .registry import discover

    settings = _settings(config, target=target)
    with _sink(settings) as sink:
        changes = sink.ensure_tables(discover().values())
        _emit(
            {"target": sink.display, "changes": changes},
            as_json,
            "\n".join(changes) if changes else f"{sink.display}: schema up to date",
        )


@app.command()
def synth(
    lake: LakeOpt = None,
    entity: Annotated[str, typer.Option("--entity", "-e", help="Entity or all.", callback=_entity)] = "all",
    records: Annotated[int, typer.Option("--records", "-n", help="Distinct records of the first run.", min=1)] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; same seed, same bytes.")] = 0,
    runs: Annotated[int, typer.Option("--runs", help="Runs to write; later ones re-send earlier records.", min=1)] = 2,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write realistic sample bronze into the lake.

    Deterministic: the same options give the same bytes. Existing runs are never overwritten.
    """
    from .api import synth as run_synth

    settings = _settings(config, lake=lake)
    with _progress(quiet) as progress:
        results = run_synth(entity, records=records, seed=seed, runs=runs, settings=settings, progress=progress)
    where = f"{redact(settings.lake)}/{settings.lake_prefix}"
    _emit(
        [
            {"entity": name, "runs": list(r.run_ids), "files": _parts(r.files), "records": r.records,
             "distinct": r.distinct, "seconds": round(r.seconds, 2)} if r else {"entity": name, "skipped": True}
            for name, r in results.items()
        ],
        as_json,
        "\n".join(
            f"{name}: {_parts(r.files)} part files, {r.records} lines ({r.distinct} distinct) in {len(r.run_ids)} runs "
            f"under {where}, {r.seconds:.1f}s"
            if r
            else f"{name}: sample runs already under {where}/entity={name}; nothing written "
            "(delete that folder to generate it again)"
            for name, r in results.items()
        ),
    )  # fmt: skip


def _parts(files: tuple[str, ...]) -> int:
    return sum(f.endswith(".jsonl.gz") for f in files)


@app.command()
def status(
    entity: OneEntityOpt = None,
    target: TargetOpt = None,
    lake: LakeOpt = None,
    loads: Annotated[int, typer.Option("--loads", help="Also list the latest N loads.", min=0)] = 0,
    rejects: Annotated[int, typer.Option("--rejects", help="Also list the latest N rejected lines.", min=0)] = 0,
    time_zone: Annotated[
        str | None, typer.Option("--time-zone", help="IANA zone of the times shown [default: source_timezone].")
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show load progress, history, rows, rejects and sizes; never writes.

    Per entity: files in the lake vs loaded, the last load whatever its outcome (with its error
    and the values it stored as NULL) and the last successful one, rows per table, rejects, and on
    PostgreSQL table sizes and dead rows.
    """
    from .ops import status as get_status

    settings = _settings(config, target=target, lake=lake)
    with _sink(settings, read_only=True) as sink:
        report = get_status(sink, settings, entity, loads=loads, rejects=rejects, time_zone=time_zone)
    _emit(report, as_json, report_text(report))


@app.command()
def optimize(
    target: TargetOpt = None,
    entity: OneEntityOpt = None,
    analyze: Annotated[
        bool, typer.Option("--analyze", help="Refresh planner statistics (the default action).")
    ] = False,
    vacuum: Annotated[
        bool, typer.Option("--vacuum", help="Reclaim dead rows (VACUUM ANALYZE; DuckDB: CHECKPOINT).")
    ] = False,
    reindex: Annotated[
        bool, typer.Option("--reindex", help="Rebuild indexes without blocking readers (PostgreSQL).")
    ] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Maintain the tables: statistics, dead rows, indexes."""
    from .ops import optimize as run_optimize

    actions = [a for a, on in (("analyze", analyze), ("vacuum", vacuum), ("reindex", reindex)) if on] or ["analyze"]
    settings = _settings(config, target=target)
    with _sink(settings) as sink:
        done = run_optimize(sink, actions, entity)
    _emit({"target": sink.display, "actions": actions, "statements": done}, as_json, "\n".join(done))


@app.command()
def bench(
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="Server or file to measure on; PostgreSQL gets a fresh database, dropped after "
            "[default: a temporary DuckDB file].",
        ),
    ] = None,
    records: Annotated[int, typer.Option("--records", "-n", help="Distinct records per entity.", min=100)] = 200_000,
    entity: Annotated[
        list[str] | None, typer.Option("--entity", "-e", help="Entity to measure; repeatable [default: all].")
    ] = None,
    one_file: Annotated[
        bool, typer.Option("--one-file", help="Also load run 1 as one big file, to show memory stays flat.")
    ] = False,
    part_records: Annotated[
        int | None,
        typer.Option("--part-records", help="Also load run 1 regrouped into files of N+ records (big files).", min=1),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Measure records/s and peak memory per stage.

    Stages: decode on one core, first load, reload of mostly unchanged records, transform
    --full-refresh, and on PostgreSQL the psql \\copy reference with the ratios.
    """
    from .bench import bench as run_bench
    from .bench import format_report

    names = tuple(entity or _entity_names())
    for name in names:
        _one_entity(name)
    report = run_bench(target or "duckdb:bench.duckdb", records, names, one_file=one_file, part_records=part_records)
    _emit(report, as_json, format_report(report))


def _load_line(load: dict[str, Any]) -> str:
    return (
        f"{load['command']} {load['load_id']} {load['status']} at {load['started_at']}: {load['files']} files, "
        f"{load['lines_read']} lines, {load['inserted']} inserted, {load['updated']} updated, "
        f"{load['unchanged']} unchanged, {load['rejects']} rejects, {load['records_per_second']:,} records/s"
    )


def report_text(report: dict[str, Any]) -> str:
    from .drift import report_text as drift_text
    from .lake import shown

    lines = [f"target {report['target']}"]
    for name, e in report["entities"].items():
        lines.append(
            f"{name}: {e['files_loaded']} of {e['files_in_lake']} lake files loaded"
            + (f" ({e['files_partial']} partial)" if e.get("files_partial") else "")
            + (
                f" ({e['files_loaded_not_in_lake']} more in evo_meta.files are not in the lake)"
                if e.get("files_loaded_not_in_lake")
                else ""
            )
            + f", {e['rejects']} rejects"
        )
        lines += [f"  problem: {shown(p)}" for p in e.get("layout_problems", ())]
        last, success = e["last_attempt"], e["last_success"]
        if last is None:
            lines.append("  never loaded: evo-frames run loads it")
        else:
            lines.append(f"  last load: {_load_line(last)}")
            if last["error"]:
                lines.append(f"    error: {shown(last['error'])}")
            if last["cast_failures"]:
                lines.append(
                    "    values stored as NULL (could not be typed): "
                    + ", ".join(f"{k}={v}" for k, v in last["cast_failures"].items())
                )
        if success and success != last:
            lines.append(f"  last successful load: {_load_line(success)}")
        for table, t in e["tables"].items():
            if t["rows"] is None:
                lines.append(f"  {table}: not created yet")
                continue
            size = f", {t['bytes'] / 2**20:.1f} MiB" if t.get("bytes") is not None else ""
            dead = f", {t['dead_rows']} dead rows" if t.get("dead_rows") else ""
            lines.append(f"  {table}: {t['rows']} rows{size}{dead}")
        lines += drift_text(e["drift"])
    if "loads" in report:
        lines.append(f"latest {len(report['loads'])} loads:")
        for load in report["loads"]:
            lines.append(
                f"  {load['entity']} {_load_line(load)}" + (f"; {shown(load['error'])}" if load["error"] else "")
            )
    if "rejects" in report:
        lines.append(f"latest {len(report['rejects'])} rejected lines:")
        for r in report["rejects"]:
            raw = (r["raw"] or "")[:80]
            lines.append(f"  {shown(r['path'])}:{r['line']} ({r['stage']}) {shown(r['reason'])}: {raw!r}")
    return "\n".join(lines)


def _line(text: str) -> str:
    """An error as one line: secrets redacted, control characters (a file name's newline) escaped."""
    from .lake import shown

    return shown(redact(text))


def main() -> None:
    """Console entry point: run the app and turn our errors into one line and an exit code.

    Usage errors are typer's own (a message naming the option and exit 2).
    """
    try:
        app(prog_name="evo-frames")
    except EvoFramesError as e:
        if _state["verbose"]:
            log.exception("failed")
        typer.echo(f"error: {_line(str(e))}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted; committed batches are kept, rerun to continue", err=True)
        sys.exit(130)
    except Exception as e:
        if _state["verbose"]:
            import traceback

            typer.echo(redact(traceback.format_exc()), err=True)
            sys.exit(1)
        typer.echo(
            f"error: {_line(redact(f'{type(e).__name__}: {e}'))} (rerun with --verbose for the traceback)", err=True
        )
        sys.exit(1)
