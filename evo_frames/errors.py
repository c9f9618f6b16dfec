"""The errors evo-frames raises, and how driver errors map onto them.

::

    EvoFramesError                 every error of ours; the CLI prints its message, exit 1
    ├── ConfigError                bad configuration or usage (exit 2)
    ├── SourceError                the lake: listing, reading, layout
    │   └── TransientSourceError   a network or storage hiccup: retry (also inherits Transient)
    ├── TransformError             a transform module or its declarations
    └── SinkError                  the target database
        └── TransientSinkError     worth retrying after reconnecting (also inherits Transient)

``Transient`` marks errors that retry logic may retry. Messages name the object, the value and
the fix; they never contain a password.
"""

from __future__ import annotations

import re


class EvoFramesError(Exception):
    """Base of every evo-frames error."""

    exit_code = 1


class ConfigError(EvoFramesError):
    """Configuration or usage is wrong; the message names the key, the value and the valid choices."""

    exit_code = 2


class SourceError(EvoFramesError):
    """The lake cannot be listed or read, or a path does not follow the bronze layout."""


class TransformError(EvoFramesError):
    """A transform module is malformed or its output does not match its declared tables."""


class SinkError(EvoFramesError):
    """The target database refused an operation."""


class Transient:
    """Mixin: the operation may succeed if retried (after reconnecting)."""


class TransientSinkError(SinkError, Transient):
    """A failover, lost connection, deadlock or serialization failure: retry the whole batch."""


class TransientSourceError(SourceError, Transient):
    """Reading the lake failed for a reason that may pass (timeout, reset connection, 5xx)."""


#: ``scheme://user:password@``, any scheme; the password runs to the last ``@`` of the word, so an
#: unencoded ``@``, ``/`` or ``:`` in it is hidden too
_PASSWORD_IN_URL = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)\S*@")
#: ``AccountKey=…`` / ``SharedAccessSignature=…`` in an Azure connection string, ``sig=`` in a SAS
_AZURE_SECRET = re.compile(r"(?i)((?:AccountKey|SharedAccessSignature|sig)=)[^;&\s'\"]+")
_SECRETS: set[str] = set()


def url_password(url: str) -> str | None:
    """The password of ``scheme://user:password@host/…``, read up to the URL's last ``@``, so
    that an unencoded ``/ : @ %``, space or ``'`` in it is part of it; None without one.

    >>> url_password("ftp://etl:Zq7x/K v9@w@host/lake"), url_password("abfs://c@acct.dfs.core.windows.net/x")
    ('Zq7x/K v9@w', None)
    """
    rest = url.split("://", 1)[1] if "://" in url else ""
    user, sep, password = rest.rpartition("@")[0].partition(":")
    return password if sep and password and "/" not in user else None


def register_secret(secret: str | None) -> None:
    """Remember ``secret`` (a password, account key or SAS token): :func:`redact` removes it
    wherever it appears, in its plain and percent-encoded spellings."""
    from urllib.parse import quote, unquote

    # a secret shorter than 6 characters would blank out ordinary words (a test role "evo" with
    # password "evo"); URL passwords of any length are still hidden by the URL pattern
    if secret and len(secret) >= 6:
        _SECRETS.update({secret, quote(secret, safe=""), unquote(secret)} - {""})


def redact(text: str) -> str:
    """Hide the password of any URL in ``text``, Azure keys and SAS signatures, and every
    registered secret.

    >>> redact("connect to postgresql://etl:s3cret@db:5432/x failed")
    'connect to postgresql://etl:***@db:5432/x failed'
    >>> redact("postgresq://etl:p@ssW0rd@host/db")
    'postgresq://etl:***@host/db'
    """
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    text = _PASSWORD_IN_URL.sub(r"\1***@", text)
    return _AZURE_SECRET.sub(r"\1***", text)
