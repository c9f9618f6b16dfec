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


_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]*@")


def redact(text: str) -> str:
    """Hide the password of any URL in ``text``.

    >>> redact("connect to postgresql://etl:s3cret@db:5432/x failed")
    'connect to postgresql://etl:***@db:5432/x failed'
    """
    return _PASSWORD_IN_URL.sub(r"\1***@", text)
