"""Deterministic generator of realistic EVO bronze, for every entity that declares a sample.

It writes what the reference extractor writes (reference sections 0-5), through fsspec to any
lake URL::

    <lake>/<prefix>/entity=<e>/ingestion_date=YYYY-MM-DD/run_id=YYYYMMDDTHHMMSSZ/<window>part-NNNNN.jsonl.gz
    <lake>/<prefix>/entity=<e>/ingestion_date=YYYY-MM-DD/run_id=YYYYMMDDTHHMMSSZ/_manifest.json

- Records: each entity's sample module in ``transforms/`` builds them (its ``SAMPLE``, a
  :class:`~evo_frames.spec.Sample`, with the building blocks of :mod:`evo_frames.synth.kit`);
  this module lays out the runs, windows and parts and writes them. They have the API's own keys
  and nesting (members with ``contacts[]``, ``memberships[]`` with
  ``freezes[]``/``sessions[]`` and ``responsibles[]``; sales with ``saleItens[]`` and
  ``receivables[]``; flat entries; prospects with a ``responsible`` object or null), serialised
  like the extractor's ``json.dumps(record, ensure_ascii=False)``: default ``", "``/``": "``
  separators, real UTF-8 accents, money as Python floats with at most two decimals. Timestamps are
  offset-less Brazil local time, some with ``.123`` or ``.1234567`` fractions; date-only fields are
  midnight. Keys go missing and values go null at realistic rates, some arrays are ``null`` or
  ``[]``, and names, streets, cities and plans are Portuguese.
- Files: gzip of the lines joined by ``\\n`` with no trailing newline. Full parts hold
  :data:`PART_SIZE` records, and the window prefix is ``YYYY-MM_`` (windows of
  :attr:`Sample.window_months <evo_frames.spec.Sample.window_months>`: members and prospects 3,
  sales 1) or ``YYYY-MM-DD_`` (weekly: entries). Numbering restarts at
  ``00001`` in each window.
- Runs: the first run holds ``records`` distinct records. Each later run, a day or more after the
  previous one, re-sends the newest ``resend_share`` of all earlier records (about half byte for
  byte, half changed: member status, access dates, a contact or membership removed, a receivable
  paid, a sale cancelled, a prospect converted, an entry's turn time) plus :data:`NEW_SHARE` new
  ones. Entries carry a few genuine repeat taps: the same line twice in a row, one key.
- Ids agree across entities: sales and entries point at members and prospects that the same
  ``records`` and ``seed`` generate for those entities, with the member's own name and branch.

Every value is a hash of (seed, field, record index), so the output depends only on the
arguments: the same call gives byte-identical files (gzip mtime 0, no file name), the default
``start`` is fixed, and nothing reads the clock except to report ``seconds``. Columns are built
with Polars expressions per batch of records and compressed in two threads while the next batch
is built, so memory stays bounded by a batch.

Measured on the 2-core development machine (Python 3.11, Polars 2.1, other jobs sharing the CPU,
load average 1.3 to 5), writing to local disk with the default two runs; CPU is user + system:

    ====================================================  =====  ========  ======  ========  =======
    call                                                   gzip   lines     wall    CPU       peak RSS
    ====================================================  =====  ========  ======  ========  =======
    generate("/tmp/synth-bench", "entries", 3_000_000)     6      3.76M     28.5 s  43 s      245 MB
    same, gzip_level=9 (105 MB -> 96 MB of files)          9      3.76M     77.5 s  96 s      240 MB
    generate("/tmp/synth-bench", "members", 200_000)       6      250K      23.1 s  35 s      405 MB
    same, gzip_level=9 (79 MB -> 73 MB of files)           9      250K      49.9 s  59 s      406 MB
    ====================================================  =====  ========  ======  ========  =======

Level 6 compresses about 150 MB/s of JSON per core and level 9 about 30 MB/s, for files only 8-10%
smaller: hence the default of 6 although the reference extractor writes level 9.
"""

from __future__ import annotations

import bisect
import collections
import concurrent.futures
import dataclasses
import datetime
import gzip
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import fsspec
import polars as pl

from ..progress import Progress
from ..registry import discover
from ..spec import Sample
from .kit import UTC_OFFSET, Frame, Populations, Rng

