"""Settings: ``config.toml`` + environment + command-line flags, in that order of strength.

Precedence (strongest first): flag > environment variable > config file > built-in default.
The config file is ``--config PATH``, else ``$EVO_FRAMES_CONFIG``, else ``./config.toml`` when it
exists. Every setting has one environment variable, ``EVO_FRAMES_<NAME>`` (for example
``EVO_FRAMES_TARGET``, ``EVO_FRAMES_BATCH_SIZE``). Secrets never live in the file: the target
URL may carry a password (or use the standard ``PG*`` variables), and Azure credentials come only
from ``AZURE_STORAGE_CONNECTION_STRING`` or ``AZURE_STORAGE_ACCOUNT_NAME`` with
``AZURE_STORAGE_ACCOUNT_KEY`` / ``AZURE_STORAGE_SAS_TOKEN``. ``repr`` never shows a password.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from .errors import ConfigError, redact, register_secret, url_password

ENV_PREFIX = "EVO_FRAMES_"
#: the documented form of ``duckdb_memory_limit`` (DuckDB's own units); nothing else reaches SQL
MEMORY_LIMIT = re.compile(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)")


def check_memory_limit(value: str, where: str = "setting duckdb_memory_limit") -> str:
    """``value`` when it is a DuckDB memory size such as ``2GB`` or ``512MiB``; else a ConfigError.

    >>> check_memory_limit("1.5GiB")
    '1.5GiB'
    """
    if not MEMORY_LIMIT.fullmatch(value.strip()):
        raise ConfigError(
            f"{where} = {value!r} is not a memory size; use a number and a unit, e.g. '2GB' or '512MiB' "
            "(units: KB MB GB TB KiB MiB GiB TiB)"
        )
    return value.strip()


#: config.toml sections and the settings each may hold
SECTIONS: Mapping[str, tuple[str, ...]] = {
    "lake": ("lake", "lake_prefix"),
    "target": ("target", "duckdb_memory_limit", "connect_timeout", "statement_timeout", "lock_timeout"),
    "load": (
        "batch_size", "workers", "writers", "chunk_rows", "max_bad_ratio", "retries", "retry_wait",
        "source_timezone", "memory_budget",
    ),
    "extract": (
        "requests_per_minute", "free_hours", "free_requests_per_minute", "api_timezone", "extract_workers",
        "pages_in_flight", "request_timeout", "request_attempts",
    ),
}  # fmt: skip
#: the name a setting has inside its section (``[lake] url`` is the ``lake`` setting)
_FILE_NAMES = {"lake": "url", "lake_prefix": "prefix", "target": "url"}


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one command.

    Attributes:
        lake: lake URL or path holding ``<lake_prefix>/entity=…`` folders.
        lake_prefix: folder of the bronze layout inside the lake.
        target: ``duckdb:///abs/file.duckdb``, ``duckdb:rel/file.duckdb`` or ``postgresql://…``.
        duckdb_memory_limit: DuckDB ``memory_limit``; empty (the default) derives it from
            ``memory_budget`` (see :attr:`duckdb_memory`).
        connect_timeout: seconds to wait for a database connection.
        statement_timeout: seconds one SQL statement may run (PostgreSQL).
        lock_timeout: seconds a writing command waits for another process that has the DuckDB
            file open (DuckDB lets one process write a file); then it fails naming that process.
        batch_size: bronze files per transaction.
        workers: files decoded ahead of the load, in parallel threads.
        writers: batches loaded at once, each on its own connection; 0 = as many as the cores
            and the server's free connections allow (DuckDB: always 1).
        chunk_rows: records per staged chunk (bounds memory).
        max_bad_ratio: share of rejected lines above which ``run`` exits 3.
        retries: attempts for a batch that fails with a transient error.
        retry_wait: seconds a reconnect waits out a PostgreSQL failover (refused or reset
            connections, a server starting up or shutting down) before the run fails.
        source_timezone: time zone of EVO's offset-less timestamps.
        requests_per_minute: ``extract``: API requests per minute, shared by all windows.
        free_hours: ``extract``: local hours ``H-H`` (start inclusive, end exclusive, in
            ``api_timezone``) with the higher ``free_requests_per_minute``; empty for none.
        free_requests_per_minute: ``extract``: the limit inside ``free_hours``.
        api_timezone: ``extract``: the API's zone, in which ``free_hours`` are read.
        extract_workers: ``extract``: windows fetched at once.
        pages_in_flight: ``extract``: pages of one window requested ahead, at once.
        request_timeout: ``extract``: seconds one API request may take (connect, read, write).
        request_attempts: ``extract``: attempts of one page before its window fails.
        memory_budget: MiB of peak memory the whole process should stay under. It sizes the
            decoded size of each chunk of a load (:attr:`piece_bytes`), hence the bronze decoded
            ahead, the text of each chunk ``transform`` reads from STG (:attr:`chunk_bytes`) and
            DuckDB's ``memory_limit`` (DuckDB spills to ``<database file>.tmp`` beyond it).
    """

    lake: str = "data/lake"
    lake_prefix: str = "bronze/evo"
    target: str = field(default="duckdb:data/evo.duckdb", repr=False)
    duckdb_memory_limit: str = ""
    connect_timeout: int = 10
    statement_timeout: int = 3600
    lock_timeout: int = 600
    batch_size: int = 10
    workers: int = 2
    writers: int = 1
    chunk_rows: int = 100_000
    max_bad_ratio: float = 1.0
    retries: int = 5
    retry_wait: float = 300.0
    source_timezone: str = "America/Sao_Paulo"
    requests_per_minute: float = 40.0
    free_hours: str = ""
    free_requests_per_minute: float = 600.0
    api_timezone: str = "America/Sao_Paulo"
    extract_workers: int = 4
    pages_in_flight: int = 4
    request_timeout: float = 120.0
    request_attempts: int = 6
    memory_budget: int = 768
    #: where each value came from (``default``, ``file``, ``env``, ``flag``), for ``--verbose``
    origins: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name != "origins")
        return redact(f"Settings({shown})")

    def __post_init__(self) -> None:
        for name, low in (
            ("batch_size", 1),
            ("workers", 1),
            ("writers", 0),
            ("chunk_rows", 1000),
            ("retries", 1),
            ("retry_wait", 0.0),
            ("connect_timeout", 1),
            ("statement_timeout", 1),
            ("lock_timeout", 0),
            ("extract_workers", 1),
            ("pages_in_flight", 1),
            ("request_attempts", 1),
            ("requests_per_minute", 0.1),
            ("free_requests_per_minute", 0.1),
            ("request_timeout", 0.1),
            ("memory_budget", 256),
        ):
            if getattr(self, name) < low:
                raise ConfigError(f"setting {name} = {getattr(self, name)} is too small; use at least {low}")
        if not 0.0 <= self.max_bad_ratio <= 1.0:
            raise ConfigError(f"setting max_bad_ratio = {self.max_bad_ratio} is out of range; use a value in [0, 1]")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.source_timezone)
        except Exception as e:
            raise ConfigError(
                f"setting source_timezone = {self.source_timezone!r} is not an IANA time zone; "
                "use e.g. 'America/Sao_Paulo'"
            ) from e
        try:
            ZoneInfo(self.api_timezone)
        except Exception as e:
            raise ConfigError(
                f"setting api_timezone = {self.api_timezone!r} is not an IANA time zone; use e.g. 'America/Sao_Paulo'"
            ) from e
        free_hours(self.free_hours)
        if self.duckdb_memory_limit:
            check_memory_limit(
                self.duckdb_memory_limit, f"setting duckdb_memory_limit{self._origin('duckdb_memory_limit')}"
            )

    def _origin(self, name: str) -> str:
        origin = self.origins.get(name, "default")
        if origin == "env":
            return f" (environment {ENV_PREFIX}{name.upper()})"
        return f" ({origin})" if origin.startswith("file") else ""

    @property
    def duckdb_memory(self) -> str:
        """DuckDB's ``memory_limit``: the explicit setting, else 1/4 of ``memory_budget``.

        DuckDB's buffers add to the process's own: with 3/8 of the default budget (288 MiB)
        200,000 members in 4 files peaked at 842-855 MiB, with 1/4 (192 MiB) at 784 MiB. 1/6
        (128 MiB) is too little: a file of 300,000 members (1 GB of JSON) failed with DuckDB's
        "failed to pin block" out of memory error.

        >>> Settings().duckdb_memory, Settings(duckdb_memory_limit="2GB").duckdb_memory
        ('192MiB', '2GB')
        """
        return self.duckdb_memory_limit or f"{self.memory_budget // 4}MiB"

    @property
    def piece_bytes(self) -> int:
        """Most decoded bytes per chunk of a load (records with their raw JSON, and CORE frames),
        from ``memory_budget`` and ``workers``.

        Each decoding file holds up to three chunks (two queued, one being built, which decodes
        through about twice its size) and the chunk being written is held about four times over
        (its pieces, their concatenation, the STG frame, the rows sent): so the budget is shared
        by ``16 * (workers + 2)`` decoded chunks, which leaves most of it to the interpreter, the
        libraries and DuckDB. The load measures how much an entity's JSON grows once decoded on
        its first chunk and sizes the text of the next ones from it (``prefetch.Expansion``).

        >>> Settings().piece_bytes >> 20, Settings(workers=6).piece_bytes >> 20
        (12, 6)
        """
        return (self.memory_budget << 20) // (16 * (self.workers + 2))

    @property
    def chunk_bytes(self) -> int:
        """Most JSON text per chunk ``transform`` reads from STG, from ``memory_budget`` and ``workers``.

        Up to ``workers + 2`` chunks are alive at once (one being decoded per worker, the queued
        ones, the one being written), each decoded and copied while it is staged at about 8 to 16
        times its text: so the budget is shared by ``16 * (workers + 2)`` chunk texts.

        >>> Settings().chunk_bytes >> 20, Settings(workers=6).chunk_bytes >> 20
        (12, 6)
        """
        return (self.memory_budget << 20) // (16 * (self.workers + 2))


