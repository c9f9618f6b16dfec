"""evo-frames: load W12 EVO bronze (gzipped JSON lines) into PostgreSQL or DuckDB, exactly once.

The engine. Transform modules (``transforms/``) import their building blocks from here;
notebooks and scripts use :mod:`evo_frames.api` (``run``, ``transform``, ``query``, ``synth``).
"""

from __future__ import annotations

from importlib import metadata as _metadata

from .errors import ConfigError, EvoFramesError, SinkError, SourceError, TransformError
from .spec import Column, Endpoint, Entity, Index, Table, TransformContext

try:
    __version__ = _metadata.version("evo-frames")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "Column",
    "ConfigError",
    "Endpoint",
    "Entity",
    "EvoFramesError",
    "Index",
    "SinkError",
    "SourceError",
    "Table",
    "TransformContext",
    "TransformError",
    "__version__",
]