__all__ = [
    "BATCH_ROWS",
    "CHANGE_SHARE",
    "DEFAULT_START",
    "ENTITIES",
    "NEW_SHARE",
    "PART_SIZE",
    "SynthResult",
    "generate",
]

_log = logging.getLogger("evo_frames")

ENTITIES: tuple[str, ...]
"""Entities with a sample generator, in load order (from :func:`evo_frames.registry.discover`)."""

PART_SIZE: dict[str, int] = {}
"""Records in a full part file, by entity: each :attr:`Sample.part_size`, filled on first use."""

BATCH_ROWS: dict[str, int] = {}
"""Records built per Polars query, by entity: each :attr:`Sample.batch_rows`, filled on first use."""

_SAMPLES: dict[str, Sample] = {}


def __getattr__(name: str) -> Any:
    """``ENTITIES``, read from the registry on first use.

    Not at import: sample modules import :mod:`evo_frames.synth.kit`, and so this package.
    """
    if name == "ENTITIES":
        return tuple(_samples())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _samples() -> dict[str, Sample]:
    """The registry's samples by entity, discovered once per process (and the tables above)."""
    if not _SAMPLES:
        _SAMPLES.update((name, e.sample) for name, e in discover().items() if e.sample is not None)
        for name, sample in _SAMPLES.items():
            PART_SIZE.setdefault(name, sample.part_size)
            BATCH_ROWS.setdefault(name, sample.batch_rows)
    return _SAMPLES


NEW_SHARE = 0.05
"""New records in each later run, as a share of ``records``."""

CHANGE_SHARE = 0.5
"""Share of re-sent records whose content changed since they were last sent."""

DEFAULT_START = datetime.datetime(2026, 1, 11, 3, 15, 22, tzinfo=datetime.UTC)
"""When the first run happens (its run_id), unless ``start`` says otherwise."""

_RUN_GAP = 109_031
"""Seconds between runs at least (1 day 6:17:11), so later runs look like re-runs days apart."""

_MAX_RUNS = 1_000  # draws that change between runs are keyed by record * 1000 + version


@dataclasses.dataclass(frozen=True)
class SynthResult:
    """What :func:`generate` wrote.

    Attributes:
        entity: One of :data:`ENTITIES`.
        run_ids: Runs written, oldest first.
        files: Every file written (parts and manifests), as ``lake`` + relative path.
        records: Lines written in total, re-sent records and repeat taps included.
        distinct: Distinct records by the entity's key across all runs, which is the number of
            rows a correct loader ends with (entries: distinct reference key strings).
        seconds: Wall time of the call.
    """

    entity: str
    run_ids: tuple[str, ...]
    files: tuple[str, ...]
    records: int
    distinct: int
    seconds: float


