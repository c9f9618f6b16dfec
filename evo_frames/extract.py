"""``evo-frames extract``: the EVO API into bronze, window by window, never skipping data silently.

The engine names no entity: each transform module declares its :class:`~evo_frames.spec.Endpoint`
(path, window field and length, page size, part size, part prefix, extra parameters) as
``Entity.api``. A run of one entity:

1. cuts ``--start`` .. ``--end`` into windows (:func:`windows`);
2. fetches the windows concurrently (``extract_workers`` threads), every request through one
   shared :class:`RateLimiter` (``requests_per_minute``, or ``free_requests_per_minute`` inside
   ``free_hours`` of the API's zone);
3. pages each window with ``skip``/``take`` until a short page; a page that fails (429, 5xx,
   timeout, reset, a body that is not a JSON array or ``{"data": [...]}``) is retried with
   exponential backoff and full jitter, never sooner than ``Retry-After``, at most
   ``request_attempts`` times; after that its window fails, and nothing of it is skipped;
4. writes the records, as sent (UTF-8 JSON, one per line, no envelope, no trailing newline,
   gzip), in parts of ``part_size`` records, each written as ``<name>.inprogress`` and renamed
   when complete::

       <lake>/<prefix>/entity=<e>/ingestion_date=YYYY-MM-DD/run_id=YYYYMMDDTHHMMSSZ/<window>part-NNNNN.jsonl.gz

5. keeps ``_manifest.json`` in the run folder up to date: the reference fields plus ``status`` of
   the run and of every window (``pending``, ``complete``, ``failed``), its records, parts and
   files, and the error of a failed window.

``ingestion_date`` is the UTC date the run started (the date of its ``run_id``), for every window,
so that a run, its manifest and its resumed windows stay in one folder. ``resume`` takes the
latest run of the entity with the same ``--start``/``--end`` whose manifest has windows that did
not complete, deletes whatever those windows wrote and fetches them again into the same run, so no
record is written twice.

Credentials come only from ``EVO_USERNAME`` and ``EVO_PASSWORD`` (HTTP Basic) and the base URL
from ``EVO_API_URL``; none of them is printed, logged or written to the lake.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import dataclasses
import datetime as dt
import email.utils
import gzip
import json
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import fsspec
import httpx

from .config import Settings, free_hours, storage_options
from .errors import ConfigError, EvoFramesError, SourceError, redact, register_secret
from .lake import IN_PROGRESS, full_url, open_lake
from .spec import Endpoint, Entity

log = logging.getLogger("evo_frames")

ENV_URL, ENV_USERNAME, ENV_PASSWORD = "EVO_API_URL", "EVO_USERNAME", "EVO_PASSWORD"
#: the last 100 ns tick of a day (the API is .NET: DateTime counts 100 ns ticks)
END_OF_DAY = "T23:59:59.9999999"
MANIFEST = "_manifest.json"
GZIP_LEVEL = 6
PENDING, COMPLETE, FAILED = "pending", "complete", "failed"


class ApiError(SourceError):
    """A request to the EVO API failed for good: its window fails."""


class _Stopped(Exception):
    """The run was interrupted; windows not finished stay pending."""


@dataclasses.dataclass(frozen=True)
class Window:
    """Days ``start`` .. ``end`` (both included) of one request series; parts are named ``prefix``."""

    start: dt.date
    end: dt.date
    prefix: str

    @property
    def period(self) -> str:
        return f"{self.start.isoformat()} - {self.end.isoformat()}"


def _add_months(day: dt.date, months: int) -> dt.date:
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month0 + 1, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover - every month has 28 days


def windows(api: Endpoint, start: dt.date, end: dt.date) -> list[Window]:
    """The windows of ``start`` .. ``end``: ``api.months`` months or ``api.days`` days each, the last clipped.

    Each window ends the day before the next one starts, so together they cover every day once.

    >>> from evo_frames.spec import Endpoint
    >>> api = Endpoint("/x", "d", "s", "e", take=10, part_size=10, months=1)
    >>> [w.period for w in windows(api, dt.date(2024, 1, 15), dt.date(2024, 3, 1))]
    ['2024-01-15 - 2024-02-14', '2024-02-15 - 2024-03-01']
    """
    if end < start:
        raise ConfigError(f"--end {end} is before --start {start}; give an end on or after the start")

    def start_of(k: int) -> dt.date:
        return _add_months(start, k * api.months) if api.months else start + dt.timedelta(days=k * api.days)

    out: list[Window] = []
    while (first := start_of(len(out))) <= end:
        last = min(start_of(len(out) + 1) - dt.timedelta(days=1), end)
        out.append(Window(first, last, first.strftime(api.prefix)))
    if len({w.prefix for w in out}) != len(out):
        raise ConfigError(
            f"endpoint {api.path}: part prefix {api.prefix!r} repeats across windows of {api.months or api.days} "
            f"{'months' if api.months else 'days'}; declare a prefix that includes the day (e.g. '%Y-%m-%d_')"
        )
    return out


@dataclasses.dataclass(frozen=True)
class Credentials:
    """Base URL and HTTP Basic credentials of the EVO API; ``repr`` shows neither user nor password."""

    url: str
    username: str = dataclasses.field(repr=False)
    password: str = dataclasses.field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        """Read ``EVO_API_URL``, ``EVO_USERNAME`` and ``EVO_PASSWORD``.

        Raises:
            ConfigError: one of them is missing or empty (the message names which).
        """
        env = os.environ if env is None else env
        missing = [n for n in (ENV_URL, ENV_USERNAME, ENV_PASSWORD) if not env.get(n)]
        if missing:
            raise ConfigError(
                f"environment variable {' and '.join(missing)} is not set; extract needs {ENV_URL} (e.g. "
                f"https://evo-integracao.w12app.com.br), {ENV_USERNAME} (the gym DNS) and {ENV_PASSWORD} "
                "(its secret key)"
            )
        return cls(env[ENV_URL].rstrip("/"), env[ENV_USERNAME], env[ENV_PASSWORD])

    def __post_init__(self) -> None:
        # redact() then removes the password and the Authorization token from every message, log
        # line and traceback of the process, not only from those passed through scrub()
        register_secret(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        register_secret(self.password)

    def scrub(self, text: str) -> str:
        """``text`` without the password, the Authorization token or a password in a URL.

        Our messages never contain the credentials; this is the safety net for an API that echoes
        them (:func:`~evo_frames.errors.redact`, with both registered as secrets: a password under
        6 characters is too common a string to replace without mangling the message, so only the
        token is).
        """
        return redact(text)


class RateLimiter:
    """Spaces requests of all threads evenly: at most ``per_minute`` a minute, never in bursts.

    Inside ``free`` (local hours ``(start, end)`` in ``zone``, end excluded; ``(22, 6)`` wraps
    midnight) the limit is ``free_per_minute``. :meth:`hold_until` pauses everyone, e.g. for a
    ``Retry-After``.
    """

    def __init__(
        self,
        per_minute: float,
        *,
        free: tuple[int, int] | None = None,
        free_per_minute: float | None = None,
        zone: str = "America/Sao_Paulo",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.per_minute = per_minute
        self.free = free
        self.free_per_minute = free_per_minute or per_minute
        self.zone = ZoneInfo(zone)
        self._clock, self._sleep, self._now = clock, sleep, now
        self._lock = threading.Lock()
        self._next = clock()

    def rate(self, moment: dt.datetime) -> float:
        """Requests per minute allowed at ``moment`` (an aware datetime).

        >>> lim = RateLimiter(40, free=(0, 5), free_per_minute=600)
        >>> utc = dt.datetime(2026, 1, 11, tzinfo=dt.UTC)
        >>> lim.rate(utc.replace(hour=4)), lim.rate(utc.replace(hour=9))  # 01:00 and 06:00 in Sao Paulo
        (600, 40)
        """
        if self.free is None:
            return self.per_minute
        hour = moment.astimezone(self.zone).hour
        a, b = self.free
        inside = a <= hour < b if a < b else hour >= a or hour < b
        return self.free_per_minute if inside else self.per_minute

    def acquire(self) -> None:
        """Wait for this thread's turn."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + 60.0 / self.rate(self._now())
        if slot > now:
            self._sleep(slot - now)

    def hold_until(self, moment: float) -> None:
        """No request starts before ``moment`` (on the limiter's clock)."""
        with self._lock:
            self._next = max(self._next, moment)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _records(response: httpx.Response) -> list[Any] | None:
    """The page's records: a bare JSON array or ``{"data": [...]}``; None for any other body."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        body = body["data"]
    return body if isinstance(body, list) else None


class Client:
    """GETs pages of the EVO API under the shared limiter, with bounded retries.

    Args:
        credentials: base URL and HTTP Basic credentials.
        limiter: the rate limiter every request waits for.
        timeout: seconds for connecting, reading and writing each request.
        attempts: tries per page; the last failure raises :class:`ApiError`.
        connections: HTTP connections kept open (one per worker).
        base_delay: first backoff ceiling in seconds; it doubles per attempt (full jitter).
        max_delay: backoff ceiling.
    """

    def __init__(
        self,
        credentials: Credentials,
        limiter: RateLimiter,
        *,
        timeout: float,
        attempts: int,
        connections: int,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.credentials = credentials
        self.limiter = limiter
        self.attempts = attempts
        self.base_delay, self.max_delay = base_delay, max_delay
        self.stop = stop or threading.Event()
        self.http = httpx.Client(
            base_url=credentials.url,
            auth=httpx.BasicAuth(credentials.username, credentials.password),
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"Accept": "application/json"},
        )

    def close(self) -> None:
        self.http.close()

    def page(self, path: str, params: Mapping[str, Any]) -> list[Any]:
        """One page of records.

        Raises:
            ApiError: a permanent HTTP error (401, 403, 404, other 4xx), or ``attempts`` failures.
        """
        what = f"GET {path}?" + "&".join(f"{k}={v}" for k, v in params.items())
        for attempt in range(1, self.attempts + 1):
            if self.stop.is_set():
                raise _Stopped()
            self.limiter.acquire()
            wait: float | None = None
            try:
                response = self.http.get(path, params=dict(params))
            except (httpx.TimeoutException, httpx.TransportError) as e:
                reason = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            else:
                code = response.status_code
                if code == 200:
                    records = _records(response)
                    if records is not None:
                        return records
                    reason = f"HTTP 200 with a body that is not a JSON array: {response.text[:120]!r}"
                elif code == 429 or code >= 500:
                    reason, wait = f"HTTP {code}", _retry_after(response)
                else:
                    hint = (
                        f"; check {ENV_USERNAME} and {ENV_PASSWORD}"
                        if code in (401, 403)
                        else "; check EVO_API_URL and the endpoint declared by the entity"
                    )
                    raise ApiError(self.credentials.scrub(f"{what}: HTTP {code} {response.text[:200]!r}{hint}"))
            if attempt == self.attempts:
                raise ApiError(self.credentials.scrub(f"{what}: failed {attempt} times, last: {reason}"))
            delay = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
            if wait is not None:
                self.limiter.hold_until(time.monotonic() + wait)
                delay = max(delay, wait)
            log.warning(
                "%s (attempt %d/%d), retrying in %.1fs", self.credentials.scrub(f"{what}: {reason}"), attempt,
                self.attempts, delay,
            )  # fmt: skip
            if self.stop.wait(delay):
                raise _Stopped()
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


# ---------------------------------------------------------------------------------------------
# progress: a live display on a terminal, one line per window elsewhere


class Progress:
    """One line per finished window on ``stream``; :class:`LiveProgress` draws a bar instead."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()
        self.began = time.perf_counter()
        self.pages = self.records = 0

    def start(self, entity: str, total: int, done: int) -> None:
        self.began, self.pages, self.records = time.perf_counter(), 0, 0

    def page(self, records: int) -> None:
        with self._lock:
            self.pages += 1
            self.records += records

    def rate(self) -> float:
        return self.records / max(time.perf_counter() - self.began, 1e-9)

    def window(self, entity: str, result: Mapping[str, Any]) -> None:
        head = f"{entity} {result['period']}: "
        if result["status"] == COMPLETE:
            line = (
                f"{head}{result['records']:,} records, {result['requests']} pages, {result['parts']} parts in "
                f"{result['elapsed']:.1f}s; run total {self.records:,} records, {self.rate():,.0f} records/s"
            )
        else:
            line = f"{head}FAILED after {result['records']:,} records: {result['error']}"
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """Nothing to tear down for plain lines."""


