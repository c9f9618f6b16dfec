"""The PostgreSQL target through adbc-driver-postgresql (binary COPY, libpq bundled).

The URL is a libpq URI, ``postgresql://user:pass@host:port/db``; parts it leaves out come from
the standard ``PG*`` variables (``PGHOST``, ``PGPASSWORD``, …), as libpq does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ..errors import ConfigError, SinkError, redact, register_secret
from .dialect import POSTGRESQL
from .sql import SqlSink

#: the fixed message for a URL that does not parse: it never quotes any part of the URL
BAD_URL = (
    "the PostgreSQL target URL does not parse; write it as postgresql://user:password@host:port/db "
    "and percent-encode special characters in the password (/ as %2F, : as %3A, @ as %40, % as %25, "
    "space as %20, ' as %27), e.g. with python3 -c 'import urllib.parse,sys; "
    'print(urllib.parse.quote(sys.argv[1], safe=""))\' PASSWORD, or put the password in PGPASSWORD'
)
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def check_url(url: str) -> None:
    """Register the URL's password as a secret; raise the fixed :data:`BAD_URL` if it does not parse."""
    try:
        u = urlsplit(url)
        password = u.password
        _ = u.port, u.hostname
    except ValueError:
        password, u = None, None
    # before any check: whatever fails below must not show the password
    raw = url.partition("://")[2].rpartition("@")[0].partition(":")[2]
    register_secret(raw)
    register_secret(password)
    if u is None or _BAD_PERCENT.search(url.partition("://")[2]) or (" " in url) or ("'" in raw):
        raise ConfigError(BAD_URL)


def describe(url: str) -> str:
    """``postgresql://user@host:port/db`` without the password, with PG* defaults filled in."""
    u = urlsplit(url)
    user = u.username or os.environ.get("PGUSER", "")
    host = u.hostname or os.environ.get("PGHOST", "localhost")
    port = u.port or int(os.environ.get("PGPORT", "5432"))
    db = u.path.lstrip("/") or os.environ.get("PGDATABASE", user)
    return f"postgresql://{user + '@' if user else ''}{host}:{port}/{db}"


def with_timeouts(url: str, connect_timeout: int, statement_timeout: int) -> str:
    """The URL with libpq's connect_timeout and a server-side statement_timeout, unless it sets them."""
    u = urlsplit(url)
    params = dict(parse_qsl(u.query))
    params.setdefault("connect_timeout", str(connect_timeout))
    options = params.get("options", "")
    if "statement_timeout" not in options:
        params["options"] = f"{options} -c statement_timeout={statement_timeout * 1000}".strip()
    params.setdefault("application_name", "evo-frames")
    return urlunsplit(u._replace(query=urlencode(params, quote_via=quote)))


def _connect_failure(error: Exception, where: str, timeout: int) -> SinkError:
    text = str(error)
    lowered = text.lower()
    if "password authentication failed" in lowered or "no password supplied" in lowered:
        hint = "the server refused the user name or password; check the URL or PGPASSWORD"
    elif "does not exist" in lowered and "database" in lowered:
        hint = "the database does not exist; create it or fix the database name in the URL"
    elif "connection refused" in lowered:
        hint = "nothing listens at that host and port; check the host, the port and that the server runs"
    elif "timeout expired" in lowered or "timed out" in lowered:
        hint = f"no answer within the connect timeout ({timeout}s); check the host and the network"
    elif "could not translate host name" in lowered or "name or service not known" in lowered:
        hint = "the host name does not resolve; check the host in the URL"
    else:
        hint = redact(text.strip().splitlines()[0]) if text.strip() else type(error).__name__
    return SinkError(f"cannot connect to {where}: {hint}")


class PostgresSink(SqlSink):
    """A PostgreSQL database; see the module docstring."""

    dialect = POSTGRESQL

    def __init__(
        self,
        url: str,
        connect_timeout: int,
        statement_timeout: int,
        read_only: bool = False,
        retry_wait: float = 300.0,
    ) -> None:
        check_url(url)
        register_secret(os.environ.get("PGPASSWORD"))
        super().__init__(url, describe(url), read_only)
        self.public_url = self.display
        self.connect_timeout = connect_timeout
        #: seconds a reconnect waits out a server that is down, starting up or shutting down
        self.retry_wait = retry_wait
        #: set by :meth:`reconnect`: the server was reachable, so a refused connection is a failover
        self._reconnecting = False
        self._uri = with_timeouts(url, connect_timeout, statement_timeout)

    def database_url(self, name: str, folder: Path) -> str:
        """The database ``name`` on the same server, as the same user."""
        return urlunsplit(urlsplit(self.url)._replace(path=f"/{name}"))

    def reconnect(self) -> None:
        super().reconnect()
        self._reconnecting = True

    def _connect_once(self) -> Any:
        import adbc_driver_postgresql.dbapi

        try:
            return adbc_driver_postgresql.dbapi.connect(self._uri)
        except Exception as e:
            raise _connect_failure(e, self.display, self.connect_timeout) from e

    def _connect(self) -> Any:
        """Connect; wait out a failover for up to ``retry_wait`` seconds.

        A first connect waits only for a server that says it is starting up or shutting down; a
        reconnect also waits while the connection is refused or reset (the server restarts).
        """
        from ..retry import connect_within, is_server_restarting, is_transient_connect

        conn = connect_within(
            self._connect_once,
            budget=self.retry_wait,
            display=self.display,
            transient=is_transient_connect if self._reconnecting else is_server_restarting,
        )
        self._reconnecting = False
        return conn
