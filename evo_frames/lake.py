"""The bronze lake: find files through fsspec and parse their layout.

Layout (reference §0)::

    <lake>/<prefix>/entity=<e>/ingestion_date=YYYY-MM-DD/run_id=YYYYMMDDTHHMMSSZ/<window>part-NNNNN.jsonl.gz

Any fsspec URL works: a plain path, ``file:///abs``, ``memory://``, ``az://container`` or
``abfs://container@account.dfs.core.windows.net``. A file under ``entity=<e>`` that does not follow
the layout is reported as a problem, never silently skipped; ``_manifest.json`` files of the
extractor and the ``*.inprogress`` files it is still writing are expected and ignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec

from .errors import ConfigError, SourceError, TransientSourceError

_SEGMENT = re.compile(
    r"entity=(?P<entity>[a-z_]+)/ingestion_date=(?P<date>\d{4}-\d{2}-\d{2})/run_id=(?P<run>\d{8}T\d{6}Z)/"
    r"(?P<name>(?:\d{4}-\d{2}(?:-\d{2})?_)?part-\d{5}\.jsonl\.gz)$"
)
_IGNORED = ("_manifest.json",)
#: suffix of a file ``extract`` is still writing; renamed to its final name once complete
IN_PROGRESS = ".inprogress"


@dataclass(frozen=True, order=True)
class BronzeFile:
    """One bronze part file. Sorts by run, then path: the latest-wins order."""

    run_id: str
    path: str
    entity: str
    ingestion_date: dt.date
    size: int
    etag: str


def parse_path(path: str) -> tuple[str, dt.date, str] | None:
    """``(entity, ingestion_date, run_id)`` of a layout path, or None if it does not follow it.

    >>> run = "entity=entries/ingestion_date=2026-01-11/run_id=20260111T031522Z"
    >>> parse_path(f"lake/bronze/evo/{run}/2024-03-04_part-00012.jsonl.gz")
    ('entries', datetime.date(2026, 1, 11), '20260111T031522Z')
    """
    m = _SEGMENT.search(path)
    if m is None:
        return None
    try:
        day = dt.date.fromisoformat(m["date"])
        dt.datetime.strptime(m["run"], "%Y%m%dT%H%M%SZ")
    except ValueError:
        return None
    return m["entity"], day, m["run"]


def open_lake(lake: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of a lake URL."""
    try:
        fs, root = fsspec.core.url_to_fs(lake, **(storage_options or {}))
    except (ValueError, ImportError) as e:
        raise ConfigError(f"lake URL {lake!r} cannot be opened: {e}; use a path, file://, az:// or abfs:// URL") from e
    return fs, root.rstrip("/")


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return proto in ("file", "local")


def full_url(fs: fsspec.AbstractFileSystem, path: str, scheme: str | None = None) -> str:
    """The path as stored in ``_source_file``: with the lake's own scheme, except for local files."""
    if _is_local(fs):
        return path
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return f"{scheme or proto}://{path}"


