"""A fake EVO API on 127.0.0.1: pages over generated records, filters by window, injects faults.

It serves every entity that declares ``Entity.api``, at that endpoint: records whose
``window_field`` lies within ``[start_param, end_param]`` (both included, compared to the
microsecond), in window-field order, ``skip``/``take`` at a time, as a bare JSON array (or
``{"data": [...]}`` for the paths in ``envelope``). It checks HTTP Basic credentials (401) and
``take`` against the declared maximum (400). :class:`Fault` rules answer chosen requests with an
error status (optionally ``Retry-After``), a delay, or a dropped connection; every request is
logged with its arrival time on ``time.monotonic()``.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import datetime as dt
import gzip
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from evo_frames.spec import Endpoint
from evo_frames.synth import generate


def instant(text: str) -> dt.datetime | None:
    """An EVO timestamp (up to 7 fraction digits, no offset) to the microsecond, or None."""
    if not isinstance(text, str):
        return None
    head, _, frac = text.partition(".")
    try:
        return dt.datetime.fromisoformat(f"{head}.{frac[:6]}" if frac else head)
    except ValueError:
        return None


def synth_records(folder: Path, entity: str, records: int, seed: int = 0) -> list[dict[str, Any]]:
    """One generated run of ``entity``, as the API would send it (one dict per bronze line)."""
    generate(str(folder), entity, records, seed=seed, runs=1)
    out: list[dict[str, Any]] = []
    for part in sorted(folder.rglob(f"entity={entity}/**/*.jsonl.gz")):
        out += [json.loads(line) for line in gzip.decompress(part.read_bytes()).decode().split("\n") if line]
    return out


@dataclasses.dataclass
class Fault:
    """Answer requests that ``match`` with ``status`` (None: the normal answer) after ``delay`` s.

    ``times`` is how many requests it still affects (None: until :meth:`heal`); ``drop`` closes
    the connection without an answer; ``body`` replaces the body of a 200 answer.
    """

    match: Callable[[str, dict[str, str]], bool]
    status: int | None = 500
    times: int | None = 1
    retry_after: float | None = None
    delay: float = 0.0
    drop: bool = False
    body: Any = None

    def heal(self) -> None:
        self.times = 0


@dataclasses.dataclass(frozen=True)
class Hit:
    at: float
    path: str
    params: dict[str, str]
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up on a slow answer is expected here; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeEvo:
    """The server; use as a context manager. ``url`` is its base URL."""

    def __init__(
        self,
        endpoints: dict[str, Endpoint],
        records: dict[str, list[dict[str, Any]]],
        *,
        username: str,
        password: str,
        envelope: tuple[str, ...] = (),
    ) -> None:
        self.endpoints = {api.path: api for api in endpoints.values()}
        self.served = {
            name: [r for r in rows if instant(r.get(endpoints[name].window_field)) is not None]
            for name, rows in records.items()
        }
        # records of each path in window-field order, with their instants, for bisecting
        self._index: dict[str, tuple[list[dt.datetime], list[dict[str, Any]]]] = {}
        for name, rows in self.served.items():
            pairs = sorted(((instant(r[endpoints[name].window_field]), r) for r in rows), key=lambda p: p[0])
            self._index[endpoints[name].path] = ([t for t, _ in pairs], [r for _, r in pairs])
        self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.envelope = envelope
        self.faults: list[Fault] = []
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeEvo:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def hits_of(self, path: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if path is None or h.path == path]

    def _fault(self, path: str, params: dict[str, str]) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.times != 0 and fault.match(path, params):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def answer(self, path: str, params: dict[str, str], auth: str | None) -> tuple[int, bytes, dict[str, str]]:
        api = self.endpoints.get(path)
        if auth != self.auth:
            return 401, b'{"message":"unauthorized"}', {}
        if api is None:
            return 404, b'{"message":"not found"}', {}
        try:
            skip, take = int(params["skip"]), int(params["take"])
            lo, hi = instant(params[api.start_param]), instant(params[api.end_param])
        except (KeyError, ValueError):
            return 400, b'{"message":"bad paging or window parameters"}', {}
        if take > api.take or lo is None or hi is None:
            return 400, b'{"message":"take above the maximum or bad window"}', {}
        times, ordered = self._index[path]
        chosen = ordered[bisect.bisect_left(times, lo) : bisect.bisect_right(times, hi)]
        page: Any = chosen[skip : skip + take]
        if path in self.envelope:
            page = {"data": page}
        return 200, json.dumps(page, ensure_ascii=False).encode(), {}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                at = time.monotonic()
                url = urlsplit(self.path)
                params = dict(parse_qsl(url.query, keep_blank_values=True))
                fault = fake._fault(url.path, params)
                if fault is not None and fault.status is not None:
                    status, body, headers = fault.status, b'{"message":"injected"}', {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = f"{fault.retry_after:g}"
                else:
                    status, body, headers = fake.answer(url.path, params, self.headers.get("Authorization"))
                    if fault is not None and fault.body is not None:
                        body = json.dumps(fault.body).encode()
                with fake._lock:
                    fake.hits.append(Hit(at, url.path, params, 0 if fault is not None and fault.drop else status))
                if fault is not None and fault.delay:
                    time.sleep(fault.delay)
                if fault is not None and fault.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                """Quiet: the test reads ``hits`` instead."""

        return Handler


def bronze_records(lake: Path, entity: str) -> Iterator[dict[str, Any]]:
    """Every record in the entity's bronze parts under ``lake``."""
    for part in sorted(lake.rglob(f"entity={entity}/**/*.jsonl.gz")):
        text = gzip.decompress(part.read_bytes()).decode("utf-8")
        assert not text.endswith("\n"), part
        yield from (json.loads(line) for line in text.split("\n") if line)
