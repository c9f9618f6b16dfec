"""The load: discover files, decode them ahead in threads, and load batches of files into a sink.

Shape (DESIGN.md "How data flows")::

    list files → skip loaded ones → batches of ``batch_size`` files
    decode threads (``workers`` files ahead, each ≤ 2 chunks queued; :mod:`evo_frames.prefetch`):
        gunzip → lines → JSON decode → keys; bad lines become rejects
    load thread, one transaction per batch:
        chunks of ≤ ``chunk_rows`` records → latest-wins dedup → transforms and their checks
        (:mod:`evo_frames.checks`) → sink upserts → manifest rows + rejects → commit

This module holds the orchestration: the run recorded in ``evo_meta.runs`` with its deferred
indexes (:func:`run_entity`), the batches and their chunks (:class:`Loader`), and ``transform``
(:func:`transform_entity`).

A transient database error rolls the batch back, reconnects and replays it (re-reading its
files); everything else stops the run with the batch rolled back, so a rerun picks up exactly
the files that did not commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from . import drift
from . import lake as lakes
from .checks import NO_ZONE, CastCounts, count_zone_fallbacks, transform_records
from .config import Settings, storage_options
from .errors import EvoFramesError, redact
from .expr import LATEST_ORDER
from .prefetch import GZIP_RATIO, Direct, Expansion, Feed, Piece, Prefetched, Prefetcher, Source, read_file
from .progress import Progress
from .reader import REJECT_SCHEMA, FileStats, clip_raw, decode, reject_duplicate_keys
from .retry import is_data_error, with_retries
from .sinks import Counts, Probe, Sink
from .sinks.meta import FILES
from .spec import Entity, TransformContext

log = logging.getLogger("evo_frames")


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


def _owned(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy of a few rows that shares no buffer with the frame they were taken from.

    Polars' strings are views: a rejected line filtered out of a chunk keeps the whole chunk's
    text alive. A batch holds its rejects until it commits, so without the copy one bad line per
    chunk held every chunk of the batch (200,000 members in 4 files with 109 bad lines: +350 MiB).
    """
    return pl.DataFrame(frame.to_dict(as_series=False), schema=frame.schema)


def _empty_rejects() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECT_SCHEMA)


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


class _BatchKeys:
    """The keys a batch has written so far, each with the file of its latest line and what
    writing it did (:data:`_UNCHANGED`, :data:`_UPDATED` or :data:`_INSERTED`).

    A batch is written in chunks, and a key that a later chunk brings again was already written
    by an earlier one: the upsert lets the later line win, and this tells which file's earlier
    line lost, so that it counts as a duplicate there (its file's manifest row is written when
    the batch ends, so the count can still change), and what the key counts as in the tables'
    counts: once, as the most that happened to it in the batch (inserted, else updated, else
    unchanged), so that they add up to the rows loaded.
    """

    def __init__(self, key_names: Sequence[str]) -> None:
        self._keys = list(key_names)
        self._files: dict[str, int] = {}
        self._paths: list[str] = []
        # the key columns, the index of the file of each key's latest line, and its status
        self._seen: pl.DataFrame | None = None

    def replaced(self, records: pl.DataFrame) -> tuple[dict[str, int], pl.Series]:
        """Note the keys of a chunk of distinct keys: per file, how many of its earlier lines they
        replace, and per row, what writing its key's earlier line did (null: none in the batch).

        :meth:`settle` then takes what writing the rows did."""
        for path in records["_source_file"].unique(maintain_order=True):
            if path not in self._files:
                self._files[path] = len(self._paths)
                self._paths.append(path)
        chunk = records.select(
            *self._keys,
            pl.col("_source_file").replace_strict(self._files, return_dtype=pl.UInt32).alias("_file"),
            pl.lit(None, dtype=pl.Int8).alias("_status"),
        )
        none = pl.repeat(None, chunk.height, dtype=pl.Int8, eager=True)
        if self._seen is None:
            self._seen = chunk
            return {}, none
        keys = chunk.select(self._keys)
        hit = self._seen.join(keys, on=self._keys, how="semi", nulls_equal=True)
        earlier = none
        if hit.height:
            self._seen = self._seen.join(keys, on=self._keys, how="anti", nulls_equal=True)
            earlier = keys.join(
                hit.select(*self._keys, "_status"), on=self._keys, how="left", nulls_equal=True, maintain_order="left"
            )["_status"]
        self._seen = pl.concat([self._seen, chunk], rechunk=False)
        return {self._paths[i]: n for i, n in hit.group_by("_file").len().iter_rows()}, earlier

    def settle(self, keys: pl.DataFrame, earlier: pl.Series, status: pl.Series) -> Counts:
        """What writing the rows of ``keys`` did (a status per row; ``earlier`` as :meth:`replaced`
        returned it); returns the correction to add to the counts of the tables with one row per
        record, which counted each row by ``status``: a key an earlier chunk wrote counts once, as
        the most done to it in the batch."""
        assert self._seen is not None
        status = status.cast(pl.Int8)
        combined = pl.select(pl.max_horizontal(earlier, status)).to_series().cast(pl.Int8)
        update = keys.select(self._keys).with_columns(combined.alias("_status"))
        self._seen = self._seen.update(update, on=self._keys, how="left")
        again = earlier.is_not_null()
        if not again.any():
            return Counts()
        delta = {_UNCHANGED: 0, _UPDATED: 0, _INSERTED: 0}
        for e, later, c in zip(earlier.filter(again), status.filter(again), combined.filter(again), strict=True):
            delta[later] -= 1
            delta[e] -= 1
            delta[c] += 1
        return Counts(inserted=delta[_INSERTED], updated=delta[_UPDATED], unchanged=delta[_UNCHANGED])


