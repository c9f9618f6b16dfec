"""Keys certainly new without a probe: what one session wrote into partitions it found empty.

A first load, or a new month of entries, writes into an empty partition: the first chunk needs no
probe, and neither do the later ones for the keys this session has not written there yet. The
session remembers, per table, the partitions (or the whole table, where there are none) it found
empty and a 64-bit hash of every key it has written into them since. A row bound for such a
partition whose key hash is not among them is certainly new.

The one way that can be wrong is another process writing the same partition meanwhile (two runs
of one entity at once). The primary key catches it: the COPY of a key the other process wrote
fails with a unique violation, the batch rolls back, which forgets everything here, and its replay
probes. A hash collision only costs a probe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

#: most key hashes a session remembers per table (8 bytes each): past it, the table's partitions
#: are probed like any other
FRESH_KEYS_MAX = 4_000_000


def key_hashes(frame: pl.DataFrame, keys: Sequence[str], schema: Mapping[str, pl.DataType]) -> pl.Series:
    """A 64-bit hash of each row's key, from the key columns cast to the table's types."""
    return frame.select(pl.struct(pl.col(k).cast(schema[k]) for k in keys).hash(seed=0)).to_series()


class FreshKeys:
    """Per table: the partitions found empty, the ones found holding rows, and the hashes of the
    keys written since into the empty ones (committed, and in the open transaction)."""

    def __init__(self) -> None:
        #: see :meth:`disable`
        self.enabled = True
        self._empty: dict[str, set[int]] = {}
        self._filled: dict[str, set[int]] = {}
        self._committed: dict[str, pl.Series] = {}
        self._pending: dict[str, list[pl.Series]] = {}

    def unknown(self, table: str, parts: Sequence[int]) -> list[int]:
        """The ``parts`` of ``table`` not yet found empty or filled."""
        seen = self._empty.get(table, set()) | self._filled.get(table, set())
        return [p for p in parts if p not in seen]

    def found(self, table: str, part: int, empty: bool) -> None:
        (self._empty if empty and self.enabled else self._filled).setdefault(table, set()).add(part)

    def certainly_new(self, table: str, parts: pl.Series, hashes: pl.Series) -> pl.Series:
        """Per row (its partition in ``parts``, its key hash in ``hashes``): bound for a partition
        found empty, with a key not written there since."""
        new = self._into_empty(table, parts)
        if not new.any():
            return new
        written = self._written(table)
        if written:
            new = new & ~hashes.is_in(pl.concat(written).implode())
        return new.fill_null(False)

    def _into_empty(self, table: str, parts: pl.Series) -> pl.Series:
        """Per row: bound for a partition of ``table`` found empty."""
        empty = sorted(self._empty.get(table, ()))
        return parts.is_in(pl.Series(empty, dtype=parts.dtype).implode()).fill_null(False)

    def _written(self, table: str) -> list[pl.Series]:
        committed = self._committed.get(table)
        return [*([] if committed is None else [committed]), *self._pending.get(table, [])]

    def wrote(self, table: str, parts: pl.Series, hashes: pl.Series) -> None:
        """Rows were inserted into ``table``: remember the keys of those in partitions found empty."""
        if self._empty.get(table):
            self._pending.setdefault(table, []).append(hashes.filter(self._into_empty(table, parts)))

    def commit(self) -> None:
        for table in self._pending:
            held = pl.concat(self._written(table))
            if len(held) > FRESH_KEYS_MAX:
                # too many to hold: these partitions are probed from now on
                self._filled.setdefault(table, set()).update(self._empty.pop(table, set()))
                self._committed.pop(table, None)
            else:
                self._committed[table] = held
        self._pending.clear()

    def disable(self) -> None:
        """For a sink whose tables other writers of the same load share: nothing is ever certain."""
        self.enabled = False
        self.forget()

    def forget(self) -> None:
        """After a rollback or a lost connection: nothing is known any more."""
        self._empty.clear()
        self._filled.clear()
        self._committed.clear()
        self._pending.clear()