def generate(
    lake: str,
    entity: str,
    records: int,
    *,
    seed: int = 0,
    runs: int = 2,
    resend_share: float = 0.2,
    prefix: str = "bronze/evo",
    storage_options: dict[str, str] | None = None,
    gzip_level: int = 6,
    start: datetime.datetime | None = None,
    change_share: float = CHANGE_SHARE,
    progress: Progress | None = None,
) -> SynthResult:
    """Write realistic bronze for one entity into a lake, deterministically.

    Args:
        lake: Lake URL or plain path (``file:///abs``, ``/abs``, ``memory://x``, ``az://container``).
        entity: One of :data:`ENTITIES`.
        records: Distinct records in the first run (at least 1).
        seed: Seed of every value; the same arguments give byte-identical files.
        runs: Runs to write (at least 1), each later one a day or more after the previous.
        resend_share: Share of earlier records each later run sends again (0 to 1).
        change_share: Share of the re-sent records whose content changed (0 to 1).
        prefix: Folder of the bronze tree inside the lake.
        storage_options: Options for ``fsspec.core.url_to_fs`` (e.g. an Azure connection string).
        gzip_level: gzip compression level, 0 to 9 (the reference extractor uses 9).
        start: When the first run happens (naive means UTC); defaults to :data:`DEFAULT_START`.
        progress: Receives the records built after each batch (see :mod:`evo_frames.progress`).

    Returns:
        The runs, files and counts written.

    Raises:
        ValueError: An argument is out of range; the message names it, its value and the valid choices.
        FileExistsError: A run folder this call would write already holds files.

    >>> r = generate("memory://synth-doctest", "prospects", 10, runs=1)
    >>> (r.run_ids, r.records, r.distinct)
    (('20260111T031522Z',), 10, 10)
    """
    began = time.perf_counter()
    _check_args(entity, records, runs, resend_share, gzip_level)
    if not 0.0 <= change_share <= 1.0:
        raise ValueError(f"change_share = {change_share!r} is out of range; use a share from 0 to 1")
    fs, root = fsspec.core.url_to_fs(lake, **(storage_options or {}))
    sample = _samples()[entity]
    rng = Rng(seed)
    plan = _Plan.build(sample, records, runs, resend_share, _as_utc(start or DEFAULT_START), rng, change_share)
    # referenced ids stay inside what the same `records` generates for the entity referred to
    ctx = {name: max(1, min(records, round(records * share))) for name, share in sample.refers.items()}
    base_url, base_dir = lake.rstrip("/"), root.rstrip("/")
    rel_entity = f"{prefix.strip('/')}/entity={entity}".lstrip("/")
    rel_runs = [f"{rel_entity}/ingestion_date={run.utc:%Y-%m-%d}/run_id={run.run_id}" for run in plan.runs]
    for rel_run in rel_runs:
        _refuse_existing(fs, f"{base_dir}/{rel_run}")
    files: list[str] = []
    lines = 0
    progress = progress or Progress()
    progress.start(entity, records=sum(run.hi - run.lo for run in plan.runs))
    with _Writer(fs, gzip_level) as writer:
        for run, rel_run in zip(plan.runs, rel_runs, strict=True):
            run_dir = f"{base_dir}/{rel_run}"
            fs.makedirs(run_dir, exist_ok=True)
            windows = plan.windows(run)

            def submit(name: str, data: bytes, run_dir: str = run_dir) -> None:
                writer.submit(f"{run_dir}/{name}", data)

            parts = _write_run(
                plan,
                run,
                windows,
                sample,
                ctx,
                submit,
                lambda n: progress.advance(entity, records=n),
            )
            writer.drain()
            results = [w.result(p.lines, len(p.names), sample.page_size) for w, p in zip(windows, parts, strict=True)]
            fs.pipe_file(f"{run_dir}/_manifest.json", _manifest(sample, run, results, windows).encode("utf-8"))
            files += [f"{base_url}/{rel_run}/{name}" for p in parts for name in p.names]
            files.append(f"{base_url}/{rel_run}/_manifest.json")
            run_lines = sum(p.lines for p in parts)
            lines += run_lines
            _log.info(
                "synth wrote %s run_id=%s files=%d lines=%d to %s/%s",
                entity,
                run.run_id,
                sum(len(p.names) for p in parts) + 1,
                run_lines,
                base_url,
                rel_run,
            )
    progress.finish(entity)
    return SynthResult(
        entity=entity,
        run_ids=tuple(r.run_id for r in plan.runs),
        files=tuple(files),
        records=lines,
        distinct=plan.runs[-1].hi,
        seconds=time.perf_counter() - began,
    )


def _write_run(
    plan: _Plan,
    run: _Run,
    windows: list[_Window],
    sample: Sample,
    ctx: Populations,
    submit: Callable[[str, bytes], None],
    on_batch: Callable[[int], None],
) -> list[_Parts]:
    """Build a run's records batch by batch and cut them into each window's parts, in order."""
    part_size, batch_rows = PART_SIZE[sample.entity], BATCH_ROWS[sample.entity]
    parts = [_Parts(part_size, w.prefix, submit) for w in windows]
    done = 0  # windows before this one are complete
    for a in range(run.lo, run.hi, batch_rows):
        b = min(a + batch_rows, run.hi)
        batch = sample.build(Frame(plan.base(a, b, run), plan.rng), ctx).collect()
        index, lines = batch["i"], batch["line"]
        for w in range(done, len(windows)):
            window = windows[w]
            if window.lo >= b:
                break
            # batches span windows, so that small samples take few queries; rows come in index order
            first, stop = (index.search_sorted(min(max(x, a), b), "left") for x in (window.lo, window.hi))
            parts[w].feed(lines.slice(first, stop - first))
            if window.hi <= b:
                parts[w].flush()
                done = w + 1
        on_batch(b - a)
    return parts


