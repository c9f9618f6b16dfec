"""Throwaway PostgreSQL and Azurite servers for the test suite.

Plain Python with no pytest import, so the same helpers serve the fixtures in
``tests/conftest.py`` and anyone debugging by hand::

    from tests.services import PostgresServer, Azurite
    pg = PostgresServer.start(); print(pg.url); pg.stop()
    az = Azurite.start(); print(az.connection_string); az.stop()

Both servers live in a fresh temporary directory that ``stop()`` removes. Every wait
has a timeout, and every failure raises :class:`ServiceError` naming what failed,
with the tail of the server's log.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import adbc_driver_postgresql.dbapi

if TYPE_CHECKING:
    import adlfs

REPO_ROOT = Path(__file__).resolve().parents[1]

PG_URL_ENV = "EVO_FRAMES_TEST_PG_URL"
AZURITE_DIR_ENV = "EVO_FRAMES_AZURITE_DIR"
AZURITE_VERSION = "3.35.0"

# the well-known development account every Azure emulator accepts; not a secret
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ServiceError(RuntimeError):
    """A test service could not be started, reached or stopped."""


class ServiceUnavailable(ServiceError):
    """A test service is not installed on this machine (as opposed to broken)."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a log file, or a note saying why there are none."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc.strerror})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log {path} is empty)"


def _failure(what: str, log: Path, detail: str = "") -> ServiceError:
    """Build a :class:`ServiceError` for ``what`` that carries the tail of ``log``."""
    extra = f"\n{detail.strip()}" if detail.strip() else ""
    return ServiceError(f"{what}{extra}\n--- last lines of {log} ---\n{log_tail(log)}")


def _with_connect_timeout(url: str, seconds: int = 10) -> str:
    """Add libpq's ``connect_timeout`` to a URL that has none, so a dead host cannot hang us."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("connect_timeout", str(seconds))
    return urlunsplit(parts._replace(query=urlencode(query)))


def database_url(url: str, name: str) -> str:
    """Return ``url`` pointing at database ``name`` (credentials, host and query kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _check_identifier(name: str) -> str:
    """Return ``name`` double-quoted after checking it is a plain lowercase identifier."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain lowercase identifier: {name!r}")
    return f'"{name}"'


class PostgresAdmin:
    """Creates and drops databases on a PostgreSQL server reached through an admin URL.

    ``url`` must name a role allowed to ``CREATE DATABASE`` and the database to connect
    to for that. Used as-is for ``EVO_FRAMES_TEST_PG_URL``; :class:`PostgresServer`
    extends it with a server of its own.
    """

    def __init__(self, url: str) -> None:
        self.url = url

    def execute(self, sql: str) -> None:
        """Run one admin statement in autocommit mode (CREATE/DROP DATABASE refuse transactions)."""
        url = _with_connect_timeout(self.url)
        with adbc_driver_postgresql.dbapi.connect(url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql)

    def check(self) -> None:
        """Raise :class:`ServiceError` unless the server answers ``select 1``."""
        try:
            url = _with_connect_timeout(self.url)
            with adbc_driver_postgresql.dbapi.connect(url) as conn, conn.cursor() as cur:
                cur.execute("select 1")
                cur.fetchall()
        except Exception as exc:  # any driver error means the same thing here: unusable
            host = urlsplit(self.url).hostname
            raise ServiceError(f"cannot query PostgreSQL at {host}: {exc}") from exc

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its URL."""
        self.execute(f"CREATE DATABASE {_check_identifier(name)}")
        return database_url(self.url, name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, ending sessions that a test left open."""
        self.execute(f"DROP DATABASE IF EXISTS {_check_identifier(name)} WITH (FORCE)")

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""


def find_postgres_bin() -> Path:
    """Return the directory holding ``initdb`` and ``pg_ctl``.

    Looks on PATH first (following symlinks such as /usr/local/bin/initdb), then in
    /usr/lib/postgresql/*/bin, newest major version first.
    """
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
        reverse=True,
    )
    for directory in candidates:
        if all(os.access(directory / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise ServiceUnavailable(
        "PostgreSQL server binaries not found (looked in PATH and /usr/lib/postgresql/*/bin); "
        f"install with `apt-get install -y postgresql` or set {PG_URL_ENV}"
    )


