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
from urllib.parse import unquote

import fsspec

from .errors import (
    ConfigError,
    EvoFramesError,
    SourceError,
    TransientSourceError,
    redact,
    register_secret,
    url_password,
)

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


_AZURE_SCHEMES = ("az://", "abfs://", "abfss://")


def open_lake(lake: str, storage_options: Mapping[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem and root path of a lake URL.

    A password in the URL is a registered secret from here on (see :func:`~evo_frames.errors.redact`).
    An Azure lake URL never carries a credential: an account key as its password or a SAS token as
    its query is refused (exit 2) with where the credential goes instead.
    """
    password = url_password(lake)
    register_secret(password)
    query = lake.partition("?")[2] if lake.startswith(_AZURE_SCHEMES) else ""
    if query and not query.startswith("versionid="):
        register_secret(query)
        raise ConfigError(
            f"lake URL {shown(redact(lake))} carries a query string (a SAS token?); give the lake as "
            "az://container/path and a SAS token in AZURE_STORAGE_SAS_TOKEN with AZURE_STORAGE_ACCOUNT_NAME, or in "
            "AZURE_STORAGE_CONNECTION_STRING as its SharedAccessSignature"
        )
    if password and lake.startswith(_AZURE_SCHEMES):
        raise ConfigError(
            f"lake URL {shown(redact(lake))} carries a password (an account key?); give the lake as "
            "az://container/path and the key in AZURE_STORAGE_ACCOUNT_KEY with AZURE_STORAGE_ACCOUNT_NAME, or in "
            "AZURE_STORAGE_CONNECTION_STRING"
        )
    try:
        fs, root = _filesystem(lake, storage_options)
    except (ValueError, ImportError) as e:
        # a URL parser's message may quote a piece of an unencoded password ("Port could not be
        # cast to integer value as 'Zq7x'"): with a password in the URL it is not shown
        why = redact(str(e)) if not password or isinstance(e, ImportError) else _ENCODE_PASSWORD
        raise ConfigError(
            f"lake URL {shown(redact(lake))} cannot be opened: {shown(why)}; use a path, file://, az:// or abfs:// URL"
        ) from e
    return fs, root.rstrip("/")


_ENCODE_PASSWORD = (
    "it does not parse; percent-encode the password in it (/ → %2F, : → %3A, @ → %40, % → %25, space → %20, ' → %27)"
)


#: Azure's retries of a request that got no answer (refused, reset, DNS) or a 5xx: the blob
#: client's own ExponentialRetry waits 15 s, 18 s and 24 s (about a minute) before a wrong endpoint
#: fails; bounded to about 1 s and 3 s. A refused credential or a missing container or blob (4xx)
#: is never retried by the client, nor by evo-frames.
AZURE_RETRIES = 2
AZURE_BACKOFF = (1.0, 2.0, 0.5)  # first wait, base of the growing part, jitter (seconds)


def _filesystem(url: str, storage_options: Mapping[str, Any] | None) -> tuple[fsspec.AbstractFileSystem, str]:
    """``fsspec.core.url_to_fs`` with the Azure blob client's retries bounded (:data:`AZURE_RETRIES`)."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    config = getattr(getattr(fs, "service_client", None), "_config", None)
    policy = getattr(config, "retry_policy", None)
    if policy is not None and hasattr(policy, "initial_backoff"):
        # the pipeline and every container and blob client made from it share this policy object
        for name in ("total_retries", "connect_retries", "read_retries", "status_retries"):
            setattr(policy, name, min(getattr(policy, name, AZURE_RETRIES), AZURE_RETRIES))
        policy.initial_backoff, policy.increment_base, policy.random_jitter_range = AZURE_BACKOFF
    return fs, path


def azure_credential(fs: fsspec.AbstractFileSystem) -> tuple[str, str]:
    """``(account, kind of credential)`` of an Azure filesystem, never the credential itself.

    The kind is one of ``account key``, ``SAS token``, ``connection string with an account key``,
    ``connection string with a SAS token``, ``anonymous (connection string without a key or SAS
    token)``, ``anonymous``, or the class of a token credential (``DefaultAzureCredential``,
    ``ClientSecretCredential``).
    """
    client = getattr(fs, "service_client", None)
    account = getattr(client, "account_name", None) or getattr(fs, "account_name", None) or "?"
    text = getattr(fs, "connection_string", None)
    if text:
        parts = {k.strip().lower() for k, _, v in (p.partition("=") for p in text.split(";")) if v.strip()}
        if "accountkey" in parts:
            return account, "connection string with an account key"
        if "sharedaccesssignature" in parts:
            return account, "connection string with a SAS token"
        return account, "anonymous (connection string without a key or SAS token)"
    if getattr(fs, "credential", None) is not None:
        return account, type(fs.credential).__name__
    if getattr(fs, "account_key", None):
        return account, "account key"
    if getattr(fs, "sas_token", None):
        return account, "SAS token"
    return account, "anonymous"


def _check_azure_lake(fs: fsspec.AbstractFileSystem, top: str, lake: str) -> None:
    """Fail at once, naming account, container and credential, when the container or the lake's
    folder (root and prefix) does not exist: no entity could be found there."""
    import asyncio

    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    container = _container(fs, top)

    async def properties() -> None:
        async with fs.service_client.get_container_client(container) as client:
            await client.get_container_properties()

    try:
        # on the filesystem's own event loop (fsspec runs it in its IO thread), as its methods are
        asyncio.run_coroutine_threadsafe(properties(), fs.loop).result()
    except ResourceNotFoundError as e:
        raise SourceError(
            f"container {container} of lake {shown(redact(lake))} not found ({_where(fs, top)}); check the "
            "container in --lake"
            + (
                f", or, as anonymous access cannot see a private container: {_ANONYMOUS_HINT[2:]}"
                if _anonymous(fs)
                else ""
            )
        ) from e
    except HttpResponseError as e:
        if e.status_code not in (401, 403):
            raise
        # a SAS may list and read blobs without reading the container's properties: the listing decides
    if top != container and not fs.exists(top):
        raise SourceError(
            f"lake folder {shown(redact(full_url(fs, top, _scheme(lake))))} not found ({_where(fs, top)}); check "
            f"--lake and lake_prefix, or make sample data with: evo-frames synth --lake {shown(redact(lake))}"
        )


def _anonymous(fs: fsspec.AbstractFileSystem) -> bool:
    return azure_credential(fs)[1].startswith("anonymous")


def _is_azure(fs: fsspec.AbstractFileSystem) -> bool:
    return hasattr(fs, "service_client")


def _container(fs: fsspec.AbstractFileSystem, path: str) -> str:
    return fs.split_path(path)[0] if hasattr(fs, "split_path") else path.split("/", 1)[0]


def _where(fs: fsspec.AbstractFileSystem, path: str) -> str:
    account, kind = azure_credential(fs)
    return f"Azure account {account}, container {_container(fs, path)}, credential: {kind}"


_ANONYMOUS_HINT = (
    "; a private container needs a credential: AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME "
    "with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN"
)


def storage_failure(
    error: Exception, fs: fsspec.AbstractFileSystem, path: str, doing: str, scheme: str | None = None
) -> EvoFramesError:
    """The one-line error for a storage ``error`` while ``doing`` (``listing``, ``opening``) ``path``.

    Every failure of the lake's storage client maps here, for listing and for opening. On Azure
    the message names the account, the container and the kind of credential, never its value;
    what the service answered is given by its status and error code only (its text holds the
    request's URL and headers). A refused credential, a missing container or blob: exit 1, like a
    refused PostgreSQL password (exit 2 is for what evo-frames rejects before asking anyone).
    """
    url = shown(redact(full_url(fs, path, scheme)))
    if not _is_azure(fs):
        first = redact(str(error).strip().splitlines()[0]) if str(error).strip() else type(error).__name__
        return SourceError(f"cannot {doing.removesuffix('ing')} {url}: {shown(first)}")
    status = getattr(error, "status_code", None) or getattr(getattr(error, "response", None), "status_code", None)
    code = getattr(error, "error_code", None)
    code = getattr(code, "value", code)  # StorageErrorCode.AUTHORIZATION_FAILURE -> AuthorizationFailure
    names = {t.__name__ for t in type(error).__mro__}
    where = _where(fs, path)
    anonymous = _anonymous(fs)
    answer = " ".join(str(x) for x in (status, code) if x) or type(error).__name__
    if status in (401, 403) or "ClientAuthenticationError" in names:
        return SourceError(
            f"Azure refused the credential {doing} {url} ({where}): {answer}; check that it is current and may "
            f"list and read the container{_ANONYMOUS_HINT if anonymous else ''}"
        )
    if status == 404 or isinstance(error, FileNotFoundError) or "ResourceNotFoundError" in names:
        what = "container" if code == "ContainerNotFound" else "blob"
        return SourceError(
            f"{what} not found {doing} {url} ({where}): {answer}"
            + (f"; a private container looks missing to anonymous access{_ANONYMOUS_HINT}" if anonymous else "")
        )
    if names & {"ServiceRequestError", "ServiceResponseError"} or isinstance(error, ConnectionError | TimeoutError):
        first = redact(str(error).strip().splitlines()[0]) if str(error).strip() else type(error).__name__
        return SourceError(
            f"cannot reach Azure {doing} {url} ({where}) after {AZURE_RETRIES} retries: {shown(first)}; "
            "check the account name or endpoint and the network"
        )
    return SourceError(f"Azure failed {doing} {url} ({where}): {answer}")


def _is_http(fs: fsspec.AbstractFileSystem) -> bool:
    return bool({"http", "https"} & set([fs.protocol] if isinstance(fs.protocol, str) else fs.protocol))


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return proto in ("file", "local")


def full_url(fs: fsspec.AbstractFileSystem, path: str, scheme: str | None = None) -> str:
    """The path as stored in ``_source_file``: with the lake's own scheme, except for local files."""
    if _is_local(fs) or "://" in path:  # HTTP paths are whole URLs already
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
        if _is_azure(fs):
            _check_azure_lake(fs, f"{root}/{prefix.strip('/')}".rstrip("/"), lake)
        found: dict[str, dict[str, Any]] = {}
        if fs.exists(base):
            found = fs.find(base, detail=True)
        elif not local:
            _reachable(fs, root)
    except EvoFramesError:
        raise
    except Exception as e:  # fsspec backends raise their own types
        raise storage_failure(e, fs, base, "listing", _scheme(lake)) from e
    files: list[BronzeFile] = []
    problems: list[str] = []
    for path, info in found.items():
        if _is_http(fs):  # links of an index page are percent-encoded (entity%3Dentries)
            path = unquote(path)
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


def _reachable(fs: fsspec.AbstractFileSystem, root: str) -> None:
    """Raise what ``fs.exists`` (and HTTP's ``info``) swallow, such as a refused connection, so that an
    unreachable remote lake fails instead of listing as empty; a missing root is not an error."""
    with contextlib.suppress(FileNotFoundError):
        fs.ls(root, detail=False)


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


def _transient(e: BaseException) -> bool:
    return isinstance(e, ConnectionError | TimeoutError) or any(t.__name__ in _TRANSIENT_NAMES for t in type(e).__mro__)


@contextlib.contextmanager
def reading(path: str) -> Iterator[None]:
    """Turn network and storage hiccups while reading ``path`` into :class:`TransientSourceError`.

    Connection resets, timeouts and the Azure/aiohttp transport errors are retried with the
    batch; anything else (a missing file, bad credentials) is permanent.
    """
    try:
        yield
    except Exception as e:
        if _transient(e):
            raise TransientSourceError(f"reading {path} failed: {e}; retrying") from e
        raise


def open_file(path: str, storage_options: Mapping[str, Any] | None = None) -> Any:
    """Open a bronze file for binary streaming reads.

    Blobs uploaded with ``Content-Encoding: gzip`` are refused: adlfs would hand back silently
    truncated, already-decompressed bytes for them.
    """
    fs, p = _filesystem(path, storage_options)
    try:
        info = fs.info(p)
    except FileNotFoundError as e:
        raise SourceError(
            f"bronze file {shown(path)} disappeared after listing; rerun to pick up the current files"
            + (f" ({_where(fs, p)})" if _is_azure(fs) else "")
        ) from e
    except Exception as e:
        if _transient(e):  # reading() retries it with the batch
            raise
        raise storage_failure(e, fs, p, "opening", _scheme(path)) from e
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