class LiveProgress(Progress):
    """A rich progress bar per entity: windows done, pages, records, records/s."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        super().__init__(stream)
        self.bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("windows, {task.fields[pages]} pages, {task.fields[records]} records, {task.fields[rate]}/s"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self.task: Any = None
        self.bar.start()

    def start(self, entity: str, total: int, done: int) -> None:
        super().start(entity, total, done)
        self.task = self.bar.add_task(entity, total=total, completed=done, pages=0, records=0, rate=0)

    def _refresh(self, advance: int = 0) -> None:
        self.bar.update(
            self.task, advance=advance, pages=f"{self.pages:,}", records=f"{self.records:,}", rate=f"{self.rate():,.0f}"
        )

    def page(self, records: int) -> None:
        super().page(records)
        self._refresh()

    def window(self, entity: str, result: Mapping[str, Any]) -> None:
        self._refresh(advance=1)
        if result["status"] != COMPLETE:
            self.bar.console.print(
                f"{entity} {result['period']}: FAILED: {result['error']}", markup=False, highlight=False
            )

    def close(self) -> None:
        self.bar.stop()


def progress_for(stream: TextIO) -> Progress:
    """A live display when ``stream`` is a terminal, plain lines otherwise."""
    return LiveProgress(stream) if stream.isatty() else Progress(stream)


# ---------------------------------------------------------------------------------------------
# runs


@dataclasses.dataclass(frozen=True)
class ExtractSummary:
    """What one ``extract`` of one entity did."""

    entity: str
    run_id: str
    run_dir: str
    windows: int
    complete: int
    redone: int
    failed: tuple[tuple[str, str], ...]  # (period, error)
    records: int
    parts: int
    requests: int
    seconds: float
    resumed: bool

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["failed"] = [{"period": p, "error": e} for p, e in self.failed]
        return d


def new_run_id(now: dt.datetime | None = None) -> str:
    """The run id of an extraction starting ``now`` (UTC ``YYYYMMDDTHHMMSSZ``)."""
    return f"{(now or dt.datetime.now(dt.UTC)):%Y%m%dT%H%M%SZ}"


class _Manifest:
    """The run's ``_manifest.json``: rewritten (to a temporary name, then renamed) on every change."""

    def __init__(self, fs: fsspec.AbstractFileSystem, run_dir: str, doc: dict[str, Any]) -> None:
        self.fs, self.run_dir, self.doc = fs, run_dir, doc
        self.lock = threading.Lock()

    def result(self, prefix: str) -> dict[str, Any]:
        return next(r for r in self.doc["results"] if r["prefix"] == prefix)

    def update(self, prefix: str | None = None, **fields: Any) -> None:
        with self.lock:
            target = self.doc if prefix is None else self.result(prefix)
            target.update(fields)
            results = self.doc["results"]
            self.doc.update(
                total_records=sum(r["records"] for r in results),
                total_parts=sum(r["parts"] for r in results),
                periods=len(results),
                errors=[f"{r['period']}: {r['error']}" for r in results if r["status"] == FAILED],
            )
            _put(self.fs, f"{self.run_dir}/{MANIFEST}", json.dumps(self.doc, ensure_ascii=False, indent=2).encode())