#: C0 and C1 control characters and the Unicode line and paragraph separators
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``), for a message: a file name
    can then never break or forge a log line.

    >>> shown("part-00001\\n2026-01-01 ERROR forged.jsonl.gz")
    'part-00001\\\\n2026-01-01 ERROR forged.jsonl.gz'
    """
    return _CONTROL.sub(_escape, text)


def _escape(m: re.Match[str]) -> str:
    char = m[0]
    if char in "\n\r\t":
        return repr(char)[1:-1]
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def _scheme(lake: str) -> str | None:
    return lake.split("://", 1)[0] if "://" in lake else None


def list_files(
    lake: str,
    entity: str,
    *,
    prefix: str = "bronze/evo",
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[list[BronzeFile], list[str]]:
    """Every bronze file of ``entity`` in the lake, and the paths that break the layout.

    A local lake's root is resolved (``..``, a trailing slash, symbolic links), so a file has one
    path however the root is spelled. A symbolic link inside the lake that leads outside it is
    not followed: it is reported as a problem. Problems escape control characters in names.

    Raises:
        SourceError: the lake cannot be listed (missing credentials, network).
    """
    fs, root = open_lake(lake, storage_options)
    local = _is_local(fs)
    if local:
        root = os.path.realpath(root)
    base = f"{root}/{prefix.strip('/')}/entity={entity}" if prefix.strip("/") else f"{root}/entity={entity}"
    try:
        found: dict[str, dict[str, Any]] = fs.find(base, detail=True) if fs.exists(base) else {}
    except Exception as e:  # fsspec backends raise their own types
        raise SourceError(f"cannot list lake folder {shown(full_url(fs, base, _scheme(lake)))}: {e}") from e
    files: list[BronzeFile] = []
    problems: list[str] = []
    for path, info in found.items():
        if path.rsplit("/", 1)[-1] in _IGNORED or path.endswith(IN_PROGRESS):
            continue
        if local and info.get("islink"):
            target = os.path.realpath(path)
            if os.path.commonpath([target, root]) != root:
                problems.append(
                    f"{shown(path)}: a symbolic link to {shown(target)}, outside the lake {shown(root)}; not followed"
                )
                continue
        parsed = parse_path(path)
        if parsed is None or parsed[0] != entity:
            problems.append(
                f"{shown(full_url(fs, path, _scheme(lake)))}: does not follow entity=<e>/ingestion_date=YYYY-MM-DD/"
                "run_id=YYYYMMDDTHHMMSSZ/[window_]part-NNNNN.jsonl.gz; not loaded"
            )
            continue
        etag = info.get("etag") or info.get("ETag") or f"mtime:{info.get('mtime', info.get('last_modified', ''))}"
        files.append(
            BronzeFile(
                run_id=parsed[2],
                path=full_url(fs, path, _scheme(lake)),
                entity=entity,
                ingestion_date=parsed[1],
                size=int(info.get("size") or 0),
                etag=str(etag).strip('"'),
            )
        )
    return sorted(files), sorted(problems)


def matches(file: BronzeFile, run_id: str | None = None, since: dt.date | None = None) -> bool:
    """Whether ``file`` is of run ``run_id`` and ingested on or after ``since`` (None: any)."""
    return (run_id is None or file.run_id == run_id) and (since is None or file.ingestion_date >= since)


def nearest_runs(files: Iterable[BronzeFile], run_id: str | None = None, n: int = 3) -> list[str]:
    """The ``n`` run ids of ``files`` closest in time to ``run_id`` (without one, or if it is no
    run id: the latest), in order.

    >>> f = [BronzeFile(r, "p", "e", dt.date(2026, 1, 1), 1, "x") for r in ("20260111T031522Z", "20260118T031522Z")]
    >>> nearest_runs(f, "20260117T000000Z"), nearest_runs(f)
    (['20260118T031522Z', '20260111T031522Z'], ['20260118T031522Z', '20260111T031522Z'])
    """
    runs = sorted({f.run_id for f in files}, reverse=True)
    try:
        asked = dt.datetime.strptime(run_id or "", "%Y%m%dT%H%M%SZ")
    except ValueError:
        return runs[:n]
    return sorted(runs, key=lambda r: abs(dt.datetime.strptime(r, "%Y%m%dT%H%M%SZ") - asked))[:n]


def select_files(
    files: Iterable[BronzeFile],
    *,
    loaded: Mapping[str, tuple[int, str]],
    run_id: str | None = None,
    since: dt.date | None = None,
    reload: bool = False,
) -> tuple[list[BronzeFile], int]:
    """The files to load, and how many were skipped as already loaded.

    Args:
        files: candidates, as listed.
        loaded: ``path -> (size, etag)`` from the target's files manifest.
        run_id: only this run.
        since: only files with ``ingestion_date >= since``.
        reload: load even files the manifest already has (``--full-refresh``).
    """
    chosen, skipped = [], 0
    for f in sorted(files):
        if not matches(f, run_id, since):
            continue
        if not reload and loaded.get(f.path) == (f.size, f.etag):
            skipped += 1
            continue
        chosen.append(f)
    return chosen, skipped


#: errors of the storage clients that a retry may get past
_TRANSIENT_NAMES = frozenset(
    {"ServiceRequestError", "ServiceResponseError", "ClientConnectionError", "ServerDisconnectedError",
     "ClientPayloadError", "ServerTimeoutError"}
)  # fmt: skip


@contextlib.contextmanager
def reading(path: str) -> Iterator[None]:
    """Turn network and storage hiccups while reading ``path`` into :class:`TransientSourceError`.

    Connection resets, timeouts and the Azure/aiohttp transport errors are retried with the
    batch; anything else (a missing file, bad credentials) is permanent.
    """
    try:
        yield
    except Exception as e:
        transient = isinstance(e, ConnectionError | TimeoutError) or any(
            t.__name__ in _TRANSIENT_NAMES for t in type(e).__mro__
        )
        if transient:
            raise TransientSourceError(f"reading {path} failed: {e}; retrying") from e
        raise


def open_file(path: str, storage_options: Mapping[str, Any] | None = None) -> Any:
    """Open a bronze file for binary streaming reads.

    Blobs uploaded with ``Content-Encoding: gzip`` are refused: adlfs would hand back silently
    truncated, already-decompressed bytes for them.
    """
    fs, p = fsspec.core.url_to_fs(path, **(storage_options or {}))
    try:
        info = fs.info(p)
    except FileNotFoundError as e:
        raise SourceError(f"bronze file {path} disappeared after listing; rerun to pick up the current files") from e
    settings = info.get("content_settings") or {}
    encoding = (
        settings.get("content_encoding")
        if isinstance(settings, Mapping)
        else getattr(settings, "content_encoding", None)
    )
    if encoding:
        raise SourceError(
            f"bronze file {path} has Content-Encoding {encoding!r}; the blob client would decompress and truncate "
            "it. Fix: re-upload it without Content-Encoding (e.g. azcopy --no-guess-mime-type, no --content-encoding)"
        )
    return fs.open(p, "rb", block_size=4 << 20)
