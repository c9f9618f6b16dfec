"""The load: discover files, decode them ahead in threads, and load batches of files into a sink.

Shape (DESIGN.md "How data flows")::

    list files → skip loaded ones → batches of ``batch_size`` files
    decode threads (``workers`` files ahead, each ≤ 2 chunks queued):
        gunzip → lines → JSON decode → keys; bad lines become rejects
    load thread, one transaction per batch:
        chunks of ≤ ``chunk_rows`` records → latest-wins dedup → transforms → sink upserts
        → manifest rows + rejects → commit

A transient database error rolls the batch back, reconnects and replays it (re-reading its
files); everything else stops the run with the batch rolled back, so a rerun picks up exactly
the files that did not commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import queue
import re
import secrets
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import polars_hash as plh

from . import drift
from . import expr as E
from . import lake as lakes
from .config import Settings, storage_options
from .errors import EvoFramesError, TransformError, redact
from .expr import LATEST_ORDER, text
from .progress import Progress
from .reader import CHUNK_BYTES, REJECT_SCHEMA, FileStats, _clip, decode, iter_lines, reject_duplicate_keys
from .retry import is_data_error, with_retries
from .sinks import Counts, SqlSink
from .sinks.sql import FILES, qt
from .spec import CONTENT_HASH, Entity, TransformContext

log = logging.getLogger("evo_frames")

#: values that could not be typed, per ``(path, table, column)``
CastCounts = dict[tuple[str, str, str], int]

#: gzip shrinks bronze JSON about this much: compressed bytes decoded ahead are worth this much text
_GZIP_RATIO = 8
#: decoded bytes per byte of JSON text assumed until an entity's first chunk is measured (nested
#: records grow the most: members measured about 3x, entries about 2x)
_FIRST_EXPANSION = 6.0
#: chunks with less text than this do not update the measured expansion (fixed overheads dominate)
_MEASURE_FLOOR = 256 << 10


@dataclass
class Piece:
    """One decoded chunk of a file: records (keys, lineage, raw), untransformed, and rejected lines."""

    records: pl.DataFrame
    rejects: pl.DataFrame
    duplicates: int
    #: the text of the chunk's lines, rejected ones included
    text_bytes: int


@dataclass
class FileOutcome:
    file: lakes.BronzeFile
    stats: FileStats


@dataclass
class Summary:
    """What one ``run`` of one entity did; printed at the end and stored in ``evo_meta.runs``."""

    entity: str
    target: str
    load_id: str
    #: ``lake`` for ``run``; ``stg`` for ``transform``, which reads STG rows instead of files
    source: str = "lake"
    files_found: int = 0
    files_skipped: int = 0
    files_loaded: int = 0
    #: selected files that a concurrent load of the entity committed first (re-checked per batch)
    files_loaded_elsewhere: int = 0
    files_partial: list[str] = field(default_factory=list)
    lines_read: int = 0
    rows_loaded: int = 0
    duplicates: int = 0
    rejects: int = 0
    tables: dict[str, Counts] = field(default_factory=dict)
    cast_failures: dict[str, int] = field(default_factory=dict)
    #: records read in ``source_timezone`` because their zone field was missing or unknown, by value
    zone_fallbacks: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: the outcome recorded in ``evo_meta.runs``: succeeded, partial, failed or interrupted
    status: str = "succeeded"
    #: why the load failed (redacted), or None
    error: str | None = None

    @property
    def bad_ratio(self) -> float:
        return self.rejects / self.lines_read if self.lines_read else 0.0

    @property
    def counted(self) -> Counts:
        """The counts of the table the load writes first: STG for ``run``, the CORE parent for ``transform``."""
        return next(iter(self.tables.values()), Counts())

    @property
    def rows_written(self) -> int:
        return self.counted.inserted + self.counted.updated

    @property
    def rows_unchanged(self) -> int:
        return self.counted.unchanged

    @property
    def records_per_second(self) -> float:
        return self.lines_read / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "target": self.target,
            "load_id": self.load_id,
            "source": self.source,
            "status": self.status,
            "error": self.error,
            "files": {
                "found": self.files_found,
                "skipped_already_loaded": self.files_skipped,
                "loaded": self.files_loaded,
                "loaded_by_concurrent_load": self.files_loaded_elsewhere,
                "partial": self.files_partial,
            },
            "lines_read": self.lines_read,
            "rows_loaded": self.rows_loaded,
            "rows_written": self.rows_written,
            "rows_unchanged": self.rows_unchanged,
            "duplicates": self.duplicates,
            "rejects": self.rejects,
            "bad_ratio": round(self.bad_ratio, 6),
            "tables": {k: vars(v) for k, v in self.tables.items()},
            "cast_failures": self.cast_failures,
            "zone_fallbacks": self.zone_fallbacks,
            "problems": self.problems,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.records_per_second, 1),
        }


def new_load_id() -> str:
    """A sortable id for one invocation: UTC time plus a random suffix."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)