class PostgresServer(PostgresAdmin):
    """A throwaway PostgreSQL cluster on a free 127.0.0.1 port, torn down by :meth:`stop`.

    Runs as the ``postgres`` OS user when we are root (PostgreSQL refuses root). Trust
    authentication, no fsync: fast and disposable, never for data that matters. Role
    ``evo`` (superuser, password ``evo``) owns database ``evo``, which :attr:`url` names.
    """

    ROLE = "evo"
    DATABASE = "evo"
    BOOTSTRAP_PASSWORD = "postgres"

    def __init__(self, bin_dir: Path, base: Path, port: int, run_as: str | None) -> None:
        super().__init__(f"postgresql://{self.ROLE}:{self.ROLE}@127.0.0.1:{port}/{self.DATABASE}")
        self.bin_dir = bin_dir
        self.base = base
        self.port = port
        self.run_as = run_as

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.base / "data"

    @property
    def log_file(self) -> Path:
        """The server log (``pg_ctl -l``), quoted in every failure after initdb."""
        return self.base / "postgres.log"

    @classmethod
    def start(cls, timeout: float = 60.0) -> PostgresServer:
        """Initialise and start a new cluster, then create the ``evo`` role and database."""
        bin_dir = find_postgres_bin()
        run_as = "postgres" if os.geteuid() == 0 else None
        base = Path(tempfile.mkdtemp(prefix="evo-frames-pg-"))
        if run_as:
            try:
                user = pwd.getpwnam(run_as)
            except KeyError:
                shutil.rmtree(base, ignore_errors=True)
                raise ServiceUnavailable(
                    "running as root but there is no `postgres` OS user to run PostgreSQL as; "
                    f"install with `apt-get install -y postgresql` or set {PG_URL_ENV}"
                ) from None
            os.chown(base, user.pw_uid, user.pw_gid)
        server = cls(bin_dir, base, free_port(), run_as)
        try:
            server._initdb(timeout)
            server._pg_ctl_start(timeout)
            server._create_role_and_database()
        except BaseException:
            server.stop()
            raise
        return server

    def _create_role_and_database(self) -> None:
        """Create role ``evo`` and its database, connecting as the bootstrap superuser."""
        admin = PostgresAdmin(f"postgresql://postgres:{self.BOOTSTRAP_PASSWORD}@127.0.0.1:{self.port}/postgres")
        try:
            admin.execute(f"CREATE ROLE {self.ROLE} LOGIN SUPERUSER PASSWORD '{self.ROLE}'")
            admin.execute(f"CREATE DATABASE {self.DATABASE} OWNER {self.ROLE}")
        except Exception as exc:  # a driver error of any class: the new server is unusable
            raise _failure(
                f"creating role/database {self.ROLE} on 127.0.0.1:{self.port} failed", self.log_file, str(exc)
            ) from exc

    def _run(self, args: Sequence[str], timeout: float, what: str) -> None:
        """Run a PostgreSQL tool as the server's OS user; raise with its output and the log on failure."""
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        try:
            # cwd must be readable by the postgres user: root's cwd often is not
            proc = subprocess.run(
                [*prefix, *args],
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise _failure(f"{what} did not finish within {timeout:.0f} s", self.log_file) from exc
        if proc.returncode != 0:
            raise _failure(f"{what} failed with exit code {proc.returncode}", self.log_file, proc.stdout + proc.stderr)

    def _initdb(self, timeout: float) -> None:
        """Create the cluster: superuser ``postgres``, UTF-8, no fsync.

        TCP connections need a password (scram), as on a real server, so tests can check what a
        wrong password does; the socket in the temp dir trusts local users.
        """
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.BOOTSTRAP_PASSWORD + "\n")
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ],
            timeout,
            f"initdb ({self.bin_dir / 'initdb'})",
        )

    def _pg_ctl_start(self, timeout: float) -> None:
        """Start the server and wait until it accepts connections.

        ``-l`` is required: without it the postmaster inherits our pipes and
        ``subprocess.run`` never returns.
        """
        options = " ".join(
            f"-c {setting}"
            for setting in (
                "listen_addresses=127.0.0.1",
                f"port={self.port}",
                f"unix_socket_directories={self.base}",
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            )
        )
        wait = max(1, int(timeout))
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "start",
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(wait),
                "-o",
                options,
            ],
            timeout + 10,
            f"pg_ctl start on 127.0.0.1:{self.port}",
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown, immediate if that fails) and delete its directory."""
        stop = [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-w", "-t", "30", "-m"]
        try:
            if (self.data_dir / "postmaster.pid").exists():
                try:
                    self._run([*stop, "fast"], 40, "pg_ctl stop -m fast")
                except ServiceError:
                    self._run([*stop, "immediate"], 40, "pg_ctl stop -m immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


class LakeLocation(NamedTuple):
    """A lake root URL plus the fsspec storage options needed to reach it."""

    url: str
    storage_options: dict[str, str]


def find_azurite() -> Path:
    """Return the azurite package directory: ``$EVO_FRAMES_AZURITE_DIR``, else ./node_modules/azurite."""
    override = os.environ.get(AZURITE_DIR_ENV)
    directory = Path(override) if override else REPO_ROOT / "node_modules" / "azurite"
    if not (directory / "dist" / "src" / "blob" / "main.js").is_file():
        raise ServiceUnavailable(
            f"Azurite not found at {directory}; run `npm ci` in {REPO_ROOT} (installs azurite "
            f"{AZURITE_VERSION}) or set {AZURITE_DIR_ENV} to an azurite package directory"
        )
    return directory


class Azurite:
    """An in-memory Azurite blob service on a free 127.0.0.1 port, stopped by :meth:`stop`."""

    def __init__(self, process: subprocess.Popen[bytes], base: Path, port: int, version: str) -> None:
        self.process = process
        self.base = base
        self.port = port
        self.version = version

    @property
    def log_file(self) -> Path:
        """Azurite's stdout and stderr."""
        return self.base / "azurite.log"

    @property
    def endpoint(self) -> str:
        """The blob endpoint URL, account included (path-style, as the emulator expects)."""
        return f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        """An Azure Storage connection string for this emulator."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    @property
    def storage_options(self) -> dict[str, str]:
        """Options for fsspec/adlfs (``az://`` and ``abfs://`` URLs)."""
        return {"connection_string": self.connection_string}

    @property
    def polars_storage_options(self) -> dict[str, str]:
        """Options for Polars' native object_store reader, which does not accept a connection string."""
        return {
            "account_name": AZURITE_ACCOUNT,
            "account_key": AZURITE_KEY,
            "endpoint": self.endpoint,
            "allow_http": "true",
        }

    @classmethod
    def start(cls, timeout: float = 30.0) -> Azurite:
        """Start the blob service and wait until its port accepts connections."""
        package = find_azurite()
        node = shutil.which("node")
        if node is None:
            raise ServiceUnavailable("Azurite needs Node.js but `node` is not on PATH; install Node.js 20")
        version = json.loads((package / "package.json").read_text())["version"]
        base = Path(tempfile.mkdtemp(prefix="evo-frames-azurite-"))
        port = free_port()
        log = base / "azurite.log"
        args = [
            node,
            str(package / "dist" / "src" / "blob" / "main.js"),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--extentMemoryLimit",
            "512",
            # without it Azurite phones home to Application Insights
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]
        with log.open("wb") as out:
            # cwd, not --location (which Azurite refuses beside --inMemoryPersistence), keeps strays in base
            process = subprocess.Popen(args, cwd=base, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        server = cls(process, base, port, version)
        try:
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        """Poll until Azurite itself answers HTTP, the process dies, or time runs out.

        An open port alone is not proof: another server could hold it while ours died.
        """
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise _failure(f"Azurite {self.version} exited with code {code} on start", self.log_file)
            if self._answers():
                return
            if time.monotonic() > deadline:
                raise _failure(
                    f"Azurite {self.version} did not answer on 127.0.0.1:{self.port} within {timeout:.0f} s",
                    self.log_file,
                )
            time.sleep(0.1)

    def _answers(self) -> bool:
        """True if the port serves HTTP with Azurite's ``Server`` header (any status will do)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/")
            server = conn.getresponse().getheader("Server") or ""
        except OSError:
            return False
        finally:
            conn.close()
        return server.startswith("Azurite-Blob/")

    def create_container(self, name: str) -> LakeLocation:
        """Create blob container ``name`` and return it as an ``az://`` lake location."""
        self._filesystem().mkdir(name)
        return LakeLocation(f"az://{name}", self.storage_options)

    def delete_container(self, name: str) -> None:
        """Delete blob container ``name`` and everything in it."""
        self._filesystem().rm(name, recursive=True)

    def _filesystem(self) -> adlfs.AzureBlobFileSystem:
        """A private adlfs filesystem: off fsspec's instance cache so no test sees its stale listings."""
        # imported here: adlfs takes half a second to import and most test runs never need it
        import adlfs

        return adlfs.AzureBlobFileSystem(connection_string=self.connection_string, skip_instance_cache=True)

    def stop(self) -> None:
        """Terminate the emulator (kill it if it lingers) and delete its directory."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=10)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