#: what writing a row did, ordered so that the most of two is what a key written twice did
_UNCHANGED, _UPDATED, _INSERTED = 0, 1, 2


@dataclass
class _Batch:
    """What one batch has done so far, and the fully decoded lines waiting to be written."""

    seen: _BatchKeys
    contested: Callable[[pl.DataFrame], pl.Series] | None
    counts: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    casts: CastCounts = field(default_factory=lambda: defaultdict(int))
    zones: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dups: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    rejects: list[pl.DataFrame] = field(default_factory=list)
    #: decoded lines to write, latest-wins deduplicated, and what their keys' earlier lines did
    writes: list[pl.DataFrame] = field(default_factory=list)
    earlier: list[pl.Series] = field(default_factory=list)
    rows: int = 0
    text: int = 0
    _keys: pl.DataFrame | None = None

    def add(self, records: pl.DataFrame, earlier: pl.Series, text: int) -> None:
        self.writes.append(records)
        self.earlier.append(earlier)
        self.rows += records.height
        self.text += text
        self._keys = None

    def holds(self, keys: pl.DataFrame) -> bool:
        """Whether one of ``keys`` is waiting to be written."""
        if self._keys is None:
            self._keys = pl.concat([w.select(keys.columns) for w in self.writes])
        return keys.join(self._keys, on=keys.columns, how="semi", nulls_equal=True).height > 0

    def clear(self) -> None:
        self.writes, self.earlier, self.rows, self.text, self._keys = [], [], 0, 0, None


#: lines of a batch quarantined at the load stage: ``(path, line) -> reason``
Quarantine = dict[tuple[str, int], str]


def _halves(frame: pl.DataFrame) -> list[pl.DataFrame]:
    half = frame.height // 2
    return [frame.slice(0, half), frame.slice(half)]