_TYPES: dict[str, type] = {n: t for n, t in get_type_hints(Settings).items() if n != "origins"}


def _coerce(name: str, value: Any, where: str) -> Any:
    want = _TYPES[name]
    if want is bool or isinstance(value, bool) and want is not bool:
        raise ConfigError(f"{where}: {name} = {value!r} must be {want.__name__}")
    if isinstance(value, want):
        return value
    if want is float and isinstance(value, int):
        return float(value)
    if isinstance(value, str):
        try:
            return want(value)
        except ValueError:
            pass
    raise ConfigError(f"{where}: {name} = {value!r} must be {want.__name__}")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"config file {path} does not exist; pass an existing --config PATH") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from e
    out: dict[str, Any] = {}
    for section, body in data.items():
        if section not in SECTIONS:
            raise ConfigError(f"config file {path}: unknown section [{section}]; valid: {', '.join(SECTIONS)}")
        if not isinstance(body, dict):
            raise ConfigError(f"config file {path}: {section} must be a [section] table")
        by_file_name = {_FILE_NAMES.get(n, n): n for n in SECTIONS[section]}
        for key, value in body.items():
            if key not in by_file_name:
                raise ConfigError(
                    f"config file {path}: unknown key {key!r} in [{section}]; valid: {', '.join(by_file_name)}"
                )
            name = by_file_name[key]
            out[name] = _coerce(name, value, f"config file {path} [{section}]")
    return out