def _check_args(entity: str, records: int, runs: int, resend_share: float, gzip_level: int) -> None:
    """Raise ValueError naming the first argument that is out of range."""
    if entity not in _samples():
        raise ValueError(f"entity: unknown value {entity!r}; valid: {', '.join(_samples())}")
    if not isinstance(records, int) or isinstance(records, bool) or records < 1:
        raise ValueError(f"records: {records!r} is not a whole number of at least 1")
    if not isinstance(runs, int) or isinstance(runs, bool) or not 1 <= runs < _MAX_RUNS:
        raise ValueError(f"runs: {runs!r} is not a whole number of 1 to {_MAX_RUNS - 1}")
    if not 0.0 <= resend_share <= 1.0:
        raise ValueError(f"resend_share: {resend_share!r} is outside 0.0 to 1.0")
    if gzip_level not in range(10):
        raise ValueError(f"gzip_level: {gzip_level!r} is not a level of 0 to 9")


def _as_utc(moment: datetime.datetime) -> datetime.datetime:
    """Read a naive datetime as UTC and drop sub-second precision, which run ids cannot hold."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).replace(microsecond=0)


def _refuse_existing(fs: fsspec.AbstractFileSystem, run_dir: str) -> None:
    """Never mix a new sample with files of another one in the same run folder."""
    if fs.exists(run_dir) and fs.ls(run_dir, detail=False):
        raise FileExistsError(
            f"synth: run folder {run_dir} already holds files; remove it or write to another lake "
            "or start time, since stale parts would break the counts"
        )


# ---------------------------------------------------------------------------------------------
# runs, time line and windows


@dataclasses.dataclass(frozen=True)
class _Run:
    """One extractor run: records [lo, hi) are written, [new, hi) for the first time."""

    number: int
    utc: datetime.datetime
    end: int  # local epoch seconds of the run, after every record it holds
    lo: int
    new: int
    hi: int

    @property
    def run_id(self) -> str:
        return f"{self.utc:%Y%m%dT%H%M%SZ}"


@dataclasses.dataclass(frozen=True)
class _Segment:
    """Records from `first` on sit `step` seconds apart from `t0`, each jittered inside its slot."""

    first: int
    t0: int
    step: int


@dataclasses.dataclass(frozen=True)
class _Window:
    """One extraction window of a run and the records [lo, hi) that fall in it."""

    start: datetime.date
    end: datetime.date
    lo: int
    hi: int
    prefix: str

    def result(self, records: int, parts: int, take: int) -> dict[str, Any]:
        """The manifest's `results[]` element, with API timings made up from the record count."""
        return {
            "period": f"{self.start.isoformat()} - {self.end.isoformat()}",
            "records": records,
            "parts": parts,
            "elapsed": round(records / 180 + 1.5, 2),
            "requests": records // take + 1,
            "worker_id": self.start.toordinal() % 4,
        }


@dataclasses.dataclass(frozen=True)
class _Grid:
    """Window starts: every `months` months, or every 7 days when `months` is 0, from `origin`."""

    origin: datetime.date
    months: int

    def index(self, day: datetime.date) -> int:
        if not self.months:
            return (day - self.origin).days // 7
        return (day.year * 12 + day.month - self.origin.year * 12 - self.origin.month) // self.months

    def start(self, w: int) -> datetime.date:
        if not self.months:
            return self.origin + datetime.timedelta(days=7 * w)
        year, month0 = divmod(self.origin.year * 12 + self.origin.month - 1 + w * self.months, 12)
        return datetime.date(year, month0 + 1, 1)

    def prefix(self, w: int) -> str:
        day = self.start(w)
        return f"{day:%Y-%m-%d}_" if not self.months else f"{day:%Y-%m}_"


