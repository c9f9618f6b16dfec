"""Decoding ahead of the load: each bronze file is read in a thread of its own, into pieces.

Shape::

    Prefetcher: at least ``workers`` files ahead, more while they total one chunk of text
      Feed (one thread per file, ≤ 2 pieces queued, ``workers`` decoding at once):
        read_file: gunzip → lines → JSON decode (all fields, or the key fields only) → keys and
      content hash; bad lines become rejects
    Source: a file of a batch, as the load sees it: Prefetched (its feed), or Direct (a replay,
      read in the load's own thread)

The pieces are not transformed here: the load transforms a chunk of them at once
(:mod:`evo_frames.checks`). When the target already holds rows of the entity, the pieces carry
only the key fields (:mod:`evo_frames.keyed`): the load decodes fully only the lines the target
finds new or changed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import polars as pl

from . import lake as lakes
from .keyed import content_hash, key_record
from .reader import CHUNK_BYTES, REJECT_SCHEMA, FileStats, decode, iter_lines, reject_duplicate_keys
from .spec import Entity, TransformContext

T = TypeVar("T")

#: gzip shrinks bronze JSON about this much: compressed bytes decoded ahead are worth this much text
GZIP_RATIO = 8
#: decoded bytes per byte of JSON text assumed until an entity's first chunk is measured (nested
#: records grow the most: members measured about 3x, entries about 2x)
_FIRST_EXPANSION = 6.0
#: chunks with less text than this do not update the measured expansion (fixed overheads dominate)
_MEASURE_FLOOR = 256 << 10


@dataclass
class Piece:
    """One decoded chunk of a file: records (keys, lineage, raw, content hash), untransformed, and
    rejected lines."""

    records: pl.DataFrame
    rejects: pl.DataFrame
    duplicates: int
    #: the text of the chunk's lines, rejected ones included
    text_bytes: int
    #: whether ``records`` hold every field of the record type, or only the key fields
    decoded: bool = True


def read_file(
    file: lakes.BronzeFile,
    entity: Entity,
    ctx: TransformContext,
    *,
    chunk_rows: int,
    options: dict[str, str],
    chunk_bytes: int | Callable[[], int] = CHUNK_BYTES,
    full: bool = True,
) -> tuple[Iterator[Piece], FileStats]:
    """Stream one bronze file as decoded, keyed pieces; ``stats`` is final once the iterator is exhausted.

    With ``full`` each line is decoded with the entity's record type (and lines holding a key
    twice in one object are rejected); without it, only the fields its key is made of
    (:func:`evo_frames.keyed.key_record`), with the same checks of lines that are not JSON
    objects: the load decodes the rest of the lines it writes.

    Runs in a decode thread, so that it overlaps the load. ``chunk_bytes`` is the text per chunk
    (a callable is asked before each chunk). The pieces are not transformed: the load transforms
    a whole chunk of pieces at once (:meth:`evo_frames.pipeline.Loader._flush`), since a transform query costs tens
    of milliseconds to plan whatever its rows (members: about 70 ms), which small files would
    pay once each.
    """
    stats = FileStats()
    dtype = entity.record if full else key_record(entity)

    def pieces() -> Iterator[Piece]:
        with lakes.reading(file.path), lakes.open_file(file.path, options) as fh:
            for lines, read_rejects in iter_lines(fh, stats=stats, chunk_lines=chunk_rows, chunk_bytes=chunk_bytes):
                records, decode_rejects = decode(lines, dtype)
                if full:
                    records, dup_rejects = reject_duplicate_keys(records)
                else:  # checked when the line is decoded fully, if it is written at all
                    dup_rejects = pl.DataFrame(schema=REJECT_SCHEMA)
                lineage = records.with_columns(
                    content_hash(),
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
                # latest wins inside the chunk; across chunks the consumer checks again (and, for key
                # fields only, inside it too: a line that fails the full decode must not win)
                latest = good.filter(pl.struct(entity.key_names).is_last_distinct()) if full else good
                yield Piece(
                    records=latest,
                    rejects=pl.concat(
                        [read_rejects, decode_rejects, dup_rejects, key_rejects.cast(pl.Schema(REJECT_SCHEMA))]
                    ),
                    duplicates=good.height - latest.height,
                    text_bytes=int(lines["raw"].str.len_bytes().sum()),
                    decoded=full,
                )

    return pieces(), stats


class Expansion:
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

    def measure(self, text_bytes: int, decoded_bytes: float) -> None:
        if text_bytes <= 0 or (self.factor is not None and text_bytes < _MEASURE_FLOOR):
            return
        with self._lock:
            self.factor = max(self.factor or 0.0, decoded_bytes / text_bytes)

    def text_bytes(self) -> int:
        return max(1, int(self.decoded_bytes / (self.factor or _FIRST_EXPANSION)))


class Feed(Generic[T]):
    """One stream of items (the pieces of a bronze file; the prepared chunks of a transform)
    produced in a background thread into a small bounded queue of ``depth`` items.

    ``slots`` bounds how many feeds decode at the same moment: a feed holds a slot only while it
    builds a piece, never while it waits for the consumer, so waiting feeds cost only their
    queued pieces and the decoding ones cannot block each other.
    """

    _DONE = object()

    def __init__(
        self, produce: Callable[[], tuple[Iterator[T], FileStats]], slots: threading.Semaphore, depth: int = 2
    ) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
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
        items: Iterator[T] = iter(())
        try:
            items, self.stats = self._produce()
            while True:
                with self._slots:
                    item = next(items, None)
                if item is None or not self._put(item):
                    break
            self._put(self._DONE)
        except BaseException as e:  # handed to the consumer, which raises it in its own thread
            self._put(e)
        finally:  # a cancelled generator lets go of what it holds (a file, a connection) here
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def pieces(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def cancel(self) -> None:
        self._cancel.set()


class Prefetcher:
    """Decodes files ahead of the load, in file order: at least ``workers`` files, and more while
    the files started ahead total at most ``ahead_bytes()`` (compressed), so that the next batch is
    decoded while the current one is in the database. Each file queues at most two pieces, which
    bounds memory whatever the file sizes."""

    def __init__(
        self,
        files: Sequence[lakes.BronzeFile],
        make: Callable[[lakes.BronzeFile], Feed[Piece]],
        workers: int,
        ahead_bytes: Callable[[], int],
    ):
        self._files = list(files)
        self._make = make
        self._workers = workers
        self._ahead_bytes = ahead_bytes
        self._feeds: dict[int, Feed[Piece]] = {}
        self._started: set[int] = set()
        # parallel writers take feeds from their own threads
        self._lock = threading.Lock()

    def feed(self, index: int) -> Feed[Piece]:
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


class Source:
    """One file of a batch: its pieces, then its stats (final once the pieces are exhausted)."""

    file: lakes.BronzeFile
    stats: FileStats

    def pieces(self) -> Iterator[Piece]:  # pragma: no cover - each kind implements it
        raise NotImplementedError

    def skip(self) -> None:  # pragma: no cover - each kind implements it
        """Never read this file: a concurrent load committed it."""
        raise NotImplementedError


class Prefetched(Source):
    """A file decoded ahead by the prefetcher; its feed is taken only when the load reaches it."""

    def __init__(self, file: lakes.BronzeFile, prefetch: Prefetcher, index: int) -> None:
        self.file, self._prefetch, self._index = file, prefetch, index

    def pieces(self) -> Iterator[Piece]:
        feed = self._prefetch.feed(self._index)
        yield from feed.pieces()
        assert feed.stats is not None
        self.stats = feed.stats

    def skip(self) -> None:
        self._prefetch.discard([self._index])


class Direct(Source):
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