def config_path(explicit: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    """The config file to read: the flag, ``$EVO_FRAMES_CONFIG``, or ``./config.toml`` if present."""
    if explicit:
        return Path(explicit)
    if env.get(ENV_PREFIX + "CONFIG"):
        return Path(env[ENV_PREFIX + "CONFIG"])
    default = Path("config.toml")
    return default if default.exists() else None


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings with flag > environment > config file > default.

    Args:
        flags: values given on the command line; ``None`` values mean "not given".
        config: explicit config file path (``--config``).
        env: environment to read (defaults to ``os.environ``).

    Raises:
        ConfigError: unknown key, wrong type or invalid value; the message names the key and source.

    >>> load_settings({"batch_size": 3}, env={"EVO_FRAMES_BATCH_SIZE": "7"}).batch_size
    3
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    origins = {f.name: "default" for f in fields(Settings) if f.name != "origins"}
    path = config_path(config, env)
    if path is not None:
        for name, value in _read_file(path).items():
            values[name], origins[name] = value, f"file {path}"
    for name in origins:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw not in (None, ""):
            values[name], origins[name] = _coerce(name, raw, f"environment {ENV_PREFIX}{name.upper()}"), "env"
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in origins:
            raise ConfigError(f"unknown setting {name!r}; valid: {', '.join(origins)}")
        values[name], origins[name] = _coerce(name, value, f"option --{name.replace('_', '-')}"), "flag"
    settings = dataclasses.replace(Settings(), **values, origins=origins)
    # from here on redact() hides the lake's password however it is spelled (a space or `/` in it
    # escapes the URL pattern), also where the lake is shown before it is opened (status)
    register_secret(url_password(settings.lake))
    return settings


def free_hours(text: str) -> tuple[int, int] | None:
    """The ``free_hours`` setting ``"H-H"`` as ``(start, end)`` local hours, or None when empty.

    >>> free_hours("0-5"), free_hours("22-6"), free_hours("")
    ((0, 5), (22, 6), None)
    """
    if not text.strip():
        return None
    start, sep, end = text.partition("-")
    if sep and start.strip().isdigit() and end.strip().isdigit():
        hours = int(start), int(end)
        if all(0 <= h <= 24 for h in hours) and hours[0] != hours[1]:
            return hours
    raise ConfigError(f"setting free_hours = {text!r} is not a range of local hours; use e.g. '0-5' (00:00-05:00)")


def storage_options(lake: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """fsspec storage options for ``lake``, with Azure credentials from the environment only."""
    env = os.environ if env is None else env
    if not lake.startswith(("az://", "abfs://", "abfss://")):
        return {}
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY",
                 "AZURE_STORAGE_SAS_TOKEN"):  # fmt: skip
        register_secret(env.get(name))  # redact() removes them from every message and traceback
    if env.get("AZURE_STORAGE_CONNECTION_STRING"):
        return {"connection_string": env["AZURE_STORAGE_CONNECTION_STRING"]}
    account = env.get("AZURE_STORAGE_ACCOUNT_NAME") or env.get("AZURE_STORAGE_ACCOUNT")
    if not account:
        raise ConfigError(
            f"lake {lake} needs Azure credentials; set AZURE_STORAGE_CONNECTION_STRING, or "
            "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN"
        )
    opts = {"account_name": account}
    if env.get("AZURE_STORAGE_ACCOUNT_KEY") or env.get("AZURE_STORAGE_KEY"):
        opts["account_key"] = env.get("AZURE_STORAGE_ACCOUNT_KEY") or env["AZURE_STORAGE_KEY"]
    elif env.get("AZURE_STORAGE_SAS_TOKEN"):
        opts["sas_token"] = env["AZURE_STORAGE_SAS_TOKEN"]
    return opts