def read_file(
    file: lakes.BronzeFile,
    entity: Entity,
    ctx: TransformContext,
    *,
    chunk_rows: int,
    options: dict[str, str],
    chunk_bytes: int | Callable[[], int] = CHUNK_BYTES,
) -> tuple[Iterator[Piece], FileStats]:
    """Stream one bronze file as decoded, keyed pieces; ``stats`` is final once the iterator is exhausted.

    Runs in a decode thread, so that it overlaps the load. ``chunk_bytes`` is the text per chunk
    (a callable is asked before each chunk). The pieces are not transformed: the load transforms
    a whole chunk of pieces at once (:meth:`Loader._flush`), since a transform query costs tens
    of milliseconds to plan whatever its rows (members: about 70 ms), which small files would
    pay once each.
    """
    stats = FileStats()

    def pieces() -> Iterator[Piece]:
        with lakes.reading(file.path), lakes.open_file(file.path, options) as fh:
            for lines, read_rejects in iter_lines(fh, stats=stats, chunk_lines=chunk_rows, chunk_bytes=chunk_bytes):
                records, decode_rejects = decode(lines, entity.record)
                records, dup_rejects = reject_duplicate_keys(records)
                lineage = records.with_columns(
                    pl.lit(file.path).alias("_source_file"),
                    pl.lit(file.run_id).alias("run_id"),
                    pl.lit(file.ingestion_date).alias("ingestion_date"),
                )
                keyed = entity.keys(lineage.lazy(), ctx).collect()
                bad = keyed.filter(pl.col("_key_error").is_not_null())
                key_rejects = bad.select(
                    pl.col("_source_line").alias("line"),
                    pl.lit("transform").alias("stage"),
                    pl.col("_key_error").alias("reason"),
                    pl.col("raw"),
                    pl.col("raw").str.len_bytes().cast(pl.Int64).alias("raw_length"),
                )
                good = keyed.filter(pl.col("_key_error").is_null()).drop("_key_error")
                # latest wins inside the chunk; across chunks the consumer checks again
                latest = good.filter(pl.struct(entity.key_names).is_last_distinct())
                yield Piece(
                    records=latest,
                    rejects=pl.concat([read_rejects, decode_rejects, dup_rejects, key_rejects.cast(REJECT_SCHEMA)]),
                    duplicates=good.height - latest.height,
                    text_bytes=int(lines["raw"].str.len_bytes().sum()),
                )

    return pieces(), stats


def transform_records(
    entity: Entity, records: pl.DataFrame, ctx: TransformContext
) -> tuple[dict[str, pl.DataFrame], CastCounts]:
    """The checked CORE frames of deduplicated records, and the values that could not be typed.

    One query computes the tables and the child tables' cast failures: a child frame built with
    :func:`evo_frames.expr.child_table` shares its typed element rows with the count, so each
    value is parsed once.
    """
    frames = entity.transform(records.lazy(), ctx)
    counted = _child_failures(entity, records, frames, ctx)
    core, sums = _collect_checked(entity, frames, records, [f for _, f in counted])
    casts: CastCounts = defaultdict(int)
    _parent_failures(entity, records, core, casts)
    _add_failures(casts, [t for t, _ in counted], sums)
    return core, dict(casts)


class _Expansion:
    """How much one entity's JSON grows once decoded, and the text per chunk that follows from it.

    The decoded size of a chunk is the estimated size of its records (raw JSON included) and CORE
    frames, measured once it is transformed; the expansion is the largest ratio of decoded size to
    text seen so far in this load (:data:`_FIRST_EXPANSION` before the first chunk), so chunks of
    ``text_bytes()`` of text decode to about ``decoded_bytes`` whatever the entity.
    """

    def __init__(self, decoded_bytes: int) -> None:
        self.decoded_bytes = decoded_bytes
        self.factor: float | None = None
        self._lock = threading.Lock()

    def measure(self, text_bytes: int, decoded_bytes: int) -> None:
        if text_bytes <= 0 or (self.factor is not None and text_bytes < _MEASURE_FLOOR):
            return
        with self._lock:
            self.factor = max(self.factor or 0.0, decoded_bytes / text_bytes)

    def text_bytes(self) -> int:
        return max(1, int(self.decoded_bytes / (self.factor or _FIRST_EXPANSION)))


class _Feed:
    """One file decoded in a background thread into a small bounded queue.

    ``slots`` bounds how many feeds decode at the same moment: a feed holds a slot only while it
    builds a piece, never while it waits for the consumer, so waiting feeds cost only their
    queued pieces and the decoding ones cannot block each other.
    """

    _DONE = object()

    def __init__(self, produce: Callable[[], tuple[Iterator[Piece], FileStats]], slots: threading.Semaphore) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._cancel = threading.Event()
        self._produce = produce
        self._slots = slots
        self.stats: FileStats | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._cancel.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            pieces, self.stats = self._produce()
            while True:
                with self._slots:
                    piece = next(pieces, None)
                if piece is None or not self._put(piece):
                    break
            self._put(self._DONE)
        except BaseException as e:  # handed to the consumer, which raises it in its own thread
            self._put(e)

    def pieces(self) -> Iterator[Piece]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        self._cancel.set()


class _Prefetcher:
    """Decodes files ahead of the load, in file order: at least ``workers`` files, and more while
    the files started ahead total at most ``ahead_bytes()`` (compressed), so that the next batch is
    decoded while the current one is in the database. Each file queues at most two pieces, which
    bounds memory whatever the file sizes."""

    def __init__(
        self,
        files: Sequence[lakes.BronzeFile],
        make: Callable[[lakes.BronzeFile], _Feed],
        workers: int,
        ahead_bytes: Callable[[], int],
    ):
        self._files = list(files)
        self._make = make
        self._workers = workers
        self._ahead_bytes = ahead_bytes
        self._feeds: dict[int, _Feed] = {}
        self._started: set[int] = set()
        # parallel writers take feeds from their own threads
        self._lock = threading.Lock()

    def feed(self, index: int) -> _Feed:
        """The feed of file ``index``, starting it and those ahead of it that are not started yet."""
        with self._lock:
            ahead, most = 0, self._ahead_bytes()
            i = index
            while i < len(self._files) and (i < index + self._workers or ahead + self._files[i].size <= most):
                if i not in self._started:
                    self._feeds[i] = self._make(self._files[i])
                    self._started.add(i)
                ahead += self._files[i].size
                i += 1
            return self._feeds.pop(index)

    def discard(self, indexes: Iterable[int]) -> None:
        """Cancel the feeds of ``indexes`` that were started and not taken; never start them again."""
        with self._lock:
            for i in indexes:
                self._started.add(i)
                feed = self._feeds.pop(i, None)
                if feed is not None:
                    feed.cancel()

    def close(self) -> None:
        self.discard(list(self._feeds))


