"""Deterministic generator of realistic EVO bronze for members, sales, entries and prospects.

It writes what the reference extractor writes (reference sections 0-5), through fsspec to any
lake URL::

    <lake>/<prefix>/entity=<e>/ingestion_date=YYYY-MM-DD/run_id=YYYYMMDDTHHMMSSZ/<window>part-NNNNN.jsonl.gz
    <lake>/<prefix>/entity=<e>/ingestion_date=YYYY-MM-DD/run_id=YYYYMMDDTHHMMSSZ/_manifest.json

- Records: the API's own keys and nesting (members with ``contacts[]``, ``memberships[]`` with
  ``freezes[]``/``sessions[]`` and ``responsibles[]``; sales with ``saleItens[]`` and
  ``receivables[]``; flat entries; prospects with a ``responsible`` object or null), serialised
  like the extractor's ``json.dumps(record, ensure_ascii=False)``: default ``", "``/``": "``
  separators, real UTF-8 accents, money as Python floats with at most two decimals. Timestamps are
  offset-less Brazil local time, some with ``.123`` or ``.1234567`` fractions; date-only fields are
  midnight. Keys go missing and values go null at realistic rates, some arrays are ``null`` or
  ``[]``, and names, streets, cities and plans are Portuguese.
- Files: gzip of the lines joined by ``\\n`` with no trailing newline. Full parts hold
  :data:`PART_SIZE` records, and the window prefix is ``YYYY-MM_`` (members and prospects in
  3-month windows, sales monthly) or ``YYYY-MM-DD_`` (entries, weekly). Numbering restarts at
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
import hashlib
import json
import logging
import time
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

import fsspec
import polars as pl

from .progress import Progress

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

ENTITIES = ("members", "sales", "entries", "prospects")

_log = logging.getLogger("evo_frames")

PART_SIZE: dict[str, int] = {"members": 2_000, "sales": 5_000, "entries": 10_000, "prospects": 2_000}
"""Records in a full part file, as the reference extractor flushes them (pages x page size)."""

BATCH_ROWS: dict[str, int] = {"members": 10_000, "sales": 10_000, "entries": 50_000, "prospects": 20_000}
"""Records built per Polars query: large enough to amortise planning, small enough to bound memory."""

NEW_SHARE = 0.05
"""New records in each later run, as a share of ``records``."""

CHANGE_SHARE = 0.5
"""Share of re-sent records whose content changed since they were last sent."""

DEFAULT_START = datetime.datetime(2026, 1, 11, 3, 15, 22, tzinfo=datetime.UTC)
"""When the first run happens (its run_id), unless ``start`` says otherwise."""

_RUN_GAP = 109_031
"""Seconds between runs at least (1 day 6:17:11), so later runs look like re-runs days apart."""

_UTC_OFFSET = -3 * 3600
"""Brazil local time (UTC-3, no daylight saving since 2019), in which EVO writes timestamps."""

_HISTORY = {
    "members": datetime.date(2020, 6, 1),
    "prospects": datetime.date(2021, 1, 1),
    "sales": datetime.date(2024, 1, 1),
}
"""Start of the extracted history of stock entities; their first run spreads records over it."""

_ENTRY_MIN_SPAN = 21 * 86_400
"""A first run of entries spans three weeks at least, so small samples still have several windows."""

_ENTRY_STEP = 2
"""Seconds between entries at least: about 43k a day, and no two entries share a timestamp."""

_MEMBER_ID0, _PROSPECT_ID0, _SALE_ID0, _EMPLOYEE_ID0 = 1_000_001, 3_300_001, 88_000_001, 300
_EMPLOYEES = 400
_MAX_CHILDREN = 16  # child draws are keyed by parent * 16 + position
_MAX_RUNS = 1_000  # draws that change between runs are keyed by record * 1000 + version

# members per record of each entity (reference section 5: 2.4M members, 12.8M sales, 110M
# entries, 612K prospects), so referenced ids stay inside what the same `records` generates
_MEMBERS_PER_RECORD = {"members": 1.0, "sales": 0.19, "entries": 0.022, "prospects": 1.0}
_PROSPECTS_PER_RECORD = {"members": 0.25, "sales": 0.048, "entries": 0.0056, "prospects": 1.0}


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
    rng = _Rng(seed)
    plan = _Plan.build(entity, records, runs, resend_share, _as_utc(start or DEFAULT_START), rng, change_share)
    ctx = _Context(
        _population(entity, records, _MEMBERS_PER_RECORD), _population(entity, records, _PROSPECTS_PER_RECORD)
    )
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
            parts = _write_run(
                plan,
                run,
                windows,
                entity,
                ctx,
                lambda name, data, run_dir=run_dir: writer.submit(f"{run_dir}/{name}", data),
                lambda n: progress.advance(entity, records=n),
            )
            writer.drain()
            results = [w.result(p.lines, len(p.names), entity) for w, p in zip(windows, parts, strict=True)]
            fs.pipe_file(f"{run_dir}/_manifest.json", _manifest(entity, run, results, windows).encode("utf-8"))
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
    entity: str,
    ctx: _Context,
    submit: Callable[[str, bytes], None],
    on_batch: Callable[[int], None],
) -> list[_Parts]:
    """Build a run's records batch by batch and cut them into each window's parts, in order."""
    parts = [_Parts(PART_SIZE[entity], w.prefix, submit) for w in windows]
    done = 0  # windows before this one are complete
    for a in range(run.lo, run.hi, BATCH_ROWS[entity]):
        b = min(a + BATCH_ROWS[entity], run.hi)
        batch = _BUILDERS[entity](_Frame(plan.base(a, b, run), plan.rng), ctx).collect()
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
    if entity not in ENTITIES:
        raise ValueError(f"entity: unknown value {entity!r}; valid: {', '.join(ENTITIES)}")
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


def _population(entity: str, records: int, per_record: dict[str, float]) -> int:
    """Members or prospects that records of `entity` point at: never more than `records` of them."""
    return max(1, min(records, round(records * per_record[entity])))


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

    def result(self, records: int, parts: int, entity: str) -> dict[str, Any]:
        """The manifest's `results[]` element, with API timings made up from the record count."""
        take = {"members": 50, "sales": 100, "entries": 1000, "prospects": 50}[entity]
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

    def __init__(self, rng: _Rng, runs: list[_Run], segments: list[_Segment], grid: _Grid, change_share: float) -> None:
        self.rng = rng
        self.runs = runs
        self.segments = segments
        self.grid = grid
        self.change_share = change_share

    @classmethod
    def build(
        cls,
        entity: str,
        records: int,
        runs: int,
        resend_share: float,
        start: datetime.datetime,
        rng: _Rng,
        change_share: float = CHANGE_SHARE,
    ) -> _Plan:
        """Lay out the runs: the first holds `records`, each later one re-sends and adds."""
        end = _local_seconds(start)
        if entity == "entries":
            step = max(_ENTRY_STEP, _ENTRY_MIN_SPAN // records)
            min_step = _ENTRY_STEP
        else:
            history = _day_seconds(_HISTORY[entity])
            step = max(1, (end - history) // records)
            min_step = 1
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
            utc = datetime.datetime.fromtimestamp(end - _UTC_OFFSET, datetime.UTC)
            plan_runs.append(_Run(number, utc, end, prev.hi - resent, prev.hi, prev.hi + added))
        if entity == "entries":
            grid = _Grid(_seconds_day(t0), 0)
        else:
            grid = _Grid(_HISTORY[entity], 1 if entity == "sales" else 3)
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
    return int(moment.timestamp()) + _UTC_OFFSET


def _day_seconds(day: datetime.date) -> int:
    return (day - datetime.date(1970, 1, 1)).days * 86_400


def _seconds_day(seconds: int) -> datetime.date:
    return datetime.date(1970, 1, 1) + datetime.timedelta(days=seconds // 86_400)


def _manifest(entity: str, run: _Run, results: list[dict[str, Any]], windows: list[_Window]) -> str:
    """The run's `_manifest.json`, shaped like the reference extractor's."""
    doc: dict[str, Any] = {
        "entity": entity,
        "mode": "full_parallel",
        "run_id": run.run_id,
        "start_date": windows[0].start.isoformat() if windows else _seconds_day(run.end).isoformat(),
        "end_date": _seconds_day(run.end).isoformat(),
        "workers": 8 if entity == "entries" else 4,
        "total_records": sum(r["records"] for r in results),
        "total_parts": sum(r["parts"] for r in results),
        "total_elapsed_seconds": round(sum(r["elapsed"] for r in results) / 4, 2),
        "periods": len(results),
    }
    if entity == "members":
        doc["show_memberships"] = True
    if entity == "entries":
        doc["errors"] = []
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


# ---------------------------------------------------------------------------------------------
# randomness: splitmix64 of (seed, field, key), as Polars columns and as Python ints

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX = tuple(
    pl.Series([v], dtype=pl.UInt64) for v in (1 << 30, 0xBF58476D1CE4E5B9, 1 << 27, 0x94D049BB133111EB, 1 << 31)
)


def _u64(value: int) -> pl.Expr:
    return pl.lit(value & _MASK, dtype=pl.UInt64)


def _mix_py(x: int) -> int:
    """splitmix64's finaliser on a Python int (the twin of :func:`_mix_series`)."""
    z = x & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def _mix_series(z: pl.Series) -> pl.Series:
    """splitmix64's finaliser on a UInt64 Series; Polars' UInt64 arithmetic wraps like C's."""
    s30, c1, s27, c2, s31 = _MIX
    z = (z ^ (z // s30)) * c1
    z = (z ^ (z // s27)) * c2
    return z ^ (z // s31)


class _Rng:
    """Counter-based randomness: a value is a hash of (seed, field name, key), never a sequence.

    So any record can be built alone, in any batch, in any run, and come out the same; and the
    output owes nothing to Polars' own hash, which may change between versions.
    """

    def __init__(self, seed: int) -> None:
        self.seed = _mix_py(seed)

    def salt(self, name: str) -> int:
        digest = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
        return _mix_py(digest ^ self.seed)

    def bits(self, name: str, key: pl.Expr) -> pl.Expr:
        # one opaque node per draw: written as expressions, each xor-shift would double the tree
        state = key.cast(pl.UInt64) * _u64(_GOLDEN) + _u64(self.salt(name))
        return state.map_batches(_mix_series, return_dtype=pl.UInt64, is_elementwise=True)

    def bits_py(self, name: str, key: int) -> int:
        return _mix_py(key * _GOLDEN + self.salt(name))

    def chance(self, name: str, p: float, key: pl.Expr) -> pl.Expr:
        return self.bits(name, key) < _u64(min(_MASK, int(p * 2.0**64)))


class _Frame:
    """A LazyFrame grown by named columns, so that a value used several times is computed once.

    Polars does not merge repeated subexpressions that call Python (every draw does), and
    repeated subtrees make planning and evaluation explode; so builders `let` every value they
    use more than once and refer to it by column.
    """

    def __init__(self, lf: pl.LazyFrame, rng: _Rng) -> None:
        self.lf = lf
        self.rng = rng
        self.pending: dict[str, pl.Expr] = {}
        self.memo: dict[tuple[str, ...], Any] = {}
        self.count = 0

    def let(self, expr: pl.Expr, name: str | None = None) -> pl.Expr:
        """Add `expr` as a column (computed with its independent neighbours) and refer to it."""
        if not self.pending.keys().isdisjoint(expr.meta.root_names()):
            self.flush()
        if name is None:
            name = f"_v{self.count}"
            self.count += 1
        self.pending[name] = expr.alias(name)
        return pl.col(name)

    def flush(self) -> pl.LazyFrame:
        if self.pending:
            self.lf = self.lf.with_columns(*self.pending.values())
            self.pending = {}
        return self.lf

    def materialize(self) -> None:
        """Compute the columns so far once, before several child queries read them."""
        self.lf = self.flush().collect().lazy()

    def filter(self, predicate: pl.Expr) -> None:
        self.lf = self.flush().filter(predicate)

    def at(self, key: str) -> _Draw:
        """Draws keyed by column `key` (a record, a child, a referenced member...)."""
        return _Draw(self, key)

    def once(self, memo: tuple[str, ...], make: Callable[[], Any]) -> Any:
        if memo not in self.memo:
            self.memo[memo] = make()
        return self.memo[memo]


class _Draw:
    """Random values of a frame keyed by one of its columns; each named draw is one column."""

    def __init__(self, frame: _Frame, key: str) -> None:
        self.frame = frame
        self.key = key

    def bits(self, name: str) -> pl.Expr:
        f = self.frame
        return f.once(("bits", name, self.key), lambda: f.let(f.rng.bits(name, pl.col(self.key))))

    def chance(self, name: str, p: float) -> pl.Expr:
        return self.bits(name) < _u64(min(_MASK, int(p * 2.0**64)))

    def below(self, name: str, n: int | pl.Expr) -> pl.Expr:
        """Uniform integer in [0, n); `n` may be a column (values below 1 count as 1)."""
        m = _u64(max(1, n)) if isinstance(n, int) else n.clip(lower_bound=1).cast(pl.UInt64)
        return (self.bits(name) % m).cast(pl.Int64)

    def between(self, name: str, lo: int, hi: int) -> pl.Expr:
        """Uniform integer in [lo, hi]."""
        return self.below(name, hi - lo + 1) + lo

    def digits(self, name: str, n: int) -> pl.Expr:
        """`n` random decimal digits as text."""
        return (self.bits(name) % _u64(10**n)).cast(pl.String).str.zfill(n)


# ---------------------------------------------------------------------------------------------
# JSON text: values are JSON fragments; strings in pools are already JSON-escaped


def _cat(*parts: pl.Expr | str) -> pl.Expr:
    """Concatenate expressions and literal text; null if any part is null."""
    return pl.concat_str([pl.lit(p) if isinstance(p, str) else p for p in parts])


def _js(text: pl.Expr) -> pl.Expr:
    """A JSON string from escaped text."""
    return _cat('"', text, '"')


def _jn(number: pl.Expr) -> pl.Expr:
    return number.cast(pl.String)


def _jb(flag: pl.Expr) -> pl.Expr:
    return pl.when(flag).then(pl.lit("true")).otherwise(pl.lit("false"))


def _null_if(cond: pl.Expr, value: pl.Expr) -> pl.Expr:
    return pl.when(cond).then(pl.lit(None, dtype=pl.String)).otherwise(value)


def _money(f: _Frame, cents: pl.Expr) -> pl.Expr:
    """Cents as Python's repr of the float the extractor parsed: 99.9, 240.0, 79.95."""
    c = f.let(cents)
    rest = c % 100
    decimals = (
        pl.when(rest == 0)
        .then(pl.lit("0"))
        .when(rest % 10 == 0)
        .then((rest // 10).cast(pl.String))
        .otherwise(rest.cast(pl.String).str.zfill(2))
    )
    return _cat((c // 100).cast(pl.String), ".", decimals)


def _ts(d: _Draw, name: str, seconds: pl.Expr) -> pl.Expr:
    """A local timestamp, 5% with milliseconds and 5% with seven fraction digits, like EVO's."""
    bits = d.bits(name)
    kind = bits % _u64(100)
    fraction = d.frame.let(((bits // _u64(100)) % _u64(10**7)).cast(pl.String).str.zfill(7))
    suffix = (
        pl.when(kind < 5)
        .then(_cat(".", fraction.str.slice(0, 3)))
        .when(kind < 10)
        .then(_cat(".", fraction))
        .otherwise(pl.lit(""))
    )
    return _js(_cat(pl.from_epoch(seconds, time_unit="s").dt.to_string("%Y-%m-%dT%H:%M:%S"), suffix))


def _day(seconds: pl.Expr, clock: str = "00:00:00") -> pl.Expr:
    """A date-only field: the day of `seconds` at midnight (or at `clock`)."""
    return _js(pl.from_epoch(seconds, time_unit="s").dt.to_string(f"%Y-%m-%dT{clock}"))


@dataclasses.dataclass(frozen=True)
class _F:
    """One key of a JSON object: a null value is written as null, unless `omit` drops the key."""

    key: str
    value: pl.Expr
    omit: pl.Expr | None = None


def _obj(fields: Sequence[_F]) -> pl.Expr:
    frags = []
    for f in fields:
        frag = _cat(f'"{f.key}": ', f.value.fill_null(pl.lit("null")))
        frags.append(frag if f.omit is None else _null_if(f.omit, frag))
    return _cat("{", pl.concat_str(frags, separator=", ", ignore_nulls=True), "}")


def _line(f: _Frame, fields: Sequence[_F], drop_nulls: pl.Expr) -> pl.LazyFrame:
    """The records as lines; where `drop_nulls`, null keys are left out at every depth.

    That is what a serialiser set to ignore nulls writes. The patterns cannot match inside
    strings, where every quote is escaped.
    """
    line = f.let(_obj(fields))
    dropped = line.str.replace_all(r', "[A-Za-z]+": null', "").str.replace_all(r'\{"[A-Za-z]+": null(, )?', "{")
    return f.flush().select("i", line=pl.when(drop_nulls).then(dropped).otherwise(line))


def _children(
    parent: _Frame,
    count: pl.Expr,
    columns: Sequence[str],
    element: Callable[[_Frame], pl.Expr],
    **aggs: pl.Expr,
) -> pl.LazyFrame:
    """Array text per parent `i` (column `json`) of `count` elements.

    `element` gets a frame with one row per element (parent `columns`, position `k`, draw key
    `ck`); it may filter rows and `let` columns, and returns the element's JSON; `aggs` add
    per-parent aggregates of its columns.
    """
    rows = (
        parent.flush()
        .select(*columns, k=pl.int_ranges(0, count))
        .explode("k")
        .with_columns(ck=pl.col("i") * _MAX_CHILDREN + pl.col("k"))
    )
    child = _Frame(rows, parent.rng)
    json_text = child.let(element(child), "json")
    return child.flush().group_by("i", maintain_order=True).agg(json_text.str.join(", "), **aggs)


def _attach(f: _Frame, children: pl.LazyFrame, name: str) -> pl.Expr:
    """Join array text back to its parents (those without elements get `[]`)."""
    f.lf = f.flush().join(children.rename({"json": name}), on="i", how="left", maintain_order="left")
    return _cat("[", pl.col(name).fill_null(""), "]")


# ---------------------------------------------------------------------------------------------
# vocabulary


class _Pool:
    """Values to draw from (strings stored JSON-escaped), optionally weighted by repetition."""

    def __init__(self, values: Sequence[Any], weights: Sequence[int] | None = None) -> None:
        items = list(values) if weights is None else [v for v, w in zip(values, weights, strict=True) for _ in range(w)]
        if all(isinstance(v, str) for v in items):
            items = [json.dumps(v, ensure_ascii=False)[1:-1] for v in items]
        self.series = pl.Series(items)

    def __len__(self) -> int:
        return len(self.series)

    def at(self, index: pl.Expr) -> pl.Expr:
        return pl.lit(self.series).gather(index)

    def pick(self, d: _Draw, name: str) -> pl.Expr:
        return self.at(d.below(name, len(self)))


def _ascii(word: str) -> str:
    """Lower-case ASCII of a name, as e-mail addresses spell it."""
    plain = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


_FIRST_F = (
    "Ana",
    "Maria",
    "Júlia",
    "Letícia",
    "Beatriz",
    "Camila",
    "Fernanda",
    "Patrícia",
    "Larissa",
    "Mariana",
    "Gabriela",
    "Luíza",
    "Aline",
    "Bruna",
    "Carolina",
    "Débora",
    "Élida",
    "Fátima",
    "Gisele",
    "Helena",
    "Isabela",
    "Jéssica",
    "Kátia",
    "Lúcia",
    "Márcia",
    "Natália",
    "Priscila",
    "Raquel",
    "Simone",
    "Tânia",
    "Vitória",
    "Yasmin",
    "Conceição",
    "Antônia",
    "Cecília",
    "Lívia",
    "Sônia",
    "Valéria",
    "Rosângela",
    "Adriana",
)
_FIRST_M = (
    "João",
    "José",
    "Antônio",
    "Francisco",
    "Carlos",
    "Paulo",
    "Pedro",
    "Lucas",
    "Luiz",
    "Marcos",
    "Luís",
    "Gabriel",
    "Rafael",
    "Daniel",
    "Marcelo",
    "Bruno",
    "Eduardo",
    "Felipe",
    "Raimundo",
    "Rodrigo",
    "Sérgio",
    "Fábio",
    "Vinícius",
    "Caio",
    "Otávio",
    "Thiago",
    "Gustavo",
    "Matheus",
    "André",
    "Márcio",
    "Leandro",
    "Flávio",
    "Renê",
    "Mauro",
    "Júlio",
    "Cícero",
    "Benedito",
    "Igor",
    "Ícaro",
    "Washington",
)
_LAST = (
    "Silva",
    "Santos",
    "Oliveira",
    "Souza",
    "Rodrigues",
    "Ferreira",
    "Alves",
    "Pereira",
    "Lima",
    "Gomes",
    "Costa",
    "Ribeiro",
    "Martins",
    "Carvalho",
    "Almeida",
    "Lopes",
    "Soares",
    "Fernandes",
    "Vieira",
    "Barbosa",
    "Rocha",
    "Dias",
    "Nascimento",
    "Andrade",
    "Moreira",
    "Nunes",
    "Marques",
    "Machado",
    "Mendes",
    "Freitas",
    "Cardoso",
    "Ramos",
    "Gonçalves",
    "Santana",
    "Teixeira",
    "Araújo",
    "Conceição",
    "Magalhães",
    "Simões",
    "Antunes",
    "Brandão",
    "Falcão",
    "Guimarães",
    "Assunção",
    "Estêvão",
    "D'Ávila",
    "Sant'Anna",
    "Müller",
)
FIRST_F, FIRST_M, LAST = _Pool(_FIRST_F), _Pool(_FIRST_M), _Pool(_LAST)
FIRST_F_ASCII, FIRST_M_ASCII = _Pool([_ascii(n) for n in _FIRST_F]), _Pool([_ascii(n) for n in _FIRST_M])
LAST_ASCII = _Pool([_ascii(n) for n in _LAST])

# (branch, city, state, neighbourhood, zip prefix, area code, time zone); idBranch = position + 1
_SP, _NE, _AM, _MT = (
    "E. South America Standard Time",
    "SA Eastern Standard Time",
    "SA Western Standard Time",
    "Central Brazilian Standard Time",
)
_BRANCHES = (
    ("MOOCA", "São Paulo", "SP", "Mooca", "03166", "11", _SP),
    ("TATUAPÉ", "São Paulo", "SP", "Tatuapé", "03310", "11", _SP),
    ("SANTANA", "São Paulo", "SP", "Santana", "02012", "11", _SP),
    ("PINHEIROS", "São Paulo", "SP", "Pinheiros", "05422", "11", _SP),
    ("SÃO MIGUEL PAULISTA", "São Paulo", "SP", "São Miguel Paulista", "08010", "11", _SP),
    ("ITAQUERA", "São Paulo", "SP", "Itaquera", "08210", "11", _SP),
    ("VILA MARIANA", "São Paulo", "SP", "Vila Mariana", "04101", "11", _SP),
    ("IPIRANGA", "São Paulo", "SP", "Ipiranga", "04207", "11", _SP),
    ("LAPA", "São Paulo", "SP", "Lapa", "05068", "11", _SP),
    ("PENHA", "São Paulo", "SP", "Penha de França", "03601", "11", _SP),
    ("CAPÃO REDONDO", "São Paulo", "SP", "Capão Redondo", "05866", "11", _SP),
    ("JABAQUARA", "São Paulo", "SP", "Jabaquara", "04307", "11", _SP),
    ("BUTANTÃ", "São Paulo", "SP", "Butantã", "05503", "11", _SP),
    ("GUARULHOS", "Guarulhos", "SP", "Centro", "07010", "11", _SP),
    ("OSASCO", "Osasco", "SP", "Centro", "06010", "11", _SP),
    ("SANTO ANDRÉ", "Santo André", "SP", "Vila Assunção", "09030", "11", _SP),
    ("SÃO BERNARDO", "São Bernardo do Campo", "SP", "Rudge Ramos", "09720", "11", _SP),
    ("DIADEMA", "Diadema", "SP", "Centro", "09910", "11", _SP),
    ("MOGI DAS CRUZES", "Mogi das Cruzes", "SP", "Centro", "08710", "11", _SP),
    ("TABOÃO DA SERRA", "Taboão da Serra", "SP", "Jardim Maria Rosa", "06763", "11", _SP),
    ("CAMPINAS", "Campinas", "SP", "Cambuí", "13024", "19", _SP),
    ("JUNDIAÍ", "Jundiaí", "SP", "Anhangabaú", "13208", "11", _SP),
    ("SOROCABA", "Sorocaba", "SP", "Campolim", "18047", "15", _SP),
    ("RIBEIRÃO PRETO", "Ribeirão Preto", "SP", "Jardim Irajá", "14020", "16", _SP),
    ("SANTOS", "Santos", "SP", "Gonzaga", "11060", "13", _SP),
    ("SÃO JOSÉ DOS CAMPOS", "São José dos Campos", "SP", "Jardim Aquarius", "12246", "12", _SP),
    ("PIRACICABA", "Piracicaba", "SP", "Centro", "13400", "19", _SP),
    ("BAURU", "Bauru", "SP", "Vila Universitária", "17012", "14", _SP),
    ("TIJUCA", "Rio de Janeiro", "RJ", "Tijuca", "20511", "21", _SP),
    ("MADUREIRA", "Rio de Janeiro", "RJ", "Madureira", "21350", "21", _SP),
    ("CAMPO GRANDE", "Rio de Janeiro", "RJ", "Campo Grande", "23050", "21", _SP),
    ("BANGU", "Rio de Janeiro", "RJ", "Bangu", "21810", "21", _SP),
    ("NITERÓI", "Niterói", "RJ", "Icaraí", "24220", "21", _SP),
    ("DUQUE DE CAXIAS", "Duque de Caxias", "RJ", "Jardim 25 de Agosto", "25071", "21", _SP),
    ("NOVA IGUAÇU", "Nova Iguaçu", "RJ", "Centro", "26210", "21", _SP),
    ("SAVASSI", "Belo Horizonte", "MG", "Savassi", "30140", "31", _SP),
    ("CONTAGEM", "Contagem", "MG", "Eldorado", "32310", "31", _SP),
    ("UBERLÂNDIA", "Uberlândia", "MG", "Santa Mônica", "38408", "34", _SP),
    ("JUIZ DE FORA", "Juiz de Fora", "MG", "São Mateus", "36025", "32", _SP),
    ("BATEL", "Curitiba", "PR", "Batel", "80420", "41", _SP),
    ("LONDRINA", "Londrina", "PR", "Gleba Palhano", "86050", "43", _SP),
    ("MARINGÁ", "Maringá", "PR", "Zona 7", "87020", "44", _SP),
    ("MENINO DEUS", "Porto Alegre", "RS", "Menino Deus", "90130", "51", _SP),
    ("CANOAS", "Canoas", "RS", "Centro", "92010", "51", _SP),
    ("TRINDADE", "Florianópolis", "SC", "Trindade", "88036", "48", _SP),
    ("JOINVILLE", "Joinville", "SC", "América", "89204", "47", _SP),
    ("PITUBA", "Salvador", "BA", "Pituba", "41830", "71", _NE),
    ("FEIRA DE SANTANA", "Feira de Santana", "BA", "Capuchinhos", "44076", "75", _NE),
    ("BOA VIAGEM", "Recife", "PE", "Boa Viagem", "51020", "81", _NE),
    ("OLINDA", "Olinda", "PE", "Casa Caiada", "53130", "81", _NE),
    ("ALDEOTA", "Fortaleza", "CE", "Aldeota", "60150", "85", _NE),
    ("SETOR BUENO", "Goiânia", "GO", "Setor Bueno", "74230", "62", _SP),
    ("TAGUATINGA", "Brasília", "DF", "Taguatinga Norte", "72115", "61", _SP),
    ("ÁGUAS CLARAS", "Brasília", "DF", "Águas Claras", "71925", "61", _SP),
    ("UMARIZAL", "Belém", "PA", "Umarizal", "66055", "91", _NE),
    ("ADRIANÓPOLIS", "Manaus", "AM", "Adrianópolis", "69057", "92", _AM),
    ("PRAIA DO CANTO", "Vitória", "ES", "Praia do Canto", "29055", "27", _SP),
    ("GOIABEIRAS", "Cuiabá", "MT", "Goiabeiras", "78045", "65", _MT),
    ("PONTA NEGRA", "Natal", "RN", "Ponta Negra", "59090", "84", _NE),
    ("MANAÍRA", "João Pessoa", "PB", "Manaíra", "58038", "83", _NE),
)
BRANCH_NAME = _Pool([f"SKYFIT {b[2]} - {b[0]}" for b in _BRANCHES])
BRANCH_CITY, BRANCH_STATE, BRANCH_HOOD, BRANCH_ZIP, BRANCH_DDD, BRANCH_TZ = (
    _Pool([b[n] for b in _BRANCHES]) for n in range(1, 7)
)
STREET = _Pool(
    (
        "Rua Taquari",
        "Avenida Paulista",
        "Rua Augusta",
        "Rua da Consolação",
        "Avenida Brigadeiro Faria Lima",
        "Rua São Bento",
        "Rua Voluntários da Pátria",
        "Avenida Getúlio Vargas",
        "Rua Sete de Setembro",
        "Rua XV de Novembro",
        "Avenida Presidente Vargas",
        "Rua Marechal Deodoro",
        "Rua Dom Pedro II",
        "Travessa São José",
        "Alameda Santos",
        "Rua das Laranjeiras",
        "Rua Conselheiro Crispiniano",
        "Avenida João Pessoa",
        "Rua Padre Anchieta",
        "Rua Tiradentes",
        "Estrada do Campo Limpo",
        "Rua Ipê-Amarelo",
        "Avenida Sapopemba",
        "Rua Coração de Maria",
        "Rua Doutor Cândido Espinheira",
        "Avenida Goiás",
        "Rua Álvares Cabral",
        "Praça da Sé",
    )
)
HOOD = _Pool(
    (
        "Centro",
        "Jardim América",
        "Vila Nova",
        "Bela Vista",
        "Jardim São Paulo",
        "Vila Prudente",
        "Parque São Lucas",
        "Boa Vista",
        "Santa Cecília",
        "Liberdade",
        "Cidade Nova",
        "Jardim Primavera",
        "Conjunto Habitacional José Bonifácio",
        "Vila Formosa",
        "São João Clímaco",
        "Jardim Ângela",
    )
)
COMPLEMENT = _Pool(
    ("Apto 12", "Casa 2", "Bloco B apto 34", "Fundos", "Apto 1102 Torre 3", "Sala 5", ""), (3, 2, 2, 1, 1, 1, 3)
)
MARITAL = _Pool(
    ("Solteiro(a)", "Casado(a)", "Divorciado(a)", "Viúvo(a)", "União estável", "Não informado"), (45, 30, 8, 2, 5, 10)
)
EMAIL_DOMAIN = _Pool(
    ("gmail.com", "hotmail.com", "outlook.com", "yahoo.com.br", "uol.com.br", "icloud.com", "bol.com.br"),
    (50, 20, 10, 8, 5, 4, 3),
)
BLOCK_REASON = _Pool(
    (
        "Inadimplência",
        "Contrato vencido",
        "Fora do horário permitido",
        "Limite de acessos diários atingido",
        "Exame médico pendente",
        "Cadastro sem biometria",
    )
)
DEVICE = _Pool(
    ("CATRACA 01", "CATRACA 02", "CATRACA 03", "CATRACA 04", "CATRACA PCD", "RECEPÇÃO", "APP SKYFIT", "TOTEM FACIAL"),
    (30, 25, 15, 8, 3, 7, 8, 4),
)
MEMBER_STATUS = _Pool(("Active", "Inactive"), (60, 40))

# (idMembership, name, months (0: one day), monthly price in cents, idCategoryMembership, people)
_PLANS = (
    (12, "PLANO ANUAL SMART", 12, 9990, 3, 1),
    (14, "PLANO ANUAL BLACK", 12, 13990, 3, 1),
    (3, "PLANO MENSAL SMART", 1, 11990, 1, 1),
    (4, "PLANO MENSAL BLACK", 1, 14990, 1, 1),
    (7, "PLANO SEMESTRAL FIT", 6, 10990, 2, 1),
    (9, "PLANO TRIMESTRAL BÁSICO", 3, 12990, 2, 1),
    (15, "RECORRENTE SMART", 1, 9990, 4, 1),
    (18, "PLANO FAMÍLIA – 2 PESSOAS", 12, 17990, 5, 2),
    (21, "DIÁRIA AVULSA", 0, 3000, 6, 1),
    (25, "PLANO ESTUDANTE (MEIA-ENTRADA)", 6, 7990, 2, 1),
    (30, "PLANO MELHOR IDADE 60+", 12, 7990, 3, 1),
)
_PLAN_WEIGHTS = (22, 10, 12, 8, 8, 5, 20, 3, 4, 5, 3)
PLAN = _Pool(range(len(_PLANS)), _PLAN_WEIGHTS)
PLAN_ID, PLAN_NAME, PLAN_MONTHS, PLAN_CENTS, PLAN_CATEGORY, PLAN_PEOPLE = (
    _Pool([p[n] for p in _PLANS]) for n in range(6)
)
# (idProduct, description, price in cents, idService or 0)
_PRODUCTS = (
    (501, "Taxa de matrícula", 4990, 0),
    (502, "Garrafa SKYFIT 750ml", 3990, 0),
    (0, "Avaliação física", 5990, 31),
    (503, "Camiseta Dry-Fit SKYFIT", 6990, 0),
    (504, "Cadeado p/ armário", 2500, 0),
    (0, "Personal – pacote 4 aulas", 24000, 35),
    (505, "Toalha de rosto", 2990, 0),
)
PRODUCT = _Pool(range(len(_PRODUCTS)), (40, 12, 15, 8, 10, 5, 10))
PRODUCT_ID, PRODUCT_NAME, PRODUCT_CENTS, PRODUCT_SERVICE = (_Pool([p[n] for p in _PRODUCTS]) for n in range(4))
# (paymentType id, name, installments allowed, card)
_PAYMENTS = (
    (2, "Cartão de Crédito", True, True),
    (18, "Pix", False, False),
    (3, "Cartão de Débito", False, True),
    (1, "Dinheiro", False, False),
    (5, "Boleto", True, False),
    (12, "Cartão de crédito online", True, True),
    (13, "Transferência", False, False),
    (11, "Crédito de venda", False, False),
)
PAYMENT = _Pool(range(len(_PAYMENTS)), (45, 20, 12, 8, 5, 7, 2, 1))
PAYMENT_ID, PAYMENT_NAME, PAYMENT_SPLIT, PAYMENT_CARD = (_Pool([p[n] for p in _PAYMENTS]) for n in range(4))
INSTALLMENTS = _Pool((1, 2, 3, 6, 10, 12), (55, 5, 10, 8, 5, 17))
CARD_FLAG = _Pool(("Visa", "Mastercard", "Elo", "Hipercard", "American Express"), (40, 35, 15, 5, 5))
ACQUIRER = _Pool(("Cielo", "Rede", "Stone", "GetNet", "PagSeguro"))
OBSERVATION = _Pool(
    (
        "Pagamento via Pix confirmado",
        'Cliente solicitou "congelamento" em março',
        "Renovação automática\nVer com gerência",
        "Desconto de 10% – campanha Verão",
        "Aluno transferido da unidade Tatuapé",
        "Obs.: prefere contato por WhatsApp; não ligar após 20h",
        "Comprovante salvo em C:\\Recepcao\\comprovantes",
        "Matrícula\tpromocional",
    )
)
PARTNERSHIP = _Pool(("Wellhub (Gympass)", "TotalPass", "Banco do Brasil – Convênio", "Prefeitura de Santos"))
SALE_SOURCE = _Pool((1, 11, 4, 9), (70, 15, 10, 5))
SIGNUP = _Pool(("Site", "Balcão", "Aplicativo", "Telefone", "WhatsApp", "Indicação"), (30, 25, 15, 8, 15, 7))
CHANNEL = _Pool(
    ("Instagram", "Google", "Facebook", "Indicação de amigo", "Panfleto", "Passando em frente", "TikTok", "Outdoor"),
    (30, 20, 10, 12, 5, 10, 8, 5),
)
STEP = _Pool(
    ("Novo lead", "Contato realizado", "Agendou visita", "Visitou a unidade", "Negociação", "Perdido"),
    (30, 20, 15, 10, 10, 15),
)
FREEZE_REASON = _Pool(("Viagem", "Atestado médico", "Cirurgia", "Gestação", "Motivos pessoais"))


# ---------------------------------------------------------------------------------------------
# people, contacts and addresses shared by the entities


@dataclasses.dataclass(frozen=True)
class _Person:
    """Name parts of a person (escaped text columns)."""

    gender: pl.Expr
    first: pl.Expr
    last: pl.Expr
    email_user: pl.Expr

    @property
    def full(self) -> pl.Expr:
        return _cat(self.first, " ", self.last)


def _person(f: _Frame, ns: str, key: str) -> _Person:
    """The same person for the same namespace and key in every entity (members in entries...)."""
    return f.once(("person", ns, key), lambda: _new_person(f, ns, key))


def _new_person(f: _Frame, ns: str, key: str) -> _Person:
    d = f.at(key)
    g = d.below(f"{ns}.gender", 100)
    female = f.let((g < 50) | ((g >= 97) & d.chance(f"{ns}.gender.other", 0.5)))
    fi = d.bits(f"{ns}.first")
    f_idx, m_idx = ((fi % _u64(len(p))).cast(pl.Int64) for p in (FIRST_F, FIRST_M))
    first = f.let(pl.when(female).then(FIRST_F.at(f_idx)).otherwise(FIRST_M.at(m_idx)))
    first_ascii = pl.when(female).then(FIRST_F_ASCII.at(f_idx)).otherwise(FIRST_M_ASCII.at(m_idx))
    l1 = f.let(d.below(f"{ns}.last1", len(LAST)))
    last = f.let(
        pl.when(d.chance(f"{ns}.two_last", 0.6))
        .then(_cat(LAST.at(l1), " ", LAST.at(d.below(f"{ns}.last2", len(LAST)))))
        .otherwise(LAST.at(l1))
    )
    # legacy records in capitals, and stray trailing blanks the API never trims
    upper = f.let(d.chance(f"{ns}.upper", 0.04))
    first = f.let(pl.when(upper).then(first.str.to_uppercase()).otherwise(first))
    last = f.let(pl.when(upper).then(last.str.to_uppercase()).otherwise(last))
    last = f.let(pl.when(d.chance(f"{ns}.blank", 0.01)).then(_cat(last, " ")).otherwise(last))
    gender = pl.when(g < 50).then(pl.lit("F")).when(g < 97).then(pl.lit("M")).otherwise(pl.lit("P"))
    number = pl.when(d.chance(f"{ns}.email.n", 0.4)).then(d.between(f"{ns}.email.d", 1, 99).cast(pl.String))
    email_user = f.let(pl.concat_str([first_ascii, pl.lit("."), LAST_ASCII.at(l1), number], ignore_nulls=True))
    return _Person(gender, first, last, email_user)


def _email(d: _Draw, name: str, person: _Person) -> pl.Expr:
    return _cat(person.email_user, "@", EMAIL_DOMAIN.pick(d, name))


def _phone(d: _Draw, name: str, ddd: pl.Expr, mobile: bool) -> pl.Expr:
    """'(11) 98765-4321' mostly, bare digits sometimes; landlines have 8 digits."""
    digits = d.frame.let(d.digits(name, 8))
    head = _cat("9", digits.str.slice(0, 4)) if mobile else digits.str.slice(0, 4)
    tail = digits.str.slice(4, 4)
    return (
        pl.when(d.chance(f"{name}.bare", 0.2))
        .then(_cat(ddd, head, tail))
        .otherwise(_cat("(", ddd, ") ", head, "-", tail))
    )


def _cpf(d: _Draw, name: str) -> pl.Expr:
    """A CPF with valid check digits: masked 60%, bare digits 30%, empty 5%, null 5%."""
    f = d.frame
    base = f.let((d.bits(name) % _u64(10**9)).cast(pl.Int64))
    ds = [(base // 10 ** (8 - k)) % 10 for k in range(9)]
    c1 = f.let((pl.sum_horizontal([x * (10 - k) for k, x in enumerate(ds)]) * 10 % 11) % 10)
    c2 = ((pl.sum_horizontal([x * (11 - k) for k, x in enumerate(ds)]) + c1 * 2) * 10 % 11) % 10
    s = f.let(_cat(base.cast(pl.String).str.zfill(9), c1.cast(pl.String), c2.cast(pl.String)))
    style = d.below(f"{name}.style", 100)
    masked = _cat(s.str.slice(0, 3), ".", s.str.slice(3, 3), ".", s.str.slice(6, 3), "-", s.str.slice(9, 2))
    return (
        pl.when(style < 60)
        .then(_js(masked))
        .when(style < 90)
        .then(_js(s))
        .when(style < 95)
        .then(pl.lit('""'))
        .otherwise(pl.lit(None, dtype=pl.String))
    )


def _home_branch(f: _Frame, ns: str, key: str) -> pl.Expr:
    """Branch index (idBranch - 1) of a member or prospect, the same in every entity."""
    return f.at(key).below(f"{ns}.branch", len(BRANCH_NAME))


def _address(d: _Draw, branch: pl.Expr) -> list[_F]:
    """Address keys near `branch` (a column), null all together for 15% of records."""
    none = d.frame.let(d.chance("addr.none", 0.15))
    zip_head, zip_tail = BRANCH_ZIP.at(branch), d.digits("addr.zip", 3)
    zip_code = (
        pl.when(d.chance("addr.zip.bare", 0.2)).then(_cat(zip_head, zip_tail)).otherwise(_cat(zip_head, "-", zip_tail))
    )
    number = (
        pl.when(d.chance("addr.sn", 0.05)).then(pl.lit("S/N")).otherwise(d.between("addr.n", 1, 3999).cast(pl.String))
    )
    hood = pl.when(d.chance("addr.hood", 0.5)).then(BRANCH_HOOD.at(branch)).otherwise(HOOD.pick(d, "addr.hood.p"))
    values = {
        "address": _js(STREET.pick(d, "addr.street")),
        "number": _js(number),
        "complement": _null_if(d.chance("addr.compl.null", 0.5), _js(COMPLEMENT.pick(d, "addr.compl"))),
        "neighborhood": _js(hood),
        "city": _js(BRANCH_CITY.at(branch)),
        "state": _js(BRANCH_STATE.at(branch)),
        "country": pl.lit('"Brasil"'),
        "zipCode": _js(zip_code),
    }
    return [_F(k, _null_if(none, v)) for k, v in values.items()]


def _employee(f: _Frame, key: str) -> tuple[pl.Expr, pl.Expr]:
    """(idEmployee, name) JSON of the employee number in column `key`."""
    return _jn(pl.col(key) + _EMPLOYEE_ID0), _js(_person(f, "employee", key).full)


# ---------------------------------------------------------------------------------------------
# entities


@dataclasses.dataclass(frozen=True)
class _Context:
    members: int  # member indexes other entities point at: [0, members)
    prospects: int


def _members(f: _Frame, ctx: _Context) -> pl.LazyFrame:
    """Members with contacts[], memberships[] (freezes[], sessions[]) and responsibles[]."""
    d, dv = f.at("i"), f.at("iv")
    f.let(pl.col("i") + _MEMBER_ID0, "id")
    br = f.let(_home_branch(f, "member", "i"), "br")
    f.let(pl.col("t") // 86_400, "reg_day")
    f.let(pl.col("ver_end") // 86_400, "end_day")
    person = _person(f, "member", "i")
    ddd = f.let(BRANCH_DDD.at(br))
    f.let(_phone(d, "m.cell", ddd, mobile=True), "cell")
    f.let(_phone(d, "m.land", ddd, mobile=False), "land")
    f.let(_email(d, "m.email", person), "email")

    f.let(pl.col("changed") & d.chance("m.ms.drop", 0.4), "drop_first")
    f.materialize()

    # a re-sent member that changed loses its last contact (a deleted phone, say)
    n_contacts = f.let(_Pool((0, 1, 2, 3), (5, 30, 55, 10)).pick(d, "m.contacts"))
    n_contacts = n_contacts - (pl.col("changed") & (n_contacts >= 2) & d.chance("m.contacts.drop", 0.5)).cast(pl.Int64)
    contacts = _children(f, n_contacts, ("i", "id", "cell", "email", "land"), _contact)

    # a changed member may lose its oldest membership (deleted upstream) or cancel its newest
    n_ms = _Pool(range(7), (8, 30, 25, 17, 10, 6, 4)).pick(d, "m.ms")
    memberships = _children(
        f,
        n_ms,
        ("i", "id", "reg_day", "end_day", "changed", "drop_first"),
        _membership,
        has_active=pl.col("active").any(),
    )

    responsible_person = _person(f, "responsible", "i")
    responsible = _obj(
        [
            _F("idResponsible", _jn(pl.col("i") + 40_000)),
            _F("idMember", _jn(pl.col("id"))),
            _F(
                "idMemberResponsible",
                _null_if(d.chance("m.resp.member", 0.7), _jn(d.below("m.resp.m", ctx.members) + _MEMBER_ID0)),
            ),
            _F("name", _js(responsible_person.full)),
            _F("cpf", _cpf(d, "m.resp.cpf")),
            _F("email", _js(_email(d, "m.resp.email", responsible_person))),
            _F("phone", _js(_phone(d, "m.resp.phone", ddd, mobile=True))),
            _F("observation", pl.lit(None, dtype=pl.String)),
            _F("acessFiti", _jb(d.chance("m.resp.fiti", 0.1))),
            _F("financialResponsible", _jb(d.chance("m.resp.fin", 0.8))),
        ]
    )
    responsibles = pl.when(d.chance("m.resp", 0.03)).then(_cat("[", responsible, "]")).otherwise(pl.lit("[]"))

    contacts_json = _attach(f, contacts, "contacts")
    memberships_json = _attach(f, memberships, "memberships")
    ms_mode = f.let(d.below("m.ms.mode", 100))  # 2% null, 1% key missing, 5% hidden as []
    shown = ms_mode >= 8
    active = pl.when(pl.col("has_active").fill_null(False)).then(pl.lit("Active")).otherwise(pl.lit("Inactive"))
    status = f.let(pl.when(shown).then(active).otherwise(MEMBER_STATUS.pick(dv, "m.status")))
    access_window = (pl.col("ver_end") - pl.col("t")).clip(upper_bound=120 * 86_400)
    last_access = pl.col("ver_end") - dv.below("m.access", access_window)
    blocked = f.let(d.chance("m.blocked", 0.05))
    legacy = f.let(d.chance("m.legacy", 0.3))  # answered by an older API version, without the v2 keys
    trainer = f.let(d.chance("m.trainer", 0.005))
    staff = []
    for role, key, share in (
        ("Consultant", "cons", 0.85),
        ("Instructor", "inst", 0.4),
        ("PersonalTrainer", "pers", 0.05),
    ):
        f.let(d.below(f"m.{key}", _EMPLOYEES), key)
        missing = f.let(~d.chance(f"m.{key}.has", share))
        id_json, name_json = _employee(f, key)
        staff += [
            _F(f"idEmployee{role}", _null_if(missing, id_json)),
            _F(f"nameEmployee{role}", _null_if(missing, name_json)),
        ]
    conversion = f.let(
        pl.when(d.chance("m.conv.null", 0.15))
        .then(pl.lit(None, dtype=pl.Int64))
        .when(d.chance("m.conv.later", 0.1))
        .then(pl.col("t") + d.below("m.conv.d", 20 * 86_400))
        .otherwise(pl.col("t"))
    )
    rg = f.let(d.digits("m.rg", 8))
    address_branch = f.let(
        pl.when(d.chance("m.addr.away", 0.15)).then(d.below("m.addr.br", len(BRANCH_NAME))).otherwise(br)
    )
    fields = [
        _F("idMember", _jn(pl.col("id"))),
        _F("firstName", _js(person.first)),
        _F("lastName", _js(person.last)),
        _F("registerName", _js(person.first), legacy),
        _F("registerLastName", _js(person.last), legacy),
        _F("usePreferredName", pl.lit("false"), legacy),
        _F("registerDate", _ts(d, "m.reg", pl.col("t"))),
        _F("idBranch", _jn(br + 1)),
        _F("branchName", _js(BRANCH_NAME.at(br))),
        _F("accessBlocked", _jb(blocked)),
        _F("blockedReason", _null_if(~blocked, _js(BLOCK_REASON.pick(d, "m.block")))),
        _F("document", _cpf(d, "m.cpf")),
        _F(
            "documentId",
            _null_if(
                d.chance("m.rg.null", 0.3),
                _js(
                    _cat(
                        rg.str.slice(0, 2),
                        ".",
                        rg.str.slice(2, 3),
                        ".",
                        rg.str.slice(5, 3),
                        "-",
                        d.below("m.rg.dv", 10).cast(pl.String),
                    )
                ),
            ),
        ),
        _F("maritalStatus", _null_if(d.chance("m.marital.null", 0.2), _js(MARITAL.pick(d, "m.marital")))),
        _F("gender", _js(person.gender)),
        _F(
            "birthDate",
            _null_if(
                d.chance("m.birth.null", 0.05), _day(pl.col("t") - d.between("m.age", 16 * 365, 70 * 365) * 86_400)
            ),
        ),
        *_address(d, address_branch),
        _F("accessCardNumber", _null_if(d.chance("m.card.null", 0.3), _js(d.digits("m.card", 10)))),
        _F("membershipStatus", _js(status)),
        _F("status", _js(status)),
        _F("penalized", _jb(d.chance("m.penalized", 0.02))),
        _F(
            "totalFitCoins", _jn(pl.when(d.chance("m.coins", 0.9)).then(0).otherwise(d.below("m.coins.n", 500))), legacy
        ),
        _F("lastAccessDate", _null_if(d.chance("m.access.null", 0.08), _ts(dv, "m.access.ts", last_access))),
        _F("conversionDate", _ts(d, "m.conv.ts", pl.when(conversion <= pl.col("ver_end")).then(conversion))),
        _F(
            "updateDate",
            _ts(
                dv,
                "m.upd",
                pl.col("ver_end") - dv.below("m.upd.d", 3 * 86_400).clip(upper_bound=pl.col("ver_end") - pl.col("t")),
            ),
            legacy,
        ),
        *staff,
        _F(
            "photoUrl",
            _null_if(
                d.chance("m.photo", 0.65),
                _js(_cat("https://evo-fotos.w12app.com.br/skyfit/fotos/", _jn(pl.col("id")), ".jpg")),
            ),
        ),
        _F("idMemberMigration", _null_if(d.chance("m.mig", 0.9), _js(_cat("MIG", d.digits("m.mig.n", 7))))),
        _F("gympassId", _null_if(d.chance("m.gympass", 0.94), _js(d.digits("m.gympass.n", 13)))),
        _F("codeTotalpass", _null_if(d.chance("m.totalpass", 0.96), _js(_cat("TP", d.digits("m.tp", 8)))), legacy),
        _F("userIdGurupass", _null_if(d.chance("m.guru", 0.99), _js(d.digits("m.guru.n", 9))), legacy),
        _F("clientWithPromotionalRestriction", _jb(d.chance("m.promo", 0.02)), legacy),
        _F("personalTrainer", _jb(trainer)),
        _F("personalType", _null_if(~trainer, pl.lit('"Personal externo"'))),
        _F("cref", _null_if(~trainer, _js(_cat(d.digits("m.cref", 6), "-G/", BRANCH_STATE.at(br))))),
        _F("crefExpirationDate", _null_if(~trainer, _day(pl.col("ver_end") + 300 * 86_400))),
        _F("contacts", contacts_json),
        _F(
            "memberships",
            _null_if(ms_mode < 2, pl.when(shown).then(memberships_json).otherwise(pl.lit("[]"))),
            ms_mode == 2,
        ),
        _F("responsibles", responsibles, d.chance("m.resp.omit", 0.04)),
    ]
    return _line(f, fields, d.chance("m.drop_nulls", 0.1))


def _contact(c: _Frame) -> pl.Expr:
    """A member's contact: cellphone first, then e-mail, then landline; some without idPhone."""
    d, k = c.at("ck"), pl.col("k")
    kind = c.let(pl.when(k == 0).then(2).when(k == 1).then(4).otherwise(1))
    return _obj(
        [
            _F(
                "idPhone",
                _null_if(d.chance("c.id.null", 0.04), _jn(pl.col("i") * 4 + k + 2_200_000)),
                d.chance("c.id.omit", 0.02),
            ),
            _F("idMember", _jn(pl.col("id"))),
            _F("idContactType", _jn(kind)),
            _F(
                "contactType",
                _js(
                    pl.when(kind == 2)
                    .then(pl.lit("Celular"))
                    .when(kind == 4)
                    .then(pl.lit("E-mail"))
                    .otherwise(pl.lit("Telefone"))
                ),
            ),
            _F("ddi", pl.lit('"55"'), kind == 4),
            _F(
                "description",
                _js(
                    pl.when(kind == 2)
                    .then(pl.col("cell"))
                    .when(kind == 4)
                    .then(pl.col("email"))
                    .otherwise(pl.col("land"))
                ),
            ),
        ]
    )


def _membership(c: _Frame) -> pl.Expr:
    """A MemberMembership: consecutive plans from the register date, none starting after the run."""
    d = c.at("ck")
    plan = c.let(PLAN.pick(d, "ms.plan"), "plan")
    months = c.let(PLAN_MONTHS.at(plan))
    days = c.let(pl.when(months == 0).then(1).otherwise(months * 30 + months // 2), "days")
    span = days + pl.when(d.chance("ms.gap", 0.4)).then(d.between("ms.gap.d", 1, 90)).otherwise(0)
    c.let(pl.col("reg_day") + span.cum_sum().over("i") - span, "start")
    c.filter(pl.col("start") <= pl.col("end_day"))
    c.let(pl.col("k") == pl.col("k").max().over("i"), "last")
    c.let(pl.len().over("i"), "n")
    c.filter(~(pl.col("drop_first") & (pl.col("k") == 0) & (pl.col("n") >= 2)))
    start, end_day = pl.col("start"), pl.col("end_day")
    end = c.let(start + days - 1)
    late_cancel = pl.col("changed") & pl.col("last") & d.chance("ms.cancel.late", 0.3)
    cancel_day = c.let(
        pl.when(late_cancel)
        .then(end_day - 1)
        .when(d.chance("ms.cancel", 0.08))
        .then(start + d.below("ms.cancel.d", days))
    )
    cancel_day = c.let(pl.when(cancel_day <= end_day).then(cancel_day))
    active = c.let(cancel_day.is_null() & (end >= end_day), "active")
    status = (
        pl.when(cancel_day.is_not_null())
        .then(pl.lit("canceled"))
        .when(active)
        .then(pl.lit("active"))
        .otherwise(pl.lit("expired"))
    )
    monthly = c.let(PLAN_CENTS.at(plan))
    annual = c.let(months == 12)
    sale_at = c.let(start * 86_400 - d.below("ms.sale.before", 2 * 86_400) + 9 * 3600)
    signed = c.let(d.chance("ms.signed", 0.7))
    freeze_start = c.let((start + d.below("ms.frz.d", days)) * 86_400)
    suspension_days = c.let(pl.when(annual).then(30).otherwise(0))
    freeze = _obj(
        [
            _F("idFreeze", _jn(pl.col("ck") + 700_000)),
            _F("idEmployee", _jn(d.below("ms.frz.emp", _EMPLOYEES) + _EMPLOYEE_ID0)),
            _F("daysFreeze", _jn(d.between("ms.frz.days", 7, 30))),
            _F("startSuspend", _day(freeze_start)),
            _F("endSuspend", _day(freeze_start + 15 * 86_400)),
            _F("unlockDate", _null_if(d.chance("ms.frz.unlock", 0.6), _ts(d, "ms.frz.u", freeze_start + 16 * 86_400))),
            _F("reason", _js(FREEZE_REASON.pick(d, "ms.frz.reason"))),
            _F("flUseMembershipFreezeDays", _jb(d.chance("ms.frz.fl", 0.8))),
        ]
    )
    session = _obj(
        [
            _F("idSession", _jn(pl.col("ck") + 900_000)),
            _F("expirationDate", _day(end * 86_400)),
            _F("flBonusSession", pl.lit("true")),
        ]
    )
    next_charge = (end_day + 30 - (end_day - start) % 30) * 86_400
    return _obj(
        [
            _F("idMember", _jn(pl.col("id"))),
            _F("idMembership", _jn(PLAN_ID.at(plan))),
            _F("idMemberMembership", _jn(pl.col("ck") + 5_000_000)),
            _F("idMemberMembershipRenewed", _null_if(pl.col("k") == 0, _jn(pl.col("ck") + 5_000_000 - 1))),
            _F("numMembers", _jn(PLAN_PEOPLE.at(plan))),
            _F("startDate", _day(start * 86_400)),
            _F("endDate", _day(end * 86_400, "23:59:59")),
            _F("name", _js(PLAN_NAME.at(plan))),
            _F("cancelDate", _day(cancel_day * 86_400)),
            _F("membershipStatus", _js(status)),
            _F("valueNextMonth", _null_if(~active, _money(c, monthly))),
            _F("originalValue", _money(c, monthly + 2000)),
            _F("nextCharge", _null_if(~active | annual, _day(next_charge))),
            _F("idSale", _jn(_SALE_ID0 + d.below("ms.sale", 12_000_000))),
            _F("saleDate", _ts(d, "ms.sale.ts", sale_at)),
            _F("idCategoryMembership", _jn(PLAN_CATEGORY.at(plan))),
            _F("numberSuspensionTimes", _jn(d.below("ms.susp.n", 3))),
            _F("maxSuspensionDays", _jn(suspension_days)),
            _F("minimumSuspensionDays", _jn(pl.when(annual).then(7).otherwise(0))),
            _F("disponibleSuspensionDays", _jn(suspension_days)),
            _F("disponibleSuspensionTimes", _jn(pl.when(annual).then(2).otherwise(0))),
            _F("daysLeftToFreeze", _jn(suspension_days)),
            _F("bioimpedanceAmount", _jn(d.below("ms.bio", 3))),
            _F(
                "weeklyLimit",
                _null_if(d.chance("ms.wl", 0.9), _jn(d.between("ms.wl.n", 2, 5))),
                d.chance("ms.wl.o", 0.2),
            ),
            _F("concludedSessions", pl.lit("0")),
            _F("pendingSessions", pl.lit("0")),
            _F("scheduledSessions", pl.lit("0")),
            _F("pendingRepositions", pl.lit("0")),
            _F("repositionsTotal", pl.lit("0")),
            _F("bonusSessions", pl.lit("0")),
            _F("loyaltyEndDate", _null_if(~annual, _day(end * 86_400))),
            _F("assessmentEndDate", _null_if(d.chance("ms.assess", 0.9), _day((start + 90) * 86_400))),
            _F("acceptanceDate", _null_if(~signed, _ts(d, "ms.accept", sale_at + 120))),
            _F("contractPrinting", _null_if(d.chance("ms.contract", 0.85), pl.lit('"Contrato padrão SKYFIT v3"'))),
            _F("flRenewed", _jb(~pl.col("last"))),
            _F("flAllowLocker", _jb(d.chance("ms.locker", 0.1))),
            _F("flAdditionalMembership", _jb(d.chance("ms.additional", 0.03))),
            _F("signedTerms", _jb(signed)),
            _F("limitless", _jb(d.chance("ms.limitless", 0.9))),
            _F("freezes", pl.when(d.chance("ms.frz", 0.05)).then(_cat("[", freeze, "]")).otherwise(pl.lit("[]"))),
            _F("sessions", pl.when(d.chance("ms.ses", 0.03)).then(_cat("[", session, "]")).otherwise(pl.lit("[]"))),
        ]
    )


def _sales(f: _Frame, ctx: _Context) -> pl.LazyFrame:
    """Sales with saleItens[] and receivables[]; receivables get paid and sales cancelled as runs go by."""
    d, dv = f.at("i"), f.at("iv")
    lead = f.let(d.chance("s.lead", 0.06))
    f.let(d.below("s.member", ctx.members), "m")
    f.let(d.below("s.prospect", ctx.prospects), "p")
    buyer = pl.when(lead).then(_person(f, "prospect", "p").full).otherwise(_person(f, "member", "m").full)
    home = pl.when(lead).then(_home_branch(f, "prospect", "p")).otherwise(_home_branch(f, "member", "m"))
    removal = pl.col("t") + d.between("s.removal.d", 3600, 30 * 86_400)
    f.let(pl.col("i") + _SALE_ID0, "id")
    f.let(pl.when(~lead).then(pl.col("m") + _MEMBER_ID0), "member")
    f.let(pl.when(lead).then(pl.col("p") + _PROSPECT_ID0), "prospect")
    f.let(buyer, "buyer")
    f.let(pl.when(d.chance("s.away", 0.1)).then(d.below("s.br", len(BRANCH_NAME))).otherwise(home), "br")
    pay = f.let(PAYMENT.pick(d, "s.pay"), "pay")
    f.let(pl.when(d.chance("s.removed", 0.03) & (removal <= pl.col("ver_end"))).then(removal), "removed_at")
    f.let(pl.when(PAYMENT_SPLIT.at(pay)).then(INSTALLMENTS.pick(d, "s.inst")).otherwise(1), "inst")

    f.materialize()
    n_items = _Pool((1, 2, 3), (65, 25, 10)).pick(d, "s.items")
    items = _children(
        f, n_items, ("i", "t"), _sale_item, total=pl.col("cents").sum(), first_item=pl.col("name").first()
    )
    items_json = _attach(f, items, "saleItens")
    f.materialize()
    receivables = _children(
        f,
        pl.col("inst"),
        (
            "i",
            "id",
            "t",
            "ver_end",
            "total",
            "first_item",
            "inst",
            "pay",
            "removed_at",
            "member",
            "prospect",
            "buyer",
            "br",
        ),
        _receivable,
    )
    receivables_json = _attach(f, receivables, "receivables")
    removed = f.let(pl.col("removed_at").is_not_null())
    items_mode, recv_mode = f.let(d.below("s.items.mode", 100)), f.let(d.below("s.recv.mode", 100))
    partner = f.let(d.chance("s.partner", 0.05))
    f.let(d.below("s.emp", _EMPLOYEES), "emp")
    f.let(pl.when(d.chance("s.seller", 0.9)).then(pl.col("emp")).otherwise(d.below("s.seller.e", _EMPLOYEES)), "seller")
    seller_id, seller_name = _employee(f, "seller")
    fields = [
        _F("idSale", _jn(pl.col("id"))),
        _F("idMember", _jn(pl.col("member"))),
        _F("idProspect", _jn(pl.col("prospect"))),
        _F("idEmployee", _jn(pl.col("emp") + _EMPLOYEE_ID0)),
        _F("idEmployeeSale", seller_id),
        _F("nameEmployeeSale", seller_name),
        _F("idPersonal", pl.lit(None, dtype=pl.String)),
        _F("saleDate", _ts(d, "s.date", pl.col("t"))),
        _F("saleDateServer", _ts(d, "s.server", pl.col("t") - _UTC_OFFSET + d.below("s.server.d", 6))),
        _F(
            "updateDate",
            _ts(
                dv,
                "s.upd",
                pl.col("ver_end") - dv.below("s.upd.d", 3600).clip(upper_bound=pl.col("ver_end") - pl.col("t")),
            ),
        ),
        _F("removed", _jb(removed)),
        _F("removalDate", _null_if(~removed, _ts(d, "s.removal", pl.col("removed_at")))),
        _F("idEmployeeRemoval", _null_if(~removed, _jn(d.below("s.rem.emp", _EMPLOYEES) + _EMPLOYEE_ID0))),
        _F("idBranch", _jn(pl.col("br") + 1)),
        _F("saleSource", _jn(SALE_SOURCE.pick(d, "s.source"))),
        _F("observations", _null_if(d.chance("s.obs", 0.85), _js(OBSERVATION.pick(d, "s.obs.t")))),
        _F("corporatePartnershipName", _null_if(~partner, _js(PARTNERSHIP.pick(d, "s.partner.n")))),
        _F("coporatePartnershipId", _null_if(~partner, _jn(d.between("s.partner.id", 1, 4)))),
        _F("idSaleMigration", _null_if(d.chance("s.mig", 0.95), _js(_cat("VND", d.digits("s.mig.n", 8))))),
        _F("idSaleRecurrency", _null_if(d.chance("s.recur", 0.8), _jn(d.below("s.recur.n", 10**6) + 410_000))),
        _F(
            "saleItens",
            _null_if(items_mode < 2, pl.when(items_mode < 4).then(pl.lit("[]")).otherwise(items_json)),
            items_mode == 4,
        ),
        _F("receivables", _null_if(recv_mode < 1, receivables_json), (recv_mode >= 1) & (recv_mode < 3)),
    ]
    return _line(f, fields, d.chance("s.drop_nulls", 0.1))


def _sale_item(c: _Frame) -> pl.Expr:
    """A sale item: the plan first (mostly), then products such as the enrolment fee."""
    d, k = c.at("ck"), pl.col("k")
    is_plan = c.let((k == 0) & d.chance("si.plan", 0.92))
    plan, product = c.let(PLAN.pick(d, "si.plan.p")), c.let(PRODUCT.pick(d, "si.product"))
    qty = c.let(pl.when(~is_plan & d.chance("si.qty", 0.1)).then(2).otherwise(1))
    value = c.let(
        pl.when(is_plan)
        .then(PLAN_CENTS.at(plan) * PLAN_MONTHS.at(plan).clip(lower_bound=1))
        .otherwise(PRODUCT_CENTS.at(product) * qty)
    )
    discount = c.let(
        pl.when(d.chance("si.disc", 0.3)).then(value * d.between("si.disc.pct", 5, 25) // 100).otherwise(0)
    )
    net = c.let(value - discount, "cents")
    name = c.let(pl.when(is_plan).then(PLAN_NAME.at(plan)).otherwise(PRODUCT_NAME.at(product)), "name")
    product_id, service_id = c.let(PRODUCT_ID.at(product)), c.let(PRODUCT_SERVICE.at(product))
    partner = c.let(d.chance("si.partner", 0.04))
    return _obj(
        [
            _F("idSaleItem", _jn(pl.col("i") * 4 + k + 99_100_000)),
            _F("description", _js(name)),
            _F("item", _js(name)),
            _F("itemValue", _money(c, value)),
            _F("saleValue", _money(c, net)),
            _F("saleValueWithoutCreditValue", _money(c, net)),
            _F("quantity", _jn(qty)),
            _F("idMembership", _null_if(~is_plan, _jn(PLAN_ID.at(plan)))),
            _F("idMembershipRenewed", _null_if(~is_plan | d.chance("si.renewed", 0.7), _jn(PLAN_ID.at(plan)))),
            _F("idProduct", _null_if(is_plan | (product_id == 0), _jn(product_id))),
            _F("idService", _null_if(is_plan | (service_id == 0), _jn(service_id))),
            _F("discount", _money(c, discount)),
            _F("corporateDiscount", pl.lit("0")),
            _F("tax", pl.lit("0")),
            _F("membershipStartDate", _null_if(~is_plan, _day(pl.col("t") + d.below("si.start", 3) * 86_400))),
            _F("idMemberMembership", _null_if(~is_plan, _jn(5_000_000 + d.below("si.mm", 40_000_000)))),
            _F("valueNextMonth", _null_if(~is_plan, _money(c, PLAN_CENTS.at(plan)))),
            _F("numMembers", _jn(pl.when(is_plan).then(PLAN_PEOPLE.at(plan)).otherwise(1))),
            _F("voucher", _null_if(d.chance("si.voucher", 0.97), pl.lit('"VERAO10"'))),
            _F("accountingCode", _null_if(d.chance("si.acc", 0.8), pl.lit('"3.01.01"'))),
            _F("municipalServiceCode", _null_if(d.chance("si.msc", 0.8), pl.lit('"06.04"'))),
            _F("idSaleItemMigration", pl.lit(None, dtype=pl.String), d.chance("si.mig.o", 0.5)),
            _F("flReceiptOnly", pl.lit("false")),
            _F("flSwimming", _jb(d.chance("si.swim", 0.02))),
            _F("flAllowLocker", _jb(d.chance("si.locker", 0.05))),
            _F("coporatePartnershipId", _null_if(~partner, _jn(d.between("si.partner.id", 1, 4)))),
            _F("corporatePartnershipName", _null_if(~partner, _js(PARTNERSHIP.pick(d, "si.partner.n")))),
        ]
    )


def _receivable(c: _Frame) -> pl.Expr:
    """An installment; it is paid once the run's time passes its payment, some weeks late."""
    d, k, n = c.at("ck"), pl.col("k"), pl.col("inst")
    amount = c.let(pl.col("total") // n + pl.when(k == n - 1).then(pl.col("total") % n).otherwise(0))
    due = c.let((pl.col("t") // 86_400 + 30 * k) * 86_400)
    # a defaulter pays late, weeks after the due date: a later run sees it paid
    delay = (
        pl.when(d.chance("r.late", 0.1))
        .then(d.between("r.late.d", 5, 60) * 86_400)
        .otherwise(d.below("r.delay", 3 * 86_400))
    )
    paid_at = c.let(pl.max_horizontal(due + delay + 36_000, pl.col("t") + 40))
    removed = c.let(pl.col("removed_at").is_not_null())
    paid = c.let(~removed & (paid_at <= pl.col("ver_end")))
    status = c.let(pl.when(removed).then(3).when(paid).then(2).when(due < pl.col("ver_end")).then(4).otherwise(1))
    status_name = (
        pl.when(status == 3)
        .then(pl.lit("Canceled"))
        .when(status == 2)
        .then(pl.lit("Received"))
        .when(status == 4)
        .then(pl.lit("Overdue"))
        .otherwise(pl.lit("Opened"))
    )
    card = c.let(PAYMENT_CARD.at(pl.col("pay")))
    bank = _obj([_F("id", pl.lit("3")), _F("name", pl.lit('"Itaú Unibanco – conta movimento"'))])
    return _obj(
        [
            _F("idReceivable", _jn(pl.col("ck") + 77_000_000)),
            _F("description", _js(_cat(pl.col("first_item"), " ", _jn(k + 1), "/", _jn(n)))),
            _F("registrationDate", _ts(d, "r.reg", pl.col("t") + 20)),
            _F("dueDate", _day(due)),
            _F("receivingDate", _null_if(~paid, _ts(d, "r.recv", paid_at))),
            _F("competenceDate", _day(due)),
            _F("cancellationDate", _null_if(~removed, _ts(d, "r.cancel", pl.col("removed_at")))),
            _F(
                "updateDate",
                _ts(d, "r.upd", pl.max_horizontal(pl.col("t") + 20, pl.when(paid).then(paid_at), pl.col("removed_at"))),
            ),
            _F("chargeDate", _null_if(~card | d.chance("r.charge", 0.5), _day(due))),
            _F("ammount", _money(c, amount)),
            _F("ammountPaid", _money(c, pl.when(paid).then(amount).otherwise(0))),
            _F("fees", _money(c, pl.when(card).then(amount * 299 // 10_000).otherwise(0))),
            _F("status", _obj([_F("id", _jn(status)), _F("name", _js(status_name))])),
            _F("currentInstallment", _jn(k + 1)),
            _F("totalInstallments", _jn(n)),
            _F(
                "paymentType",
                _obj([_F("id", _jn(PAYMENT_ID.at(pl.col("pay")))), _F("name", _js(PAYMENT_NAME.at(pl.col("pay"))))]),
            ),
            _F("authorization", _null_if(~card, _js(d.digits("r.auth", 6)))),
            _F("tid", _null_if(~card, _js(d.digits("r.tid", 10)))),
            _F("nsu", _null_if(~card, _js(d.digits("r.nsu", 6)))),
            _F("cardAcquirer", _null_if(~card, _js(ACQUIRER.pick(d, "r.acq")))),
            _F("cardFlag", _null_if(~card, _js(CARD_FLAG.pick(d, "r.flag")))),
            _F("payerName", _js(pl.col("buyer"))),
            _F("idMemberPayer", _jn(pl.col("member"))),
            _F("idProspectPayer", _jn(pl.col("prospect"))),
            _F("idBranchMember", _jn(pl.col("br") + 1)),
            _F("idSale", _jn(pl.col("id"))),
            _F("saleDate", _ts(d, "r.sale", pl.col("t"))),
            _F("idReceivableFrom", pl.lit(None, dtype=pl.String)),
            _F("conciliated", _jb(paid & d.chance("r.conc", 0.6))),
            _F("cancellationDescription", _null_if(~removed, pl.lit('"Venda estornada"'))),
            _F("source", _js(pl.when(n > 1).then(pl.lit("Parcelamento")).otherwise(pl.lit("Venda")))),
            _F("bankAccount", _null_if(card, bank)),
            _F("invoiceDetails", pl.lit("[]")),
            _F("creditDetails", pl.lit("[]")),
        ]
    )


def _entries(f: _Frame, ctx: _Context) -> pl.LazyFrame:
    """Flat turnstile entries; 0.3% are tapped twice (the same line twice in a row)."""
    d, dv = f.at("i"), f.at("iv")
    who = d.below("e.who", 100)
    kind = f.let(pl.when(who < 93).then(0).when(who < 97).then(1).otherwise(2))  # member, prospect, staff
    f.let(d.below("e.member", ctx.members), "m")
    f.let(d.below("e.prospect", ctx.prospects), "p")
    f.let(d.below("e.emp", _EMPLOYEES), "e")
    home = (
        pl.when(kind == 0)
        .then(_home_branch(f, "member", "m"))
        .when(kind == 1)
        .then(_home_branch(f, "prospect", "p"))
        .otherwise(pl.col("e") % len(BRANCH_NAME))
    )
    branch = f.let(pl.when(d.chance("e.away", 0.15)).then(d.below("e.br", len(BRANCH_NAME))).otherwise(home))
    denied = f.let(d.chance("e.denied", 0.05))
    turn = (
        pl.when(pl.col("changed"))
        .then(pl.col("t") + dv.between("e.turn.late", 1, 90))
        .when(d.chance("e.turn.d", 0.2))
        .then(pl.col("t") + d.between("e.turn.s", 1, 5))
        .otherwise(pl.col("t"))
    )
    # 0 and null read the same in the reference's key recipe; some rows carry 0 instead of null
    zero = pl.when(d.chance("e.zero", 0.02)).then(pl.lit("0"))
    legacy = f.let(d.chance("e.legacy", 0.1))  # older pages, without idMigration and releasesByID
    fields = [
        _F("date", _ts(d, "e.date", pl.col("t"))),
        _F("dateTurn", _null_if(denied, _ts(d, "e.date", turn))),
        _F("timeZone", _null_if(d.chance("e.tz.null", 0.01), _js(BRANCH_TZ.at(branch)))),
        _F("idMember", pl.when(kind == 0).then(_jn(pl.col("m") + _MEMBER_ID0))),
        _F("nameMember", pl.when(kind == 0).then(_js(_person(f, "member", "m").full))),
        _F("idProspect", pl.when(kind == 1).then(_jn(pl.col("p") + _PROSPECT_ID0)).otherwise(zero)),
        _F("nameProspect", pl.when(kind == 1).then(_js(_person(f, "prospect", "p").full))),
        _F("idEmployee", pl.when(kind == 2).then(_jn(pl.col("e") + _EMPLOYEE_ID0)).otherwise(zero)),
        _F("nameEmployee", pl.when(kind == 2).then(_js(_person(f, "employee", "e").full))),
        _F("entryType", _js(pl.when(d.chance("e.out", 0.15)).then(pl.lit("Check-out")).otherwise(pl.lit("Check-in")))),
        _F("device", _js(DEVICE.pick(d, "e.device"))),
        _F(
            "releasesByID",
            pl.when(d.chance("e.release", 0.02)).then(_jn(d.below("e.rel", _EMPLOYEES) + _EMPLOYEE_ID0)),
            legacy,
        ),
        _F("idBranch", _jn(branch + 1)),
        _F("blockReason", pl.when(denied).then(_js(BLOCK_REASON.pick(dv, "e.block")))),
        _F("entryAction", _js(pl.when(denied).then(pl.lit("Denied")).otherwise(pl.lit("Allowed")))),
        _F("idMigration", pl.when(d.chance("e.mig", 0.03)).then(_js(_cat("ENT", d.digits("e.mig.n", 9)))), legacy),
    ]
    copies = 1 + d.chance("e.repeat", 0.003).cast(pl.Int64)
    line = _obj(fields)
    return f.flush().select(pl.col("i").repeat_by(copies), line.repeat_by(copies).alias("line")).explode("i", "line")


def _prospects(f: _Frame, ctx: _Context) -> pl.LazyFrame:
    """Prospects (leads); some convert to members in later runs (idMember and conversionDate set)."""
    d, dv = f.at("i"), f.at("iv")
    person = _person(f, "prospect", "i")
    branch = f.let(_home_branch(f, "prospect", "i"))
    # a quarter convert within 20 days of registering; of the rest, changed ones convert on the
    # day before the run that re-sends them (their earlier runs saw them unconverted)
    early = f.let(d.chance("p.conv", 0.25))
    conversion = f.let(
        pl.when(early)
        .then(pl.col("t") + d.between("p.conv.d", 3600, 20 * 86_400))
        .when(pl.col("changed") & d.chance("p.conv.late", 0.6))
        .then(pl.col("ver_end") - dv.below("p.conv.l", 86_400))
    )
    converted = f.let((conversion <= pl.col("ver_end")).fill_null(False))
    responsible = _obj(
        [
            _F("name", _js(_person(f, "responsible.p", "i").full)),
            _F("document", _cpf(d, "p.resp.cpf")),
            _F("financialResponsible", _jb(d.chance("p.resp.fin", 0.8))),
        ]
    )
    fields = [
        _F("idProspect", _jn(pl.col("i") + _PROSPECT_ID0)),
        _F("idBranch", _jn(branch + 1)),
        _F("branchName", _js(BRANCH_NAME.at(branch))),
        _F("firstName", _js(person.first)),
        _F("lastName", _null_if(d.chance("p.last.null", 0.05), _js(person.last))),
        _F("document", _cpf(d, "p.cpf")),
        _F("cellphone", _null_if(d.chance("p.cell.null", 0.1), _js(_phone(d, "p.cell", BRANCH_DDD.at(branch), True)))),
        _F("email", _null_if(d.chance("p.email.null", 0.3), _js(_email(d, "p.email", person)))),
        _F("gympassId", _null_if(d.chance("p.gympass", 0.95), _js(d.digits("p.gympass.n", 13)))),
        _F("registerDate", _ts(d, "p.reg", pl.col("t"))),
        _F("gender", _null_if(d.chance("p.gender.null", 0.3), _js(person.gender))),
        _F(
            "birthDate",
            _null_if(
                d.chance("p.birth.null", 0.4), _day(pl.col("t") - d.between("p.age", 16 * 365, 65 * 365) * 86_400)
            ),
        ),
        _F("signupType", _js(SIGNUP.pick(d, "p.signup"))),
        _F("mktChannel", _null_if(d.chance("p.channel.null", 0.2), _js(CHANNEL.pick(d, "p.channel")))),
        _F("conversionDate", _null_if(~converted, _ts(d, "p.conv.ts", conversion))),
        _F("idMember", _null_if(~converted, _jn(d.below("p.member", ctx.members) + _MEMBER_ID0))),
        _F("currentStep", _js(pl.when(converted).then(pl.lit("Matriculado")).otherwise(STEP.pick(dv, "p.step")))),
        *_address(d, branch),
        _F("responsible", _null_if(~d.chance("p.resp", 0.03), responsible), d.chance("p.resp.omit", 0.05)),
    ]
    return _line(f, fields, d.chance("p.drop_nulls", 0.1))


_BUILDERS: dict[str, Callable[[_Frame, _Context], pl.LazyFrame]] = {
    "members": _members,
    "sales": _sales,
    "entries": _entries,
    "prospects": _prospects,
}