class Loader:
    """Loads one entity's selected files into a sink; see the module docstring."""

    def __init__(
        self, sink: Sink, entity: Entity, settings: Settings, summary: Summary, progress: Progress | None = None
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
        self._expansion = Expansion(settings.piece_bytes)
        #: the same for a chunk of key-field pieces: the pieces plus the lines of it decoded fully
        #: and their CORE frames, so a reload whose lines are mostly unchanged writes few, large chunks
        self._keyed = Expansion(settings.piece_bytes)
        #: whether the decode threads decode every field of each line: when the target held no row
        #: of the entity as the load started, so the probe would find every line new (see
        #: :meth:`load`); else only the key fields, and the load decodes the lines it writes
        self._full = True

    def _text_bytes(self) -> int:
        """Text per chunk: what decodes to about ``piece_bytes`` (see :class:`~evo_frames.prefetch.Expansion`)."""
        return (self._expansion if self._full else self._keyed).text_bytes()

    def _read(self, file: lakes.BronzeFile) -> tuple[Iterator[Piece], FileStats]:
        return read_file(
            file,
            self.entity,
            self.ctx,
            chunk_rows=self._chunk_rows,
            options=self.options,
            chunk_bytes=self._text_bytes,
            full=self._full,
        )

    def load(self, files: Sequence[lakes.BronzeFile], writers: int = 1) -> None:
        """Load ``files`` (in latest-wins order) in batches of ``batch_size``, on ``writers``
        connections at once.

        Each batch is its own transaction with its own manifest rows, whichever writer takes it.
        With several writers, the batches of one run load at the same time and those of the next
        run start when all of them have committed (a batch spanning runs loads alone), so the
        batches are the same as with one writer. The guarded upsert (``Sink.write_chunk``)
        keeps the newest content whatever the commit order, and runs, where records are re-sent
        unchanged, still apply in order, so an unchanged re-send keeps naming the file that first
        brought its content, as with one writer.
        """
        if files:
            self._full = not self.sink.has_rows(self.entity.stg)
        size = self.settings.batch_size
        batches = [range(start, min(start + size, len(files))) for start in range(0, len(files), size)]
        slots = threading.Semaphore(self.settings.workers)
        # parallel writers share the read-ahead and the chunk budget, so memory does not grow with them
        share = max(1, writers)
        self._chunk_rows = max(1, self.settings.chunk_rows // share)
        self._expansion.decoded_bytes = max(1, self.settings.piece_bytes // share)
        self._keyed.decoded_bytes = self._expansion.decoded_bytes
        # beyond the workers' files, decode ahead about one chunk more (as compressed bytes)
        prefetch = Prefetcher(
            files,
            lambda f: Feed(lambda: self._read(f), slots),
            max(1, self.settings.workers // share),
            lambda: self._text_bytes() // GZIP_RATIO,
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
        self, files: Sequence[lakes.BronzeFile], batches: list[range], prefetch: Prefetcher, sinks: list[Sink]
    ) -> None:
        """Writer threads, each on its own connection, take the next batch until none is left."""
        sinks = sinks[: len(batches)]
        claims = _Claims(self.entity.key_names)
        todo = iter(batches)
        take = threading.Lock()
        failed = threading.Event()

        def write(sink: Sink) -> None:
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
        sink: Sink,
        files: Sequence[lakes.BronzeFile],
        batch: range,
        prefetch: Prefetcher,
        claims: _Claims | None,
    ) -> None:
        # records whose write failed with a data error: kept across replays of the batch
        quarantined: Quarantine = {}
        fresh = [True]

        def attempt() -> None:
            while True:
                if fresh[0]:
                    # the first try takes the files decoded ahead, each when the load reaches it
                    sources: list[Source] = [Prefetched(files[i], prefetch, i) for i in batch]
                else:
                    # a replay re-reads the batch in this thread; what was decoded ahead is dropped
                    prefetch.discard(batch)
                    sources = [Direct(files[i], self._read) for i in batch]
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

    def _isolate(self, sink: Sink, records: pl.DataFrame, error: Exception) -> Quarantine:
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

    def _try_write(self, sink: Sink, records: pl.DataFrame) -> Exception | None:
        """Write ``records`` in a transaction of their own and roll it back; the data error, if any."""
        sink.rollback()
        try:
            core, _ = transform_records(self.entity, records, self.ctx)
            sink.write_chunk(self.entity, self._stg(records), lambda: core)
            return None
        except Exception as e:
            if is_data_error(e):
                return e
            raise
        finally:
            sink.rollback()

    def _stg(self, records: pl.DataFrame) -> pl.DataFrame:
        """The STG rows of deduplicated records: the raw line as ``raw_data``, with the content
        hash it was given as it was read (:func:`~evo_frames.prefetch.read_file`)."""
        return records.rename({"raw": "raw_data"})

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
                "raw": [clip_raw(raw.encode("utf-8")) for raw in gone["raw"]],
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
        self, sink: Sink, sources: list[Source], claims: _Claims | None, quarantined: Quarantine | None = None
    ) -> None:
        started = time.perf_counter()
        owner = object()
        contested = claims.contested(owner) if claims else None
        try:
            sink.begin()
            sources, elsewhere = self._not_loaded_meanwhile(sink, sources)
            outcomes: list[FileOutcome] = []
            pending: list[Piece] = []
            pending_rows = pending_text = 0
            batch = _Batch(_BatchKeys(self.entity.key_names), contested)
            for source in sources:
                file = source.file
                for piece in source.pieces():
                    if quarantined:
                        piece = self._without(piece, file.path, quarantined)
                    batch.dups[file.path] += piece.duplicates
                    if piece.rejects.height:
                        batch.rejects.append(_owned(piece.rejects.with_columns(pl.lit(file.path).alias("path"))))
                    if piece.records.height:
                        pending.append(piece)
                        pending_rows += piece.records.height
                        pending_text += piece.text_bytes
                    if pending_rows >= self._chunk_rows or pending_text >= self._text_bytes():
                        self._flush(sink, batch, pending)
                        pending, pending_rows, pending_text = [], 0, 0
                outcomes.append(FileOutcome(file=file, stats=source.stats))
            if pending:
                self._flush(sink, batch, pending)
            self._write(sink, batch)
            rejects, dups, casts = batch.rejects, batch.dups, batch.casts
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
            self._account(outcomes, files_frame, batch.counts, batch.casts, batch.zones)
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

    def _not_loaded_meanwhile(self, sink: Sink, sources: list[Source]) -> tuple[list[Source], list[lakes.BronzeFile]]:
        """Lock the batch's files for this transaction and drop those a concurrent load of the
        entity committed since they were selected (the same size and etag, another load's row).

        A concurrent load of the same files waits here until this batch commits, then skips them.
        """
        sink.lock(self.entity, [s.file.path for s in sources])
        now = sink.manifest(self.entity.name, [s.file.path for s in sources])
        keep: list[Source] = []
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

    def _flush(self, sink: Sink, batch: _Batch, pending: list[Piece]) -> None:
        """Write one chunk of pieces (in latest-wins order); add to the batch's counters and rejects.

        Pieces of the key fields only (see :func:`~evo_frames.prefetch.read_file`) are probed
        first: only the lines the target finds new or changed are decoded fully; they wait in
        ``batch.writes`` until about a chunk of them is decoded (or the batch ends, or a later
        chunk brings one of their keys again), then are transformed and written at once
        (:meth:`_write`). A line that fails the full decode is rejected before the latest line of
        its key is chosen. A key that an earlier chunk of the batch wrote counts the earlier line
        as a duplicate.
        """
        entity = self.entity
        records = pl.concat([p.records for p in pending], how="vertical_relaxed")
        text = sum(p.text_bytes for p in pending)
        decoded = pending[0].decoded
        if decoded:
            records = records.with_columns(_todo=pl.lit(True), _is_new=pl.lit(None, dtype=pl.Boolean))
            full = records
        else:
            if batch.writes and batch.holds(records.select(entity.key_names)):
                # a later line of a key waiting to be written: its probe must see the earlier one
                self._write(sink, batch)
            records, full = self._decode_changed(sink, records, batch.rejects)
            self._keyed.measure(text, records.estimated_size() + full.estimated_size())
        latest = records.select(pl.struct(entity.key_names).is_last_distinct()).to_series()
        if not latest.all():
            # the same key in two files of the chunk: keep the latest record
            dropped = records.filter(~latest).group_by("_source_file").len()
            for path, n in dropped.iter_rows():
                batch.dups[path] += n
            records = records.filter(latest)
        replaced, earlier = batch.seen.replaced(records)
        for path, n in replaced.items():
            batch.dups[path] += n
        todo = records["_todo"]
        # the tables with one row per record count every line, written or not
        skipped = records.filter(~todo)
        if skipped.height:
            correction = batch.seen.settle(
                skipped.select(entity.key_names),
                earlier.filter(~todo),
                pl.repeat(_UNCHANGED, skipped.height, dtype=pl.Int8, eager=True),
            )
            for table in self._record_tables():
                batch.counts[table].add(Counts(unchanged=skipped.height))
                batch.counts[table].add(correction)
        if decoded:
            batch.add(records.drop("_todo", "_is_new"), earlier, text)
            self._write(sink, batch)
            return
        chosen = records.filter(todo).select("_ki", "_is_new").with_columns(earlier.filter(todo).alias("_earlier"))
        if chosen.height:
            write = chosen.join(full, on="_ki", how="left", maintain_order="left").drop("_ki")
            batch.add(write.drop("_earlier"), write["_earlier"], int(write["raw"].str.len_bytes().sum()))
        if batch.text >= self._expansion.text_bytes() or batch.rows >= self._chunk_rows:
            self._write(sink, batch)

    def _write(self, sink: Sink, batch: _Batch) -> None:
        """Transform and write the lines waiting in ``batch.writes``; add to the batch's counters."""
        if not batch.writes:
            return
        entity = self.entity
        write = pl.concat(batch.writes, how="vertical_relaxed")
        earlier = pl.concat(batch.earlier)
        text = batch.text
        batch.clear()
        probe = None
        if "_is_new" in write.columns:
            is_new = write["_is_new"]
            probe = Probe(new=is_new.arg_true(), changed=(~is_new).arg_true())
            write = write.drop("_is_new")
        count_zone_fallbacks(entity, write, batch.zones)
        # one transform for the whole chunk's lines to write (see read_file), in a thread of its
        # own while the probe and STG, which need none of it, are written
        with ThreadPoolExecutor(1, thread_name_prefix="evo-frames-transform") as pool:
            transformed = pool.submit(transform_records, entity, write, self.ctx)
            try:
                written = sink.write_chunk(
                    entity, self._stg(write), lambda: transformed.result()[0], batch.contested, probe
                )
            except Exception as e:
                if transformed.done() and transformed.exception() is e:
                    raise  # the transform failed, not the write
                if is_data_error(e):
                    raise _BadChunk(write, e) from e
                raise
        core, piece_casts = transformed.result()
        self._expansion.measure(text, write.estimated_size() + sum(frame.estimated_size() for frame in core.values()))
        for col, n in piece_casts.items():
            batch.casts[col] += n
        for table, counts in written.counts.items():
            batch.counts[table].add(counts)
        status = pl.repeat(_UNCHANGED, write.height, dtype=pl.Int8, eager=True)
        status = status.scatter(written.changed, _UPDATED).scatter(written.new, _INSERTED)
        correction = batch.seen.settle(write.select(entity.key_names), earlier, status)
        for table in self._record_tables():
            batch.counts[table].add(correction)

    def _record_tables(self) -> list[str]:
        """The tables with one row per record: STG and the CORE tables that are no one's children."""
        return [t.qualified for t in (self.entity.stg, *self.entity.core) if not t.parent_key]

    def _decode_changed(
        self, sink: Sink, records: pl.DataFrame, rejects: list[pl.DataFrame]
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Probe a chunk of key-decoded ``records`` and decode fully the lines new or changed.

        Returns the records that were not rejected, numbered (``_ki``) and flagged (``_todo``:
        new or changed; ``_is_new``), and the fully decoded ones, by ``_ki``; the lines that fail
        the full decode go to ``rejects``, as they would have when read.
        """
        entity = self.entity
        records = records.with_row_index("_ki")
        probe = sink.probe_chunk(entity, records)
        todo = pl.concat([probe.new, probe.changed]).sort()
        records = records.with_columns(
            _todo=pl.col("_ki").is_in(todo.implode()), _is_new=pl.col("_ki").is_in(probe.new.implode())
        )
        changed = records.filter(pl.col("_todo"))
        if not changed.height:
            return records, changed
        lines = changed.select(pl.col("_ki").cast(pl.Int64).alias("_source_line"), "raw")
        decoded, bad = decode(lines, entity.record)
        decoded, duplicated = reject_duplicate_keys(decoded)
        bad = pl.concat([bad, duplicated])
        decoded = decoded.drop("raw").rename({"_source_line": "_ki"}).with_columns(pl.col("_ki").cast(pl.UInt32))
        fields = [f.name for f in entity.record.fields]
        full = changed.drop(*(c for c in fields if c in changed.columns), "_todo", "_is_new").join(
            decoded, on="_ki", how="inner", maintain_order="left"
        )
        if bad.height:
            gone = bad["line"].cast(pl.UInt32)
            where = changed.select(pl.col("_ki").cast(pl.Int64).alias("line"), "_source_file", "_source_line")
            rejects.append(
                _owned(
                    bad.join(where, on="line", how="left", maintain_order="left").select(
                        pl.col("_source_line").alias("line"),
                        "stage",
                        "reason",
                        "raw",
                        "raw_length",
                        pl.col("_source_file").alias("path"),
                    )
                )
            )
            records = records.filter(~pl.col("_ki").is_in(gone.implode()))
        return records, full

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
def _recorded(sink: Sink, entity: Entity, summary: Summary, command: str, settings: Settings) -> Iterator[None]:
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


@contextlib.contextmanager
def _indexes_deferred(sink: Sink, entity: Entity, defer: bool) -> Iterator[None]:
    """Drop the secondary indexes of the entity's empty tables for the load (if ``defer``), and build
    them once at its end, whatever happens; a failed build is left to the next run's
    ``ensure_tables``."""
    deferred = sink.defer_indexes(entity.tables) if defer else []
    try:
        yield
    finally:
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


@contextlib.contextmanager
def _shown(progress: Progress, entity: str, *, files: int, bytes: int) -> Iterator[None]:
    """``entity`` on the progress display from start to finish (or stop)."""
    progress.start(entity, files=files, bytes=bytes)
    try:
        yield
    finally:
        progress.finish(entity)


def add_cast_failures(summary: Summary, casts: CastCounts) -> None:
    """Add per-file cast failure counts to the summary's per-column totals (``table.column``)."""
    for (_, table, column), n in casts.items():
        name = f"{table}.{column}"
        summary.cast_failures[name] = summary.cast_failures.get(name, 0) + n


def run_entity(
    sink: Sink,
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
        progress = progress or Progress()
        with (
            _indexes_deferred(sink, entity, defer=bool(selected)),
            _shown(progress, entity.name, files=len(selected), bytes=sum(f.size for f in selected)),
        ):
            writers = (settings.writers or sink.default_writers()) if sink.dialect.parallel_writers else 1
            loader = Loader(sink, entity, settings, summary, progress)
            loader.listed = {path: load for path, (_, _, load) in manifest.items()}
            loader.load(selected, writers=writers)
            summary.problems += zone_problems(entity, summary, settings.source_timezone)
            if selected:
                drift.record(sink, entity, load_id)
    return summary


def transform_entity(
    sink: Sink,
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
        if not sink.has_rows(entity.stg):
            summary.error = (
                f"{entity.stg.qualified} is empty: nothing to transform; load bronze first with "
                f"evo-frames run -e {entity.name}"
            )
            return summary
        _transform(sink, entity, settings, summary, full_refresh, progress or Progress())
    return summary


def _transform(
    sink: Sink, entity: Entity, settings: Settings, summary: Summary, full_refresh: bool, progress: Progress
) -> None:
    ctx = TransformContext(source_timezone=settings.source_timezone)
    if full_refresh:
        sink.begin_refresh(entity)
    progress.start(entity.name, records=sink.count_rows(entity.stg))

    def prepared() -> Iterator[tuple[int, pl.DataFrame, dict[str, pl.DataFrame], CastCounts]]:
        """STG chunks read, decoded, keyed and transformed: (lines, keyed records, CORE frames, casts)."""
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
            yield (stg.height, keyed, *transform_records(entity, keyed, ctx))

    # the next chunk is read and transformed in a thread of its own while this one is written
    # (on another connection: read_stg reads through one of its own)
    ahead: Feed[tuple[int, pl.DataFrame, dict[str, pl.DataFrame], CastCounts]]
    ahead = Feed(lambda: (prepared(), FileStats()), threading.Semaphore(1), depth=1)
    try:
        for lines, keyed, core, casts in ahead.pieces():
            count_zone_fallbacks(entity, keyed, summary.zone_fallbacks)
            for table, c in sink.write_core(entity, keyed, core, shadow=full_refresh).items():
                summary.tables.setdefault(table, Counts()).add(c)
            sink.record_cast_failures(summary.load_id, entity.name, casts)
            sink.commit()
            add_cast_failures(summary, casts)
            summary.lines_read += lines
            summary.rows_loaded += keyed.height
            progress.advance(entity.name, records=lines)
    finally:
        ahead.cancel()
    progress.finish(entity.name)
    if full_refresh:
        sink.finish_refresh(entity)
    summary.problems += zone_problems(entity, summary, settings.source_timezone)
