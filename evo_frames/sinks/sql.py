"""The SQL sink both targets share: Arrow over ADBC, split along its seams.

- :mod:`~evo_frames.sinks.connection`: the connection, transactions, and the one boundary where
  driver errors become evo-frames errors;
- :mod:`~evo_frames.sinks.schema`: tables, columns, indexes, partitions, full-refresh shadows;
- :mod:`~evo_frames.sinks.upsert`: change detection and the writes of STG and CORE rows;
- :mod:`~evo_frames.sinks.bookkeeping`: the ``evo_meta`` tables (:mod:`~evo_frames.sinks.meta`).

What the targets do differently is data, in :mod:`~evo_frames.sinks.dialect`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Sink
from .bookkeeping import Bookkeeping
from .upsert import Upserts


class SqlSink(Bookkeeping, Upserts):
    """A target database behind an ADBC DB-API connection (implements :class:`~evo_frames.sinks.base.Sink`).

    The parts are mixins over one :class:`~evo_frames.sinks.connection.Connection`, not objects
    of their own: every part runs its statements on the same connection and transaction, so a
    file's rows and its manifest row commit together, and callers keep calling one object
    (``sink.write_chunk``, ``sink.record_files``) with nothing to wire up. Subclasses only
    provide ``_connect`` and the dialect.
    """


if TYPE_CHECKING:  # mypy checks here that SqlSink has every method of the protocol, with its types

    def _implements(sink: SqlSink) -> Sink:
        return sink