class _Plan:
    """Runs, the time line of record index -> local timestamp, and the window grid of an entity."""

    def __init__(self, rng: Rng, runs: list[_Run], segments: list[_Segment], grid: _Grid, change_share: float) -> None:
        self.rng = rng
        self.runs = runs
        self.segments = segments
        self.grid = grid
        self.change_share = change_share

    @classmethod
    def build(
        cls,
        sample: Sample,
        records: int,
        runs: int,
        resend_share: float,
        start: datetime.datetime,
        rng: Rng,
        change_share: float = CHANGE_SHARE,
    ) -> _Plan:
        """Lay out the runs: the first holds `records`, each later one re-sends and adds."""
        end = _local_seconds(start)
        min_step = sample.min_step
        span = sample.min_span if sample.history is None else end - _day_seconds(sample.history)
        step = max(min_step, span // records)
        t0 = end - records * step - 1
        segments = [_Segment(0, t0, step)]
        plan_runs = [_Run(1, start, end, 0, 0, records)]
        added = max(1, round(NEW_SHARE * records))
        for number in range(2, runs + 1):
            prev = plan_runs[-1]
            new_step = max(min_step, min(step, _RUN_GAP // added))
            first_t = prev.end + 60
            end = max(prev.end + _RUN_GAP, first_t + added * new_step + 60)
            segments.append(_Segment(prev.hi, first_t, new_step))
            resent = round(resend_share * prev.hi)
            utc = datetime.datetime.fromtimestamp(end - UTC_OFFSET, datetime.UTC)
            plan_runs.append(_Run(number, utc, end, prev.hi - resent, prev.hi, prev.hi + added))
        grid = _Grid(sample.history or _seconds_day(t0), sample.window_months)
        return cls(rng, plan_runs, segments, grid, change_share)

    def time_of(self, i: int) -> int:
        """Local epoch seconds of record `i`; the scalar twin of the `t` column of :meth:`base`."""
        seg = self.segments[bisect.bisect_right([s.first for s in self.segments], i) - 1]
        return seg.t0 + (i - seg.first) * seg.step + self.rng.bits_py("record.time", i) % seg.step

    def windows(self, run: _Run) -> list[_Window]:
        """The run's windows on the grid, from the one of its first record to the one of its last."""
        if run.lo >= run.hi:
            return []
        index = range(run.lo, run.hi)
        first = self.grid.index(_seconds_day(self.time_of(run.lo)))
        last = self.grid.index(_seconds_day(self.time_of(run.hi - 1)))
        run_day = _seconds_day(run.end)
        out = []
        for w in range(first, last + 1):
            a, b = (
                run.lo + bisect.bisect_left(index, _day_seconds(self.grid.start(k)), key=self.time_of)
                for k in (w, w + 1)
            )
            end = min(self.grid.start(w + 1) - datetime.timedelta(days=1), run_day)
            out.append(_Window(self.grid.start(w), end, a, b, self.grid.prefix(w)))
        return out

    def base(self, a: int, b: int, run: _Run) -> pl.LazyFrame:
        """Records [a, b) as of `run`: `i`, time `t`, `born`, `ver`, `ver_end`, `changed`, `iv`.

        `born` is the run that first sent the record; `ver` the latest run up to `run` that
        re-sent it changed (else `born`), and `ver_end` that run's local time. Every field that
        changes between runs is drawn from them (keyed by `iv`), so an unchanged re-send repeats
        the earlier line byte for byte.
        """
        i = pl.col("i")

        def by_segment(field: str) -> pl.Expr:
            value: pl.Expr = pl.lit(getattr(self.segments[0], field), dtype=pl.Int64)
            for seg in self.segments[1:]:
                value = pl.when(i >= seg.first).then(getattr(seg, field)).otherwise(value)
            return value

        born: pl.Expr = pl.lit(1, dtype=pl.Int64)
        ver: pl.Expr = pl.lit(1, dtype=pl.Int64)
        for r in self.runs[1 : run.number]:
            born = pl.when(i >= r.new).then(r.number).otherwise(born)
        for r in self.runs[1 : run.number]:
            changed = (i >= r.lo) & (i < r.new) & self.rng.chance(f"record.change.{r.number}", self.change_share, i)
            ver = pl.when(changed).then(r.number).otherwise(ver)
        ver_end: pl.Expr = pl.lit(self.runs[0].end, dtype=pl.Int64)
        for r in self.runs[1 : run.number]:
            ver_end = pl.when(pl.col("ver") == r.number).then(r.end).otherwise(ver_end)
        jitter = (self.rng.bits("record.time", i) % pl.col("step").cast(pl.UInt64)).cast(pl.Int64)
        return (
            pl.LazyFrame()
            .select(i=pl.int_range(a, b, dtype=pl.Int64))
            .with_columns(
                first=by_segment("first"), t0=by_segment("t0"), step=by_segment("step"), born=born, ver_changed=ver
            )
            .with_columns(
                t=pl.col("t0") + (i - pl.col("first")) * pl.col("step") + jitter,
                ver=pl.max_horizontal("born", "ver_changed"),
            )
            .with_columns(ver_end=ver_end, changed=pl.col("ver") > pl.col("born"), iv=i * _MAX_RUNS + pl.col("ver"))
            .drop("first", "t0", "step", "ver_changed")
        )


def _local_seconds(moment: datetime.datetime) -> int:
    """Epoch seconds of the Brazil wall clock at `moment`, the time base of every record."""
    return int(moment.timestamp()) + UTC_OFFSET


def _day_seconds(day: datetime.date) -> int:
    return (day - datetime.date(1970, 1, 1)).days * 86_400


def _seconds_day(seconds: int) -> datetime.date:
    return datetime.date(1970, 1, 1) + datetime.timedelta(days=seconds // 86_400)


def _manifest(sample: Sample, run: _Run, results: list[dict[str, Any]], windows: list[_Window]) -> str:
    """The run's `_manifest.json`, shaped like the reference extractor's."""
    doc: dict[str, Any] = {
        "entity": sample.entity,
        "mode": "full_parallel",
        "run_id": run.run_id,
        "start_date": windows[0].start.isoformat() if windows else _seconds_day(run.end).isoformat(),
        "end_date": _seconds_day(run.end).isoformat(),
        "workers": sample.workers,
        "total_records": sum(r["records"] for r in results),
        "total_parts": sum(r["parts"] for r in results),
        "total_elapsed_seconds": round(sum(r["elapsed"] for r in results) / 4, 2),
        "periods": len(results),
    }
    doc.update(sample.manifest)
    doc["results"] = results
    return json.dumps(doc, ensure_ascii=False, indent=2)


# ---------------------------------------------------------------------------------------------
# parts and writing


class _Parts:
    """Cuts a window's lines into full parts numbered from 00001 and hands them to `submit`."""

    def __init__(self, size: int, prefix: str, submit: Callable[[str, bytes], None]) -> None:
        self.size = size
        self.prefix = prefix
        self.submit = submit
        self.pending: list[pl.Series] = []
        self.count = 0  # lines pending
        self.lines = 0  # lines written
        self.names: list[str] = []

    def feed(self, lines: pl.Series) -> None:
        self.pending.append(lines)
        self.count += len(lines)
        while self.count >= self.size:
            joined = pl.concat(self.pending)
            self.pending, self.count = [joined.slice(self.size)], self.count - self.size
            self._part(joined.slice(0, self.size))

    def flush(self) -> None:
        if self.count:
            joined = pl.concat(self.pending)
            self.pending, self.count = [], 0
            self._part(joined)

    def _part(self, lines: pl.Series) -> None:
        name = f"{self.prefix}part-{len(self.names) + 1:05d}.jsonl.gz"
        self.names.append(name)
        self.lines += len(lines)
        self.submit(name, lines.str.join("\n").item().encode("utf-8"))


class _Writer:
    """Compresses and writes parts in two threads (zlib and file writes release the GIL).

    At most a few parts wait at a time, so memory stays bounded; a failed write surfaces at the
    next submit or drain.
    """

    _IN_FLIGHT = 4  # parts queued at most, to bound memory

    def __init__(self, fs: fsspec.AbstractFileSystem, level: int) -> None:
        self.fs = fs
        self.level = level
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="synth-gzip")
        self.futures: collections.deque[concurrent.futures.Future[None]] = collections.deque()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.drain()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, path: str, data: bytes) -> None:
        while len(self.futures) >= self._IN_FLIGHT:
            self.futures.popleft().result()
        self.futures.append(self.pool.submit(self._write, path, data))

    def drain(self) -> None:
        while self.futures:
            self.futures.popleft().result()

    def _write(self, path: str, data: bytes) -> None:
        # mtime 0 and no file name in the header keep the bytes a function of the content
        self.fs.pipe_file(path, gzip.compress(data, compresslevel=self.level, mtime=0))