class _Source:
    """One file of a batch: its pieces, then its stats (final once the pieces are exhausted)."""

    file: lakes.BronzeFile
    stats: FileStats

    def pieces(self) -> Iterator[Piece]:  # pragma: no cover - each kind implements it
        raise NotImplementedError

    def skip(self) -> None:  # pragma: no cover - each kind implements it
        """Never read this file: a concurrent load committed it."""
        raise NotImplementedError


class _Prefetched(_Source):
    """A file decoded ahead by the prefetcher; its feed is taken only when the load reaches it."""

    def __init__(self, file: lakes.BronzeFile, prefetch: _Prefetcher, index: int) -> None:
        self.file, self._prefetch, self._index = file, prefetch, index

    def pieces(self) -> Iterator[Piece]:
        feed = self._prefetch.feed(self._index)
        yield from feed.pieces()
        assert feed.stats is not None
        self.stats = feed.stats

    def skip(self) -> None:
        self._prefetch.discard([self._index])


class _Direct(_Source):
    """A file read in the calling thread (replays after a transient error)."""

    def __init__(
        self, file: lakes.BronzeFile, read: Callable[[lakes.BronzeFile], tuple[Iterator[Piece], FileStats]]
    ) -> None:
        self.file = file
        self._pieces, self.stats = read(file)

    def pieces(self) -> Iterator[Piece]:
        return self._pieces

    def skip(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


def check_output(entity: Entity, frames: dict[str, pl.LazyFrame], records: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Collect a transform's frames, cast to the declared types; refuse missing tables/columns."""
    return _collect_checked(entity, frames, records, [])[0]


def _collect_checked(
    entity: Entity, frames: dict[str, pl.LazyFrame], records: pl.DataFrame, extra: Sequence[pl.LazyFrame]
) -> tuple[dict[str, pl.DataFrame], list[pl.DataFrame]]:
    """:func:`check_output`, collecting ``extra`` in the same query (shared subplans computed once)."""
    expected = {t.qualified: t for t in entity.core}
    if set(frames) != set(expected):
        raise TransformError(
            f"transform {entity.name} returned tables {sorted(frames)}; it declares {sorted(expected)}"
        )
    everything = pl.collect_all([*(frames[name] for name in expected), *extra])
    collected, rest = everything[: len(expected)], everything[len(expected) :]
    out: dict[str, pl.DataFrame] = {}
    for (name, table), frame in zip(expected.items(), collected, strict=True):
        missing = [c for c in table.column_names if c not in frame.columns]
        if missing:
            raise TransformError(f"transform {entity.name}: table {name} lacks columns {missing}")
        try:
            out[name] = frame.select([pl.col(c).cast(dtype) for c, dtype in table.polars_schema().items()])
        except pl.exceptions.PolarsError as e:
            raise TransformError(f"transform {entity.name}: table {name} has a column of the wrong type: {e}") from e
    parent = entity.core[0].qualified
    if out[parent].height != records.height:
        raise TransformError(
            f"transform {entity.name}: parent table {parent} has {out[parent].height} rows for "
            f"{records.height} records; the parent must keep one row per record"
        )
    return out, rest


def count_cast_failures(
    entity: Entity, records: pl.DataFrame, core: dict[str, pl.DataFrame], casts: CastCounts, ctx: TransformContext
) -> None:
    """Add, per file, table and column with a ``source``, the values present in the bronze record
    that could not be typed and are stored as NULL.

    Parent columns: a non-empty scalar, an object or an array at the key whose typed value is NULL.
    Child columns (``list[].field``): a non-empty scalar in an element of the list that does not
    parse as the column's type (objects and arrays inside elements are not seen: the decoder
    drops them), counted for every element, whether it became a row or not.

    :func:`transform_records` counts the same in the transform's own query; this function, given
    collected tables, types the child values again.
    """
    _parent_failures(entity, records, core, casts)
    counted = _child_failures(entity, records, {}, ctx)
    _add_failures(casts, [t for t, _ in counted], pl.collect_all([f for _, f in counted]))


def _add_failures(casts: CastCounts, tables: Sequence[str], sums: Sequence[pl.DataFrame]) -> None:
    for table_name, frame in zip(tables, sums, strict=True):
        for row in frame.iter_rows(named=True):
            path = row.pop("_source_file")
            for name, n in row.items():
                if n:
                    casts[(path, table_name, name)] += n


def _by_file(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.group_by("_source_file").agg(pl.exclude("_source_file").cast(pl.Int64).sum())


def _parent_failures(entity: Entity, records: pl.DataFrame, core: dict[str, pl.DataFrame], casts: CastCounts) -> None:
    """Parent columns: a present value at the source key whose typed column is NULL."""
    parent = entity.core[0]
    sourced = [(c.name, c.source) for c in parent.columns if c.source is not None and c.source in records.columns]
    if not sourced:
        return
    nulls = core[parent.qualified].select(pl.col(name).is_null().alias(f"_null:{name}") for name, _ in sourced)
    frame = records.select("_source_file", "raw", *dict.fromkeys(src for _, src in sourced)).hstack(nulls)
    # a non-empty scalar that the cast turned into NULL: one pass over all columns
    lost = [(_present(pl.col(src)) & pl.col(f"_null:{name}")).alias(name) for name, src in sourced]
    # objects and arrays at a scalar key were decoded as null: only lines holding one at such a
    # key (one regular expression over the raw lines) are parsed again to find them
    keys = "|".join(re.escape(src) for _, src in sourced)
    held = frame.lazy().filter(pl.col("raw").str.contains(f'"(?:{keys})"\\s*:\\s*[\\[{{]'))
    nested = [
        (
            pl.col(f"_null:{name}")
            & ~_present(pl.col(src))
            & _present(pl.col("raw").str.json_path_match(_json_path(src)))
        ).alias(name)
        for name, src in sourced
    ]
    sums = pl.collect_all(
        [_by_file(frame.lazy().select("_source_file", *lost)), _by_file(held.select("_source_file", *nested))]
    )
    _add_failures(casts, [parent.qualified] * 2, sums)


def _child_failures(
    entity: Entity, records: pl.DataFrame, frames: dict[str, pl.LazyFrame], ctx: TransformContext
) -> list[tuple[str, pl.LazyFrame]]:
    """Per child table, a lazy count by file of the values present in a list element and NULL once typed.

    A frame of ``frames`` built by :func:`evo_frames.expr.child_table` is counted on its
    ``element_rows`` (the transform's own typed values); otherwise the values are typed here.
    """
    counted: list[tuple[str, pl.LazyFrame]] = []
    for table in entity.core[1:]:
        rows = getattr(frames.get(table.qualified), "element_rows", None)
        by_list: dict[str, list[pl.Expr]] = defaultdict(list)
        for col in table.sourced:
            if col.source_list is not None and col.type not in E.INFALLIBLE:
                value = E.source_value(col)
                typed = pl.col(col.name) if rows is not None else E.cast(col, value, ctx.source_timezone)
                by_list[col.source_list].append((_present(value) & typed.is_null()).alias(col.name))
        for items, failed in by_list.items():
            if items not in records.columns:
                continue
            source = rows if rows is not None else E.elements(records.lazy(), items, [])
            counted.append((table.qualified, _by_file(source.select("_source_file", *failed))))
    return counted


def _json_path(key: str) -> str:
    return '$["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]'


def _present(value: pl.Expr) -> pl.Expr:
    return value.cast(pl.String).str.strip_chars().fill_null("") != ""


#: the ``zone_fallbacks`` label of records whose zone field is missing or empty
NO_ZONE = "(missing)"


def count_zone_fallbacks(entity: Entity, records: pl.DataFrame, counts: dict[str, int]) -> None:
    """Add, per value of the entity's zone field, the records it does not map to a zone."""
    if entity.zone is None or entity.zone.field not in records.columns:
        return
    names = records.select(text(entity.zone.field).fill_null(NO_ZONE).alias("zone"))
    fallbacks = names.filter(~pl.col("zone").is_in(list(entity.zone.zones))).group_by("zone").len()
    for name, n in fallbacks.iter_rows():
        counts[name] = counts.get(name, 0) + n


def zone_problems(entity: Entity, summary: Summary, tz: str) -> list[str]:
    """One line per zone name the entity's zone map does not know (never guessed)."""
    field = entity.zone.field if entity.zone else ""
    return [
        f"{entity.name}: {n} record(s) name the unknown time zone {name!r} in {field}, read in source_timezone "
        f"{tz}; add it to the entity's zone map if it is a real zone, or correct it at the source"
        for name, n in sorted(summary.zone_fallbacks.items())
        if name != NO_ZONE
    ]


def _waves(files: Sequence[lakes.BronzeFile], batches: list[range]) -> Iterator[list[range]]:
    """Consecutive batches that may load at once: those whose files all belong to one run (a
    batch that spans runs loads alone)."""
    wave: list[range] = []
    for batch in batches:
        runs = {files[i].run_id for i in batch}
        if wave and (len(runs) > 1 or runs != {files[wave[0].start].run_id}):
            yield wave
            wave = []
        wave.append(batch)
        if len(runs) > 1:
            yield wave
            wave = []
    if wave:
        yield wave


class _Claims:
    """The keys that the open batches of parallel writers copy as new, per batch.

    A key another open batch claimed first is upserted instead of copied: the database then
    waits for that batch's transaction and keeps the newer row, where a second COPY of the key
    would fail. Claims are released when the batch commits or rolls back.
    """

    def __init__(self, key_names: Sequence[str]) -> None:
        self._keys = list(key_names)
        self._lock = threading.Lock()
        self._held: dict[int, list[pl.DataFrame]] = {}

    def contested(self, owner: object) -> Callable[[pl.DataFrame], pl.Series]:
        """For the batch ``owner``: claim ``keys`` and return the row numbers held by another batch."""

        def claim(keys: pl.DataFrame) -> pl.Series:
            rows = keys.with_row_index("_row")
            with self._lock:
                others = [f for o, frames in self._held.items() if o != id(owner) for f in frames]
                if others:
                    taken = rows.join(pl.concat(others), on=self._keys, how="semi")["_row"]
                    rows = rows.filter(~pl.col("_row").is_in(taken.implode()))
                else:
                    taken = pl.Series("_row", [], dtype=pl.UInt32)
                self._held.setdefault(id(owner), []).append(rows.drop("_row"))
            return taken

        return claim

    def release(self, owner: object) -> None:
        with self._lock:
            self._held.pop(id(owner), None)


class _BadChunk(Exception):
    """Writing one chunk failed with a data error (see ``retry.is_data_error``); the batch is
    rolled back and the chunk's records are narrowed down to the offending ones."""

    def __init__(self, records: pl.DataFrame, error: Exception) -> None:
        super().__init__(str(error))
        self.records = records
        self.error = error


#: lines of a batch quarantined at the load stage: ``(path, line) -> reason``
Quarantine = dict[tuple[str, int], str]


def _halves(frame: pl.DataFrame) -> list[pl.DataFrame]:
    half = frame.height // 2
    return [frame.slice(0, half), frame.slice(half)]


class Loader:
    """Loads one entity's selected files into a sink; see the module docstring."""

    def __init__(
        self, sink: SqlSink, entity: Entity, settings: Settings, summary: Summary, progress: Progress | None = None
    ) -> None:
        self.sink = sink
        self.progress = progress or Progress()
        self.entity = entity
        self.settings = settings
        self.summary = summary
        self.ctx = TransformContext(source_timezone=settings.source_timezone)
        self.options = storage_options(settings.lake)
        #: ``path -> load_id`` of the manifest rows when the files were selected (``--full-refresh``
        #: selects loaded files too): a row written since by another load means it loaded the file
        self.listed: dict[str, str] = {}
        self._accounting = threading.Lock()
        self._chunk_rows = settings.chunk_rows
        self._expansion = _Expansion(settings.piece_bytes)

    def _read(self, file: lakes.BronzeFile) -> tuple[Iterator[Piece], FileStats]:
        return read_file(
            file,
            self.entity,
            self.ctx,
            chunk_rows=self._chunk_rows,
            options=self.options,
            chunk_bytes=self._expansion.text_bytes,
        )

    def load(self, files: Sequence[lakes.BronzeFile], writers: int = 1) -> None:
        """Load ``files`` (in latest-wins order) in batches of ``batch_size``, on ``writers``
        connections at once.

        Each batch is its own transaction with its own manifest rows, whichever writer takes it.
        With several writers, the batches of one run load at the same time and those of the next
        run start when all of them have committed (a batch spanning runs loads alone), so the
        batches are the same as with one writer. The guarded upsert (``SqlSink.write_chunk``)
        keeps the newest content whatever the commit order, and runs, where records are re-sent
        unchanged, still apply in order, so an unchanged re-send keeps naming the file that first
        brought its content, as with one writer.
        """
        size = self.settings.batch_size
        batches = [range(start, min(start + size, len(files))) for start in range(0, len(files), size)]
        slots = threading.Semaphore(self.settings.workers)
        # parallel writers share the read-ahead and the chunk budget, so memory does not grow with them
        share = max(1, writers)
        self._chunk_rows = max(1, self.settings.chunk_rows // share)
        self._expansion.decoded_bytes = max(1, self.settings.piece_bytes // share)
        # beyond the workers' files, decode ahead about one chunk more (as compressed bytes)
        prefetch = _Prefetcher(
            files,
            lambda f: _Feed(lambda: self._read(f), slots),
            max(1, self.settings.workers // share),
            lambda: self._expansion.text_bytes() // _GZIP_RATIO,
        )
        try:
            if writers <= 1:
                for batch in batches:
                    self._load_with_retries(self.sink, files, batch, prefetch, None)
                return
            sinks = [self.sink, *(self.sink.fork() for _ in range(writers - 1))]
            try:
                for wave in _waves(files, batches):
                    self._load_parallel(files, wave, prefetch, sinks)
            finally:
                for sink in sinks[1:]:
                    sink.close()
        finally:
            prefetch.close()

    def _load_parallel(
        self, files: Sequence[lakes.BronzeFile], batches: list[range], prefetch: _Prefetcher, sinks: list[SqlSink]
    ) -> None:
        """Writer threads, each on its own connection, take the next batch until none is left."""
        sinks = sinks[: len(batches)]
        claims = _Claims(self.entity.key_names)
        todo = iter(batches)
        take = threading.Lock()
        failed = threading.Event()

        def write(sink: SqlSink) -> None:
            while not failed.is_set():
                with take:
                    batch = next(todo, None)
                if batch is None:
                    return
                try:
                    self._load_with_retries(sink, files, batch, prefetch, claims)
                except BaseException:
                    failed.set()  # the other writers finish their batch and stop
                    raise

        with ThreadPoolExecutor(len(sinks), thread_name_prefix="evo-frames-writer") as pool:
            done = [pool.submit(write, sink) for sink in sinks]
        for future in done:
            future.result()

    def _load_with_retries(
        self,
        sink: SqlSink,
        files: Sequence[lakes.BronzeFile],
        batch: range,
        prefetch: _Prefetcher,
        claims: _Claims | None,
    ) -> None:
        # records whose write failed with a data error: kept across replays of the batch
        quarantined: Quarantine = {}
        fresh = [True]

        def attempt() -> None:
            while True:
                if fresh[0]:
                    # the first try takes the files decoded ahead, each when the load reaches it
                    sources: list[_Source] = [_Prefetched(files[i], prefetch, i) for i in batch]
                else:
                    # a replay re-reads the batch in this thread; what was decoded ahead is dropped
                    prefetch.discard(batch)
                    sources = [_Direct(files[i], self._read) for i in batch]
                fresh[0] = False
                try:
                    self._load_batch(sink, sources, claims, quarantined)
                    return
                except _BadChunk as bad:  # rolled back: find the offending records, then replay
                    quarantined.update(self._isolate(sink, bad.records, bad.error))

        with_retries(
            attempt,
            attempts=self.settings.retries,
            on_retry=lambda e: sink.reconnect(),
            what=f"loading {len(batch)} {self.entity.name} file(s) from {files[batch.start].path}",
        )

    def _isolate(self, sink: SqlSink, records: pl.DataFrame, error: Exception) -> Quarantine:
        """The records of a chunk whose write fails with a data error, by bisection.

        Each half that fails is halved again; each try writes its records in a fresh transaction
        that is rolled back. One bad record costs about 2·log2(chunk) tries; when the tries
        allowed (16·log2(chunk)) run out, or no single record fails alone, ``error`` is raised.
        """
        budget = 16 * max(1, records.height.bit_length())
        found: Quarantine = {}
        parts = _halves(records) if records.height > 1 else [records]
        while parts:
            part = parts.pop()
            if part.height == 0:
                continue
            if budget == 0:
                raise error
            budget -= 1
            failure = self._try_write(sink, part)
            if failure is None:
                continue
            if part.height > 1:
                parts += _halves(part)
                continue
            reason = redact(str(failure).strip().splitlines()[0] if str(failure).strip() else type(failure).__name__)
            found[(part.item(0, "_source_file"), int(part.item(0, "_source_line")))] = (
                f"the target refused the record: {reason}"
            )
        if not found:
            raise error
        log.warning(
            "%s: %d record(s) quarantined in evo_meta.rejects (stage load): %s",
            self.entity.name,
            len(found),
            next(iter(found.values())),
        )
        return found

    def _try_write(self, sink: SqlSink, records: pl.DataFrame) -> Exception | None:
        """Write ``records`` in a transaction of their own and roll it back; the data error, if any."""
        sink.rollback()
        try:
            core, _ = transform_records(self.entity, records, self.ctx)
            sink.write_chunk(self.entity, self._stg(records), core)
            return None
        except Exception as e:
            if is_data_error(e):
                return e
            raise
        finally:
            sink.rollback()

    def _stg(self, records: pl.DataFrame) -> pl.DataFrame:
        """The STG rows of deduplicated records: the raw line as ``raw_data``, and its content hash."""
        return records.rename({"raw": "raw_data"}).with_columns(
            plh.col("raw_data").nchash.xxhash64().reinterpret(signed=True).alias(CONTENT_HASH)
        )

    def _without(self, piece: Piece, path: str, quarantined: Quarantine) -> Piece:
        """``piece`` without its quarantined records, which become rejects (stage ``load``)."""
        lines = [line for (p, line) in quarantined if p == path]
        bad = piece.records["_source_line"].is_in(pl.Series(lines, dtype=pl.Int64).implode())
        if not lines or not bad.any():
            return piece
        records = piece.records.filter(~bad)
        gone = piece.records.filter(bad)
        rejected = pl.DataFrame(
            {
                "line": gone["_source_line"].cast(pl.Int64),
                "stage": ["load"] * gone.height,
                "reason": [quarantined[(path, int(n))] for n in gone["_source_line"]],
                "raw": [_clip(raw.encode("utf-8")) for raw in gone["raw"]],
                "raw_length": gone["raw"].str.len_bytes().cast(pl.Int64),
            },
            schema=REJECT_SCHEMA,
        )
        return Piece(
            records=records,
            rejects=pl.concat([piece.rejects, rejected]),
            duplicates=piece.duplicates,
            text_bytes=piece.text_bytes,
        )

    def _load_batch(
        self, sink: SqlSink, sources: list[_Source], claims: _Claims | None, quarantined: Quarantine | None = None
    ) -> None:
        started = time.perf_counter()
        owner = object()
        contested = claims.contested(owner) if claims else None
        try:
            sink.begin()
            sources, elsewhere = self._not_loaded_meanwhile(sink, sources)
            outcomes: list[FileOutcome] = []
            rejects: list[pl.DataFrame] = []
            pending: list[Piece] = []
            pending_rows = pending_text = 0
            table_counts: dict[str, Counts] = defaultdict(Counts)
            casts: CastCounts = defaultdict(int)
            zones: dict[str, int] = defaultdict(int)
            dups: dict[str, int] = defaultdict(int)
            for source in sources:
                file = source.file
                for piece in source.pieces():
                    if quarantined:
                        piece = self._without(piece, file.path, quarantined)
                    dups[file.path] += piece.duplicates
                    if piece.rejects.height:
                        rejects.append(piece.rejects.with_columns(pl.lit(file.path).alias("path")))
                    if piece.records.height:
                        pending.append(piece)
                        pending_rows += piece.records.height
                        pending_text += piece.text_bytes
                    if pending_rows >= self._chunk_rows or pending_text >= self._expansion.text_bytes():
                        self._flush(sink, contested, pending, table_counts, casts, zones, dups)
                        pending, pending_rows, pending_text = [], 0, 0
                outcomes.append(FileOutcome(file=file, stats=source.stats))
            if pending:
                self._flush(sink, contested, pending, table_counts, casts, zones, dups)
            all_rejects = pl.concat(rejects) if rejects else _empty_rejects().with_columns(path=pl.lit(""))
            files_frame = self._manifest(outcomes, all_rejects, dups)
            # loads of this entity write their manifest rows one at a time; the rows above commute
            sink.lock(self.entity)
            sink.record_files(
                files_frame,
                all_rejects.with_columns(
                    # PostgreSQL text cannot hold NUL, which an invalid line may contain
                    pl.col("raw", "reason").str.replace_all("\x00", "\\u0000", literal=True),
                    pl.lit(self.entity.name).alias("entity"),
                    pl.lit(self.summary.load_id).alias("load_id"),
                ),
            )
            sink.record_cast_failures(self.summary.load_id, self.entity.name, casts)
            sink.commit()
        except BaseException:
            sink.rollback()
            raise
        finally:
            if claims:
                claims.release(owner)
        with self._accounting:
            self._account(outcomes, files_frame, table_counts, casts, zones)
            if elsewhere:
                self.summary.files_loaded_elsewhere += len(elsewhere)
                self.progress.advance(self.summary.entity, files=len(elsewhere), bytes=sum(f.size for f in elsewhere))
        if elsewhere:
            log.info("%s: %d file(s) loaded meanwhile by a concurrent load, skipped", self.entity.name, len(elsewhere))
        log.info(
            "loaded %s: %d file(s), %d line(s) in %.1fs",
            self.entity.name,
            len(outcomes),
            int(files_frame["lines_read"].sum()),
            time.perf_counter() - started,
        )

    def _not_loaded_meanwhile(
        self, sink: SqlSink, sources: list[_Source]
    ) -> tuple[list[_Source], list[lakes.BronzeFile]]:
        """Lock the batch's files for this transaction and drop those a concurrent load of the
        entity committed since they were selected (the same size and etag, another load's row).

        A concurrent load of the same files waits here until this batch commits, then skips them.
        """
        sink.lock(self.entity, [s.file.path for s in sources])
        now = sink.manifest(self.entity.name, [s.file.path for s in sources])
        keep: list[_Source] = []
        elsewhere: list[lakes.BronzeFile] = []
        for source in sources:
            f = source.file
            row = now.get(f.path)
            if (
                row is not None
                and row[:2] == (f.size, f.etag)
                and row[2] not in (self.listed.get(f.path), self.summary.load_id)
            ):
                source.skip()
                elsewhere.append(f)
            else:
                keep.append(source)
        return keep, elsewhere

    def _flush(
        self,
        sink: SqlSink,
        contested: Callable[[pl.DataFrame], pl.Series] | None,
        pending: list[Piece],
        table_counts: dict[str, Counts],
        casts: CastCounts,
        zones: dict[str, int],
        dups: dict[str, int],
    ) -> None:
        """Write one chunk of pieces (in latest-wins order); add to the batch's counters."""
        entity = self.entity
        records = pl.concat([p.records for p in pending], how="vertical_relaxed")
        latest = records.select(pl.struct(entity.key_names).is_last_distinct()).to_series()
        if not latest.all():
            # the same key in two files of the chunk: keep the latest record
            dropped = records.filter(~latest).group_by("_source_file").len()
            for path, n in dropped.iter_rows():
                dups[path] += n
            records = records.filter(latest)
        # the pieces come untransformed (see read_file): one transform for the whole chunk
        core, piece_casts = transform_records(entity, records, self.ctx)
        self._expansion.measure(
            sum(p.text_bytes for p in pending),
            records.estimated_size() + sum(frame.estimated_size() for frame in core.values()),
        )
        for col, n in piece_casts.items():
            casts[col] += n
        count_zone_fallbacks(entity, records, zones)
        try:
            written = sink.write_chunk(entity, self._stg(records), core, contested)
        except Exception as e:
            if is_data_error(e):
                raise _BadChunk(records, e) from e
            raise
        for table, counts in written.items():
            table_counts[table].add(counts)

    def _manifest(self, outcomes: list[FileOutcome], rejects: pl.DataFrame, dups: dict[str, int]) -> pl.DataFrame:
        reject_counts = dict(rejects.group_by("path").len().iter_rows()) if rejects.height else {}
        rows = []
        for o in outcomes:
            n_rejects = int(reject_counts.get(o.file.path, 0))
            n_dups = dups.get(o.file.path, 0)
            rows.append(
                {
                    "path": o.file.path,
                    "entity": self.entity.name,
                    "run_id": o.file.run_id,
                    "ingestion_date": o.file.ingestion_date,
                    "size": o.file.size,
                    "etag": o.file.etag,
                    "lines_read": o.stats.lines_read,
                    "blank_lines": o.stats.blank_lines,
                    "rows_loaded": o.stats.lines_read - n_rejects - n_dups,
                    "duplicates": n_dups,
                    "rejects": n_rejects,
                    "partial": o.stats.partial,
                    "error": o.stats.error,
                    "load_id": self.summary.load_id,
                }
            )
        return pl.DataFrame(rows, schema=FILES.polars_schema())

    def _account(
        self,
        outcomes: list[FileOutcome],
        files_frame: pl.DataFrame,
        table_counts: dict[str, Counts],
        casts: CastCounts,
        zones: dict[str, int],
    ) -> None:
        s = self.summary
        s.files_loaded += len(outcomes)
        s.files_partial += [o.file.path for o in outcomes if o.stats.partial]
        s.lines_read += int(files_frame["lines_read"].sum())
        s.rows_loaded += int(files_frame["rows_loaded"].sum())
        s.duplicates += int(files_frame["duplicates"].sum())
        s.rejects += int(files_frame["rejects"].sum())
        for table, counts in table_counts.items():
            s.tables.setdefault(table, Counts()).add(counts)
        add_cast_failures(s, casts)
        for name, n in zones.items():
            s.zone_fallbacks[name] = s.zone_fallbacks.get(name, 0) + n
        self.progress.advance(
            s.entity,
            files=len(outcomes),
            records=int(files_frame["lines_read"].sum()),
            rejects=int(files_frame["rejects"].sum()),
            bytes=sum(o.file.size for o in outcomes),
        )


@contextlib.contextmanager
def _recorded(sink: SqlSink, entity: Entity, summary: Summary, command: str, settings: Settings) -> Iterator[None]:
    """Keep the load on record in ``evo_meta.runs``: ``running`` from the start (with this host
    and pid, its session holding the load's lock), then its outcome and counts whatever happens.

    Loads of the entity left ``running`` by a process that is gone are marked ``interrupted`` first.
    """
    sink.mark_interrupted(entity.name)
    row: dict[str, Any] = {
        "load_id": summary.load_id,
        "entity": entity.name,
        "command": command,
        "status": "running",
        "started_at": dt.datetime.now(dt.UTC),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    started = time.perf_counter()
    with sink.holding_load(summary.load_id, entity.name):
        sink.record_load(row)
        error: BaseException | None = None
        try:
            yield
        except BaseException as e:
            error = e
            raise
        finally:
            summary.seconds = time.perf_counter() - started
            if error is not None:
                summary.status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
                text = str(error) if isinstance(error, EvoFramesError) else f"{type(error).__name__}: {error}"
                summary.error = redact(text)[:2000]
            elif summary.error:
                summary.status = "failed"
            elif summary.bad_ratio > settings.max_bad_ratio:
                summary.status = "partial"
            counted = summary.counted
            row.update(
                status=summary.status,
                finished_at=dt.datetime.now(dt.UTC),
                files=summary.files_loaded,
                lines_read=summary.lines_read,
                inserted=counted.inserted,
                updated=counted.updated,
                unchanged=counted.unchanged,
                rejects=summary.rejects,
                seconds=round(summary.seconds, 2),
                error=summary.error,
            )
            try:
                sink.rollback()
                sink.record_load(row)
            except EvoFramesError as e:  # the load's own error is the one to report
                log.warning(
                    "could not record the end of load %s of %s: %s",
                    summary.load_id,
                    entity.name,
                    redact(str(e)),
                    exc_info=log.isEnabledFor(logging.INFO),  # the traceback with --verbose only
                )


def add_cast_failures(summary: Summary, casts: CastCounts) -> None:
    """Add per-file cast failure counts to the summary's per-column totals (``table.column``)."""
    for (_, table, column), n in casts.items():
        name = f"{table}.{column}"
        summary.cast_failures[name] = summary.cast_failures.get(name, 0) + n


def run_entity(
    sink: SqlSink,
    entity: Entity,
    settings: Settings,
    *,
    load_id: str,
    run_id: str | None = None,
    since: dt.date | None = None,
    reload: bool = False,
    command: str = "run",
    progress: Progress | None = None,
) -> Summary:
    """Load the selected bronze files of one entity; see the module docstring.

    The load is recorded in ``evo_meta.runs`` whatever its outcome; a lake without files of the
    entity makes it ``failed`` (``summary.error`` says where it looked), and so does a ``run_id``
    or ``since`` that matches none of its files (the error lists the nearest run ids).

    Each batch re-checks the manifest under its files' locks, so a concurrent load of the entity
    never loads a file twice (see :meth:`Loader._not_loaded_meanwhile`).
    """
    summary = Summary(entity=entity.name, target=sink.display, load_id=load_id)
    sink.ensure_tables([entity])
    with _recorded(sink, entity, summary, command, settings):
        files, summary.problems = lakes.list_files(
            settings.lake, entity.name, prefix=settings.lake_prefix, storage_options=storage_options(settings.lake)
        )
        summary.files_found = len(files)
        if not files:
            summary.error = (
                f"no bronze files for {entity.name} under {redact(settings.lake)}/{settings.lake_prefix}/"
                f"entity={entity.name}"
            )
        elif (run_id is not None or since is not None) and not any(lakes.matches(f, run_id, since) for f in files):
            asked = " and ".join(
                x for x in (f"--run-id {run_id}" if run_id else "", f"--since {since}" if since else "") if x
            )
            summary.error = lakes.shown(
                f"no bronze file of {entity.name} matches {asked}; the nearest runs in the lake: "
                + ", ".join(lakes.nearest_runs(files, run_id))
            )
        manifest = sink.manifest(entity.name)
        selected, summary.files_skipped = lakes.select_files(
            files,
            loaded={path: (size, etag) for path, (size, etag, _) in manifest.items()},
            run_id=run_id,
            since=since,
            reload=reload,
        )
        for problem in summary.problems:
            log.warning("%s", problem)
        deferred = sink.defer_indexes(entity.tables) if selected else []
        progress = progress or Progress()
        progress.start(entity.name, files=len(selected), bytes=sum(f.size for f in selected))
        try:
            writers = (settings.writers or sink.default_writers()) if sink.dialect.parallel_writers else 1
            loader = Loader(sink, entity, settings, summary, progress)
            loader.listed = {path: load for path, (_, _, load) in manifest.items()}
            loader.load(selected, writers=writers)
            summary.problems += zone_problems(entity, summary, settings.source_timezone)
            if selected:
                drift.record(sink, entity, load_id)
        finally:
            progress.finish(entity.name)
            try:
                sink.rollback()
                sink.build_indexes(deferred)
            except EvoFramesError as e:  # the next run's ensure_tables builds them
                log.warning(
                    "could not build the deferred indexes of %s: %s",
                    entity.name,
                    redact(str(e)),
                    exc_info=log.isEnabledFor(logging.INFO),  # the traceback with --verbose only
                )
    return summary


def transform_entity(
    sink: SqlSink,
    entity: Entity,
    settings: Settings,
    *,
    load_id: str,
    full_refresh: bool,
    progress: Progress | None = None,
) -> Summary:
    """STG → CORE without reading the lake: re-derive CORE rows from ``raw_data``.

    Incremental: only keys whose CORE parent row is missing or older than the STG row. With
    ``full_refresh``: rebuild every CORE table of the entity into a shadow table, index it once,
    and swap it in atomically, so readers never see an empty table. Recorded in ``evo_meta.runs``
    like a run; an empty STG table makes it ``failed``, naming ``evo-frames run``.
    """
    summary = Summary(entity=entity.name, target=sink.display, load_id=load_id, source="stg")
    sink.ensure_tables([entity])
    with _recorded(sink, entity, summary, "transform", settings):
        if not sink.query(f"SELECT 1 FROM {qt(entity.stg)} LIMIT 1").num_rows:
            summary.error = (
                f"{entity.stg.qualified} is empty: nothing to transform; load bronze first with "
                f"evo-frames run -e {entity.name}"
            )
            return summary
        _transform(sink, entity, settings, summary, full_refresh, progress or Progress())
    return summary


def _transform(
    sink: SqlSink, entity: Entity, settings: Settings, summary: Summary, full_refresh: bool, progress: Progress
) -> None:
    ctx = TransformContext(source_timezone=settings.source_timezone)
    if full_refresh:
        sink.begin_refresh(entity)
    progress.start(entity.name, records=int(sink.scalar(f"SELECT count(*) FROM {qt(entity.stg)}") or 0))
    for stg in sink.read_stg(entity, settings.chunk_rows, settings.chunk_bytes):
        lines = stg.select(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_source_line"), pl.col("raw_data").alias("raw")
        )
        decoded, _ = decode(lines, entity.record)
        lineage = stg.select(*LATEST_ORDER, "ingestion_date").with_row_index("_row")
        records = (
            decoded.rename({"_source_line": "_row"})
            .with_columns(pl.col("_row").cast(pl.UInt32))
            .join(lineage, on="_row", how="left")
            .drop("_row")
        )
        keyed = entity.keys(records.lazy(), ctx).collect().filter(pl.col("_key_error").is_null())
        core, casts = transform_records(entity, keyed, ctx)
        count_zone_fallbacks(entity, keyed, summary.zone_fallbacks)
        for table, c in sink.write_core(entity, keyed, core, shadow=full_refresh).items():
            summary.tables.setdefault(table, Counts()).add(c)
        sink.record_cast_failures(summary.load_id, entity.name, casts)
        sink.commit()
        add_cast_failures(summary, casts)
        summary.lines_read += stg.height
        summary.rows_loaded += keyed.height
        progress.advance(entity.name, records=stg.height)
    progress.finish(entity.name)
    if full_refresh:
        sink.finish_refresh(entity)
    summary.problems += zone_problems(entity, summary, settings.source_timezone)