def _put(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` under a temporary name and rename it: readers never see half a file."""
    fs.pipe_file(path + IN_PROGRESS, data)
    fs.mv(path + IN_PROGRESS, path)


def _part_bytes(records: Iterable[Any]) -> bytes:
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    return gzip.compress(text.encode("utf-8"), compresslevel=GZIP_LEVEL, mtime=0)


def _find_incomplete(
    fs: fsspec.AbstractFileSystem, entity_dir: str, start: dt.date, end: dt.date
) -> tuple[str, dict[str, Any]] | None:
    """The latest run of the entity over ``start`` .. ``end`` with windows that did not complete."""
    found = sorted(fs.glob(f"{entity_dir}/ingestion_date=*/run_id=*/{MANIFEST}"), key=lambda p: p.split("/")[-2])
    for path in reversed(found):
        doc = json.loads(fs.cat_file(path))
        if (doc.get("start_date"), doc.get("end_date")) != (start.isoformat(), end.isoformat()):
            continue
        if any(r.get("status") != COMPLETE for r in doc.get("results", [])):
            return path.rsplit("/", 1)[0], doc
    return None


def extract_entity(
    entity: Entity,
    start: dt.date,
    end: dt.date,
    settings: Settings,
    *,
    credentials: Credentials,
    run_id: str,
    resume: bool = False,
    progress: Progress | None = None,
    base_delay: float = 1.0,
) -> ExtractSummary:
    """Extract one entity's windows of ``start`` .. ``end`` into the lake (see the module docstring).

    Args:
        entity: an entity that declares ``api``.
        start: first day (included).
        end: last day (included).
        settings: lake, prefix, rate limits, workers, timeouts and attempts.
        credentials: the API's URL and credentials.
        run_id: id of a new run; with ``resume`` the incomplete run found is continued instead.
        resume: redo the windows of the latest incomplete run over the same days that did not complete.
        progress: where to report pages and windows (default: plain lines on stderr).
        base_delay: first retry backoff ceiling, in seconds.

    Returns:
        The summary; windows that failed are listed in ``failed`` (the caller decides the exit).
    """
    api = entity.api
    if api is None:
        raise ConfigError(f"entity {entity.name} declares no API endpoint (Entity.api); it cannot be extracted")
    progress = progress or Progress(sys.stderr)
    began = time.perf_counter()
    fs, root = open_lake(settings.lake, storage_options(settings.lake))
    prefix = settings.lake_prefix.strip("/")
    entity_dir = f"{root}/{prefix}/entity={entity.name}" if prefix else f"{root}/entity={entity.name}"
    found = _find_incomplete(fs, entity_dir, start, end) if resume else None
    if resume and found is None:
        log.warning("no incomplete run of %s over %s .. %s under %s; nothing to resume", entity.name, start, end,
                    full_url(fs, entity_dir))  # fmt: skip
        return ExtractSummary(entity.name, "", "", 0, 0, 0, (), 0, 0, 0, time.perf_counter() - began, True)
    if found is not None:
        run_dir, doc = found
        run_id = doc["run_id"]
    else:
        run_dir = f"{entity_dir}/ingestion_date={run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}/run_id={run_id}"
        if fs.exists(run_dir):
            raise EvoFramesError(f"run folder {full_url(fs, run_dir)} exists already; start the extract again")
        doc = {
            "entity": entity.name, "mode": "full_parallel", "run_id": run_id, "start_date": start.isoformat(),
            "end_date": end.isoformat(), "workers": settings.extract_workers, "total_records": 0, "total_parts": 0,
            "total_elapsed_seconds": 0.0, "periods": 0, "status": "running", "endpoint": api.path,
            "params": dict(api.params), "errors": [],
            "results": [
                {"period": w.period, "window_start": w.start.isoformat(), "window_end": w.end.isoformat(),
                 "prefix": w.prefix, "status": PENDING, "records": 0, "parts": 0, "files": [], "requests": 0,
                 "elapsed": 0.0, "worker_id": None}
                for w in windows(api, start, end)
            ],
        }  # fmt: skip
        fs.makedirs(run_dir, exist_ok=True)
    manifest = _Manifest(fs, run_dir, doc)
    todo = [
        Window(dt.date.fromisoformat(r["window_start"]), dt.date.fromisoformat(r["window_end"]), r["prefix"])
        for r in doc["results"]
        if r["status"] != COMPLETE
    ]
    manifest.update(status="running")
    progress.start(entity.name, len(doc["results"]), len(doc["results"]) - len(todo))
    stop = threading.Event()
    limiter = RateLimiter(
        settings.requests_per_minute, free=free_hours(settings.free_hours),
        free_per_minute=settings.free_requests_per_minute, zone=settings.api_timezone,
    )  # fmt: skip
    client = Client(
        credentials, limiter, timeout=settings.request_timeout, attempts=settings.request_attempts,
        connections=settings.extract_workers, base_delay=base_delay, stop=stop,
    )  # fmt: skip
    workers = threading.local()
    counter = iter(range(1, 1 << 30))

    def fetch(window: Window) -> None:
        if not hasattr(workers, "id"):
            workers.id = next(counter)
        w0 = time.perf_counter()
        for stale in fs.glob(f"{run_dir}/{window.prefix}part-*"):
            fs.rm(stale)  # what an earlier attempt of this window wrote: fetched again below
        params: dict[str, Any] = {
            api.start_param: f"{window.start.isoformat()}T00:00:00",
            api.end_param: f"{window.end.isoformat()}{END_OF_DAY}",
            **dict(api.params),
        }
        state: dict[str, Any] = {"fetched": 0, "written": 0, "requests": 0, "files": [], "worker_id": workers.id}
        buffer: list[Any] = []

        def flush(records: list[Any]) -> None:
            name = f"{window.prefix}part-{len(state['files']) + 1:05d}.jsonl.gz"
            _put(fs, f"{run_dir}/{name}", _part_bytes(records))
            state["files"].append(name)
            state["written"] += len(records)

        ahead = concurrent.futures.ThreadPoolExecutor(settings.pages_in_flight, thread_name_prefix="extract-page")
        in_flight: collections.deque[tuple[int, concurrent.futures.Future[list[Any]]]] = collections.deque()

        asked = [0]  # the next skip to request

        def request() -> None:
            params_k = {**params, "skip": asked[0], "take": api.take}
            in_flight.append((asked[0], ahead.submit(client.page, api.path, params_k)))
            asked[0] += api.take

        try:
            # the first page alone (most windows of a small range are one page); after a full page,
            # up to pages_in_flight are requested ahead and taken in skip order. A short page ends
            # the window, and the pages requested past it must come back empty
            request()
            end_at: int | None = None
            while in_flight:
                skip, future = in_flight.popleft()
                page = future.result()
                state["requests"] += 1
                if end_at is not None:
                    if page:
                        raise ApiError(
                            f"GET {api.path} skip={skip} returned {len(page)} records after a short page at "
                            f"skip={end_at}: the window changed while it was paged; fetch it again with --resume"
                        )
                    continue
                if len(page) > api.take:
                    raise ApiError(
                        f"GET {api.path} skip={skip} take={api.take} returned {len(page)} records, more than asked; "
                        "paging would skip or repeat records. Check the take declared for the entity"
                    )
                buffer += page
                state["fetched"] += len(page)
                progress.page(len(page))
                while len(buffer) >= api.part_size:
                    flush(buffer[: api.part_size])
                    buffer = buffer[api.part_size :]
                if len(page) < api.take:
                    end_at = skip
                while end_at is None and len(in_flight) < settings.pages_in_flight:
                    request()
            if buffer:
                flush(buffer)
            ahead.shutdown(wait=True)
        except _Stopped:
            ahead.shutdown(wait=True, cancel_futures=True)
            manifest.update(window.prefix, status=PENDING, **_counts(state, w0))
            raise
        except Exception as e:
            ahead.shutdown(wait=True, cancel_futures=True)  # pages already sent run out their attempts
            error = credentials.scrub(str(e) if isinstance(e, EvoFramesError) else f"{type(e).__name__}: {e}")
            manifest.update(window.prefix, status=FAILED, error=error, partial_records=state["fetched"],
                            **_counts(state, w0))  # fmt: skip
        else:
            manifest.update(window.prefix, status=COMPLETE, error=None, **_counts(state, w0))
            manifest.result(window.prefix).pop("partial_records", None)
        progress.window(entity.name, manifest.result(window.prefix))

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=settings.extract_workers, thread_name_prefix="extract")
    try:
        futures = [pool.submit(fetch, w) for w in todo]
        for f in concurrent.futures.as_completed(futures):
            f.result()
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        manifest.update(status="interrupted")
        raise
    finally:
        pool.shutdown(wait=True)
        client.close()
    results = doc["results"]
    failed = tuple((r["period"], r["error"]) for r in results if r["status"] == FAILED)
    seconds = time.perf_counter() - began
    manifest.update(
        status=FAILED if failed else COMPLETE,
        total_elapsed_seconds=round(doc["total_elapsed_seconds"] + seconds, 2),
    )
    redo = {w.prefix for w in todo}
    return ExtractSummary(
        entity=entity.name, run_id=run_id, run_dir=full_url(fs, run_dir), windows=len(results),
        complete=sum(r["status"] == COMPLETE for r in results), redone=len(todo) if found is not None else 0,
        failed=failed, records=sum(r["records"] for r in results if r["prefix"] in redo),
        parts=sum(r["parts"] for r in results if r["prefix"] in redo),
        requests=sum(r["requests"] for r in results if r["prefix"] in redo), seconds=seconds,
        resumed=resume,
    )  # fmt: skip


def _counts(state: Mapping[str, Any], began: float) -> dict[str, Any]:
    """A window's manifest fields: ``records`` are those in its parts (of a failed window too)."""
    return {
        "records": state["written"],
        "parts": len(state["files"]),
        "files": list(state["files"]),
        "requests": state["requests"],
        "elapsed": round(time.perf_counter() - began, 2),
        "worker_id": state["worker_id"],
    }
