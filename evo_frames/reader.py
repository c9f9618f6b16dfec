"""Streaming reader for bronze files: gzipped (or plain) JSON lines to Polars frames, bad lines quarantined.

Two steps, both bounded in memory and both returning their rejects as frames with :data:`REJECT_SCHEMA`
(ready for ``evo_meta.rejects``) instead of raising:

* :func:`iter_lines` streams a binary file object (local file, fsspec/Azure blob): gunzips it block by
  block (multi-member gzip, or plain text when there is no gzip magic), splits lines, strips a leading
  BOM and CRLF endings, drops blank lines while keeping *physical* line numbers, and yields frames of at
  most ``chunk_lines`` lines. A line with invalid UTF-8 is rejected (stage ``read``). A truncated or
  corrupt gzip stream yields every complete line before the break, rejects the incomplete fragment,
  marks :class:`FileStats` ``partial`` and stops without raising.
* :func:`decode` turns ``(_source_line, raw)`` into typed columns with ``str.json_decode(dtype)`` over
  ~1 MiB slices. Lines that are not JSON objects, or that PostgreSQL JSONB cannot store (``\\u0000``,
  unpaired UTF-16 surrogate escapes), are rejected up front by vectorised checks (stage ``decode``). A
  slice whose decode fails is halved level by level until the failing lines sit in small frames; only
  those lines are parsed in Python: malformed JSON is rejected, a valid object whose values drifted from
  the declared types is kept, coerced to the dtype as the fast path would (see :func:`_coercer`) and
  re-decoded, with its original ``raw``.

A damaged gzip member is often noticed only at its CRC check, after the damaged data was decompressed:
lines already yielded from it are not taken back, so :attr:`FileStats.error` says so and the caller
decides (truncation, the common case, damages nothing before the break).

Polars facts this module relies on (measured with polars 2.1.0, see ``tests/unit/test_reader.py``):

* ``json_decode`` joins the rows into one JSON array, so a line holding two values
  (``{"a":1},{"a":2}``) decodes to *two* rows and an empty line to none: the row count is checked and
  every line must start with ``{``, so rows can never shift against ``raw``.
* A String leaf accepts numbers and booleans as text (``1.0`` -> ``"1"``, ``1e-7`` -> ``"0.0000001"``,
  ``true`` -> ``"true"``); an object or array there fails the whole decode. A scalar where a List is
  declared becomes a one-element list; an object there fails. Integers beyond the Int64 range become null.
  ``1e400`` (valid JSON, beyond float range) fails the whole decode.
* Duplicate keys in one object: Polars keeps the **first** value, at every nesting level (DuckDB's JSON
  functions agree; PostgreSQL ``jsonb`` keeps the **last**). The fallback path decodes the same way, so a
  typed column never depends on which path a line took, but ``raw_data::jsonb`` on PostgreSQL may show
  the other value for such (rare, malformed-in-spirit) records.
* ``\\ud800`` (lone high surrogate) silently decodes to ``"\\x00"``, which PostgreSQL text cannot store,
  hence the up-front surrogate check.

Benchmark (2 vCPU VM shared with other jobs, so best of 3; ``POLARS_MAX_THREADS=1``; the file is read
with ``iter_lines`` and every chunk passed to ``decode``; entries-like records, 16 fields declared
``pl.String``, ~410 bytes a line, half of them ``ensure_ascii``):

=====================================================  ==============  ===========================
file                                                   records/s       peak RSS (ru_maxrss)
=====================================================  ==============  ===========================
200k lines, 82 MB (4.9 MB gz)                          250k (0.8 s)    390 MB
same, ``iter_lines`` only                              790k lines/s    270 MB
2.5M lines, 1.0 GB (61 MB gz)                          253k            411 MB
5M lines, 2.05 GB, two gzip members                    244k            428 MB (``iter_lines`` only: 300 MB)
200k lines, 0.1 % malformed + 0.1 % drifted            66k-94k         460 MB
200k lines, 10 % drifted (object at a String field)    30k             445 MB
=====================================================  ==============  ===========================

Memory is flat in the file size (bounded by ``chunk_lines`` and ``read_bytes``). Nested records decode
at json_decode's own speed: synthetic members (3.4 kB, lists of structs) ~23k records/s, ~80 MB/s.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:  # a dtype or a dtype class, as Polars gives a struct field's dtype
    from polars._typing import PolarsDataType

__all__ = [
    "CHUNK_BYTES",
    "MAX_LINE_BYTES",
    "MAX_REJECT_RAW",
    "REJECT_SCHEMA",
    "FileStats",
    "decode",
    "iter_lines",
]

MAX_REJECT_RAW = 65536  # bytes of a rejected line kept in evo_meta.rejects; raw_length keeps the full length
CHUNK_BYTES = 32 << 20  # text per chunk at most, whatever chunk_lines says (large nested records)
MAX_LINE_BYTES = 256 << 20  # a longer line is rejected and skipped instead of being buffered whole

REJECT_SCHEMA = {
    "line": pl.Int64,
    "stage": pl.String,
    "reason": pl.String,
    "raw": pl.String,
    "raw_length": pl.Int64,
}
_LINES_SCHEMA = {"_source_line": pl.Int64, "raw": pl.String}

# kept of an over-long line: what MAX_REJECT_RAW keeps plus room to find a UTF-8 character boundary
_HEAD_BYTES = MAX_REJECT_RAW + 3
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_JSON_SPACE = " \t\r"
# raw bytes per json_decode call: ~2x faster per line, with far less scratch memory, than 100k-line calls;
# 1 MiB measured best for flat entries and nested members/sales alike (256 KiB and 2 MiB 5-15 % slower,
# 32 MiB 3x slower) and keeps the bisection of a failing slice cheap
_DECODE_SLICE_BYTES = 1 << 20
# bisection stops at frames this small, or at a level of at least _DENSE_LEVEL frames most of which fail;
# their lines are parsed in Python (see _bisect)
_BISECT_FLOOR = 16
_DENSE_LEVEL = 8
# decompressed output per zlib call, as a multiple of read_bytes: bounds memory on highly compressible data
_INFLATE_RATIO = 2
# rows worth a closer look: escapes of NUL or of UTF-16 surrogates (rare, so the exact check runs on few rows)
_SUSPECT_ESCAPE = r"\\u(?:0000|[dD][89a-fA-F])"
# JSON escapes left to right, so an escaped backslash is consumed before what follows it ("\\u0000" is text);
# a surrogate pair is one token, so a surrogate escape standing alone as a token is unpaired
_ESCAPE_TOKEN = r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\[^u]"
_LONE_SURROGATE = r"^\\u[dD][89a-fA-F][0-9a-fA-F]{2}$"
# polars raises ComputeError for bad JSON (other PolarsErrors for some dtypes) and may panic on odd input
_DECODE_ERRORS: tuple[type[BaseException], ...] = (pl.exceptions.PolarsError, pl.exceptions.PanicException)


@dataclass
class FileStats:
    """Counters of one file, filled in as it is read; final once the iterator is exhausted."""

    lines_read: int = 0  # non-blank physical lines seen (good + rejected at read/decode)
    blank_lines: int = 0
    bytes_compressed: int = 0
    bytes_uncompressed: int = 0
    partial: bool = False  # gzip stream truncated/corrupt: complete lines before the break were yielded
    error: str | None = None  # what went wrong for partial files, naming the byte offset


class _StreamBroken(Exception):
    """The gzip stream cannot be read further; the message names the compressed byte offset."""


# --------------------------------------------------------------------------------------------------------
# part 1: bytes -> lines
# --------------------------------------------------------------------------------------------------------


def iter_lines(
    fileobj: BinaryIO,
    *,
    stats: FileStats,
    chunk_lines: int = 100_000,
    read_bytes: int = 4 << 20,
    max_line_bytes: int = MAX_LINE_BYTES,
    chunk_bytes: int | Callable[[], int] = CHUNK_BYTES,
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Stream the lines of a gzipped or plain UTF-8 JSON-lines file.

    Args:
        fileobj: binary file object positioned at the start of the file; only ``read(n)`` is used.
        stats: counters updated while reading (final once the iterator is exhausted).
        chunk_lines: most lines per yielded frame.
        chunk_bytes: most text per yielded frame (a frame may exceed it by one read block); a
            callable is asked again for each frame, so a caller that measures how much its frames
            grow once decoded can size the next ones by their decoded size.
        read_bytes: bytes read from ``fileobj`` per call; at most twice that is inflated at a time.
        max_line_bytes: a line longer than this is rejected and skipped rather than buffered.

    Yields:
        ``(lines, rejects)``: ``lines`` has ``_source_line`` Int64 (1-based physical line number in the
        decompressed file, blank lines counted) and ``raw`` String (without BOM or trailing ``\\r``;
        blank and whitespace-only lines dropped); ``rejects`` has :data:`REJECT_SCHEMA`, stage ``read``.
        Either frame may be empty, never both.

    Raises:
        ValueError: if ``chunk_lines``, ``read_bytes`` or ``max_line_bytes`` is not positive.
        OSError: errors of ``fileobj.read`` itself (storage faults are the caller's to retry).
    """
    if chunk_lines < 1 or read_bytes < 1 or max_line_bytes < 1:
        raise ValueError("chunk_lines, read_bytes and max_line_bytes must be positive")
    chunker = _Chunker(chunk_lines, max_line_bytes, stats, chunk_bytes)
    carry: list[bytes] = []  # pieces of the current line, which has no newline yet
    carry_len = 0
    next_line = 1  # physical number of the line that starts the carry
    skipped: tuple[bytes, int] | None = None  # (head, length so far) of an over-long line being skipped
    try:
        for piece in _inflate(fileobj, stats, read_bytes):
            stats.bytes_uncompressed += len(piece)
            while piece:
                if skipped is not None:
                    nl = piece.find(b"\n")
                    part = memoryview(piece)[: len(piece) if nl < 0 else nl]
                    head, length = skipped
                    skipped = (head + bytes(part[: _HEAD_BYTES - len(head)]), length + len(part))
                    if nl < 0:
                        break
                    chunker.reject(_too_long(next_line, *skipped, max_line_bytes))
                    skipped, next_line, piece = None, next_line + 1, piece[nl + 1 :]
                    continue
                nl = piece.rfind(b"\n")
                if nl < 0:
                    carry.append(piece)
                    carry_len += len(piece)
                    if carry_len > max_line_bytes:
                        skipped = (_head(carry), carry_len)
                        carry, carry_len = [], 0
                    break
                # a memoryview spares copying the block when no partial line is carried over
                block = b"".join([*carry, memoryview(piece)[:nl]]) if carry_len else memoryview(piece)[:nl]
                carry, carry_len = [piece[nl + 1 :]], len(piece) - nl - 1
                if next_line == 1 and bytes(block[: len(_BOM)]) == _BOM:
                    block = block[len(_BOM) :]
                next_line = chunker.block(block, next_line)
                yield from chunker.full()
                break
    except _StreamBroken as exc:
        stats.partial, stats.error = True, str(exc)
    if skipped is not None:
        chunker.reject(_too_long(next_line, skipped[0], skipped[1], max_line_bytes))
    elif carry_len:
        fragment = b"".join(carry)
        if next_line == 1:
            fragment = fragment.removeprefix(_BOM)
        if fragment and not stats.partial:
            chunker.block(fragment, next_line)  # last line without a trailing newline
        elif fragment.strip(_JSON_SPACE.encode()):
            # the stream broke inside this line: whatever was decompressed of it is incomplete
            chunker.reject(_reject_row(next_line, f"{stats.error} (incomplete last line)", fragment))
        elif fragment:
            stats.blank_lines += 1
    yield from chunker.rest()


def _inflate(fileobj: BinaryIO, stats: FileStats, read_bytes: int) -> Iterator[bytes]:
    """Yield the decompressed bytes of ``fileobj`` piece by piece (plain files pass through).

    Raises:
        _StreamBroken: truncated or corrupt gzip data, after yielding all the data before the break.
    """
    data = _read(fileobj, stats, read_bytes)
    while 0 < len(data) < len(_GZIP_MAGIC):  # a short read must not hide the magic
        more = _read(fileobj, stats, read_bytes)
        if not more:
            break
        data += more
    if not data.startswith(_GZIP_MAGIC):
        while data:
            yield data
            data = _read(fileobj, stats, read_bytes)
        return
    limit = _INFLATE_RATIO * read_bytes
    offset = 0  # compressed offset of data[0]
    inflater: Any = None  # decompressobj of the current member; None between members
    while True:
        if inflater is None:
            # between members: another member, zero padding (which gzip(1) ignores) or garbage
            while len(data) < len(_GZIP_MAGIC):
                more = _read(fileobj, stats, read_bytes)
                if not more:
                    break
                data += more
            if data.startswith(_GZIP_MAGIC):
                inflater = zlib.decompressobj(wbits=31)
            elif data.strip(b"\0"):
                raise _StreamBroken(f"garbage after the last gzip member at compressed byte {offset}")
            else:
                offset += len(data)
                data = _read(fileobj, stats, read_bytes)
                if not data:
                    return
                continue
        while data:
            saved = inflater.copy()
            try:
                out = inflater.decompress(data, limit)
            except zlib.error as exc:
                good, at = _locate_error(saved, data)
                if good:
                    yield good
                # zlib finds most damage only at the member's CRC check, after the damaged data was output
                raise _StreamBroken(
                    f"corrupt gzip stream at compressed byte {offset + at}: {exc}"
                    " (lines read before this point from the same gzip member may be damaged too)"
                ) from exc
            if out:
                yield out
            rest = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            offset += len(data) - len(rest)
            data = rest
            if inflater.eof:
                inflater = None
                break
        if inflater is None:
            continue
        data = _read(fileobj, stats, read_bytes)
        if not data:
            raise _StreamBroken(
                f"truncated gzip stream at compressed byte {offset}: file ends before the gzip end marker"
            )


def _read(fileobj: BinaryIO, stats: FileStats, n: int) -> bytes:
    """Read up to ``n`` bytes, counting them as compressed input."""
    data = fileobj.read(n) or b""
    stats.bytes_compressed += len(data)
    return bytes(data)


def _locate_error(saved: Any, data: bytes) -> tuple[bytes, int]:
    """Find the first byte of ``data`` that zlib rejects, by bisection over copies of the inflater.

    Args:
        saved: inflater state from just before ``data`` was fed.
        data: compressed bytes whose decompression raised ``zlib.error``.

    Returns:
        The output of the longest prefix that decompresses without error, and that prefix's length.
    """
    good, at, window, outs = saved, 0, data, []
    while len(window) > 1:
        half = len(window) // 2
        trial = good.copy()
        try:
            out = trial.decompress(window[:half])
        except zlib.error:
            window = window[:half]
            continue
        good, at, window = trial, at + half, window[half:]
        outs.append(out)
    return b"".join(outs), at


class _Chunker:
    """Turns blocks of complete lines into frames and regroups them into chunks of ``chunk_lines``."""

    def __init__(
        self, chunk_lines: int, max_line_bytes: int, stats: FileStats, chunk_bytes: int | Callable[[], int]
    ) -> None:
        self.chunk_lines = chunk_lines
        self._chunk_bytes = chunk_bytes
        self.max_line_bytes = max_line_bytes
        self.stats = stats
        self.frames: list[pl.DataFrame] = []
        self.rows = 0
        self.bytes = 0
        self.rejects: list[pl.DataFrame] = []
        self.reject_rows = 0

    def block(self, block: bytes | memoryview, first_line: int) -> int:
        """Split ``block`` (complete lines joined by ``\\n``) and queue its lines and rejects.

        Returns:
            The physical number of the line after the block.
        """
        lines, rejects, physical = _split_block(block, first_line, self.max_line_bytes)
        blank = physical - lines.height - rejects.height
        self.stats.blank_lines += blank
        self.stats.lines_read += physical - blank
        if lines.height:
            self.frames.append(lines)
            self.rows += lines.height
            self.bytes += len(block)
        if rejects.height:
            self.rejects.append(rejects)
            self.reject_rows += rejects.height
        return first_line + physical

    def chunk_bytes(self) -> int:
        """Most text of the next chunk (asked anew each time when given as a callable)."""
        return self._chunk_bytes() if callable(self._chunk_bytes) else self._chunk_bytes

    def reject(self, row: dict[str, Any]) -> None:
        """Queue one rejected line (read stage)."""
        self.stats.lines_read += 1
        self.rejects.append(pl.DataFrame([row], schema=REJECT_SCHEMA))
        self.reject_rows += 1

    def full(self) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        """Yield the full chunks queued so far (rejects alone too, once there are chunk_lines of them).

        A chunk is full at ``chunk_lines`` lines, or earlier at ``chunk_bytes`` of text: large
        nested records then come in fewer lines per chunk, so memory stays bounded either way.
        """
        limit = self.chunk_bytes()
        if self.rows and self.bytes >= limit and self.rows < self.chunk_lines:
            lines = pl.concat(self.frames) if len(self.frames) > 1 else self.frames[0]
            # a read block may hold several chunks' worth of text: cut it at about the limit
            while lines.height and self.bytes >= limit:
                take = min(lines.height, max(1, lines.height * limit // max(self.bytes, 1)))
                if take == lines.height:
                    self.bytes = 0
                else:
                    self.bytes -= self.bytes * take // lines.height
                yield lines.slice(0, take), self._take_rejects()
                lines = lines.slice(take)
                limit = self.chunk_bytes()
            self.frames, self.rows = ([lines] if lines.height else []), lines.height
            if not lines.height:
                self.bytes = 0
            return
        if self.rows < self.chunk_lines:
            if self.reject_rows >= self.chunk_lines:
                # a file of mostly bad lines must not pile its rejects up in memory
                yield _empty_lines(), self._take_rejects()
            return
        lines = pl.concat(self.frames) if len(self.frames) > 1 else self.frames[0]
        n_full = lines.height // self.chunk_lines * self.chunk_lines
        rest = lines.slice(n_full)
        self.bytes = self.bytes * rest.height // max(lines.height, 1)
        self.frames, self.rows = ([rest] if rest.height else []), rest.height
        for start in range(0, n_full, self.chunk_lines):
            yield lines.slice(start, self.chunk_lines), self._take_rejects()

    def rest(self) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        """Yield everything still queued (at end of file)."""
        yield from self.full()
        if self.rows or self.rejects:
            lines = pl.concat(self.frames) if self.frames else _empty_lines()
            self.frames, self.rows, self.bytes = [], 0, 0
            yield lines, self._take_rejects()

    def _take_rejects(self) -> pl.DataFrame:
        rejects = pl.concat(self.rejects) if self.rejects else pl.DataFrame(schema=REJECT_SCHEMA)
        self.rejects, self.reject_rows = [], 0
        return rejects


def _split_block(
    block: bytes | memoryview, first_line: int, max_line_bytes: int
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Split complete lines (joined by ``\\n``, no final newline) into a lines frame and read rejects.

    Returns:
        ``(lines, rejects, physical)``: non-blank lines, rejects (invalid UTF-8, longer than
        ``max_line_bytes``), physical line count.
    """
    # zero-copy wrap + pyarrow split + one strict cast to String measured 3x faster than bytes.decode and
    # splitting text (pyarrow split_pattern, Polars str.split().explode(), str.split + pl.Series)
    offsets = pa.array([0, len(block)], pa.int64()).buffers()[1]
    whole = pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(block)])
    try:
        raw = pl.Series("raw", pc.split_pattern(whole, b"\n").flatten()).cast(pl.String)
    except pl.exceptions.ComputeError:  # invalid UTF-8 somewhere in the block
        return _split_block_slow(bytes(block), first_line, max_line_bytes)
    if raw.str.ends_with("\r").any():
        raw = raw.str.strip_suffix("\r")
    physical = raw.len()
    lines = pl.DataFrame(
        {
            "_source_line": pl.int_range(first_line, first_line + physical, dtype=pl.Int64, eager=True),
            "raw": raw,
        }
    )
    keep = raw.str.contains(r"[^ \t\r]")
    too_long = raw.str.len_bytes() > max_line_bytes
    rejects = pl.DataFrame(schema=REJECT_SCHEMA)
    if too_long.any():
        encoded = [(line, text.encode()) for line, text in lines.filter(too_long).iter_rows()]
        rows = [_too_long(line, data[:_HEAD_BYTES], len(data), max_line_bytes) for line, data in encoded]
        rejects = pl.DataFrame(rows, schema=REJECT_SCHEMA)
        keep &= ~too_long
    if not keep.all():
        lines = lines.filter(keep)
    return lines, rejects, physical


def _split_block_slow(block: bytes, first_line: int, max_line_bytes: int) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Per-line variant of :func:`_split_block` for a block holding invalid UTF-8."""
    numbers: list[int] = []
    texts: list[str] = []
    rejects: list[dict[str, Any]] = []
    physical = 0
    for physical, line in enumerate(block.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if len(line) > max_line_bytes:
            rejects.append(_too_long(first_line + physical - 1, line[:_HEAD_BYTES], len(line), max_line_bytes))
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.append(
                _reject_row(first_line + physical - 1, f"invalid UTF-8 at byte {exc.start + 1} of the line", line)
            )
            continue
        if text.strip(_JSON_SPACE):
            numbers.append(first_line + physical - 1)
            texts.append(text)
    lines = pl.DataFrame({"_source_line": numbers, "raw": texts}, schema=_LINES_SCHEMA)
    return lines, pl.DataFrame(rejects, schema=REJECT_SCHEMA), physical


def _empty_lines() -> pl.DataFrame:
    return pl.DataFrame(schema=_LINES_SCHEMA)


def clip_raw(data: bytes) -> str:
    """The first :data:`MAX_REJECT_RAW` bytes of a line as text, cut on a UTF-8 character boundary."""
    if len(data) > MAX_REJECT_RAW:
        cut = MAX_REJECT_RAW
        while cut and data[cut] & 0xC0 == 0x80:
            cut -= 1
        data = data[:cut]
    return data.decode("utf-8", errors="replace")


def _reject_row(line: int, reason: str, data: bytes, length: int | None = None) -> dict[str, Any]:
    """A read-stage reject of the line ``data`` (whose full length is ``length`` if ``data`` is its head)."""
    return {
        "line": line,
        "stage": "read",
        "reason": reason,
        "raw": clip_raw(data),
        "raw_length": len(data) if length is None else length,
    }


def _head(pieces: list[bytes]) -> bytes:
    """The first ``_HEAD_BYTES`` bytes of a line given in pieces."""
    head, need = [], _HEAD_BYTES
    for piece in pieces:
        head.append(piece[:need])
        need -= len(head[-1])
        if need <= 0:
            break
    return b"".join(head)


def _too_long(line: int, head: bytes, length: int, limit: int) -> dict[str, Any]:
    return _reject_row(line, f"line longer than {limit} bytes ({length} bytes), not loaded", head, length=length)


# --------------------------------------------------------------------------------------------------------
# part 2: lines -> typed records
# --------------------------------------------------------------------------------------------------------


def decode(lines: pl.DataFrame, dtype: pl.Struct) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Decode JSON lines into typed columns, quarantining lines that cannot be loaded.

    Args:
        lines: frame with ``_source_line`` (Int64) and ``raw`` (String), e.g. from :func:`iter_lines`.
        dtype: the record type; its fields become the output columns. Unknown keys are ignored.

    Returns:
        ``(records, rejects)``: ``records`` has ``_source_line``, ``raw``, then the fields of ``dtype``
        unnested, one row per line that is a JSON object, in input order (values that drifted from the
        declared types are coerced, see :func:`_coercer`); ``rejects`` has :data:`REJECT_SCHEMA`, stage
        ``decode``, in input order.

    Raises:
        TypeError: if ``dtype`` is not a ``pl.Struct`` or Polars cannot decode JSON into it.
        ValueError: if a field of ``dtype`` is named ``_source_line``, ``raw`` or ``_row``.
    """
    if not isinstance(dtype, pl.Struct):
        raise TypeError(f"dtype must be a pl.Struct, got {dtype!r}")
    clash = {"_source_line", "raw", "_row"} & {field.name for field in dtype.fields}
    if clash:
        raise ValueError(f"dtype fields {sorted(clash)} clash with the columns of the lines frame")
    try:
        pl.Series(["{}"]).str.json_decode(dtype)
    except _DECODE_ERRORS as exc:
        # e.g. Array or Binary fields: no data could ever load, so this is the caller's bug, not a bad line
        message = str(exc).split("\n", 1)[0]
        raise TypeError(f"Polars cannot decode JSON into {dtype}: {message}; declare such fields as String") from exc
    # _row (input position) lets rejects found by different checks come back in input order
    frame = lines.select(pl.col("_source_line").cast(pl.Int64), pl.col("raw").cast(pl.String)).with_row_index("_row")
    reason = _precheck(frame.get_column("raw"))
    bad = reason.is_not_null()
    rejects = [_reject_frame(frame.filter(bad), reason.filter(bad))] if bad.any() else []
    parts: list[pl.DataFrame] = []
    unordered = False
    good = frame.filter(~bad) if rejects else frame
    if good.height:
        # the sum of a UInt32 series is an int; Polars types every Series.sum as any Python scalar
        size = cast(int, good.get_column("raw").str.len_bytes().sum())
        step = max(1, good.height * _DECODE_SLICE_BYTES // max(size, 1))
        for start in range(0, good.height, step):
            failing: list[pl.DataFrame] = []
            _bisect(good.slice(start, step), dtype, parts, failing)
            if failing:  # per slice, so the Python objects of the slow path stay few
                coerced, malformed = _coerce_lines(pl.concat(failing), dtype)
                parts.append(coerced)
                rejects.append(malformed)
                unordered = True
    records = pl.concat(parts) if parts else _empty_records(frame, dtype)
    if unordered:
        records = records.sort("_row")
    rejected = pl.concat(rejects) if rejects else _reject_frame(frame.clear(), pl.Series([], dtype=pl.String))
    if len(rejects) > 1:
        rejected = rejected.sort("_row")
    return records.drop("_row"), rejected.drop("_row")


def _precheck(raw: pl.Series) -> pl.Series:
    """Why each line cannot load whatever the dtype, or null: vectorised, exact checks only on suspect rows."""
    reason = pl.repeat(None, raw.len(), dtype=pl.String, eager=True)
    not_object = ~raw.str.contains(r"^[ \t\r]*\{").fill_null(False)
    if not_object.any():
        first = raw.filter(not_object).str.strip_chars_start(_JSON_SPACE).str.slice(0, 1).fill_null("")
        text = pl.select(
            pl.when(pl.lit(first) == "")
            .then(pl.lit("not a JSON object (empty line)"))
            .otherwise(pl.concat_str(pl.lit("not a JSON object (starts with '"), pl.lit(first), pl.lit("')")))
        ).to_series()
        reason.scatter(not_object.arg_true(), text)
    suspect = raw.str.contains(_SUSPECT_ESCAPE).fill_null(False) & ~not_object
    if suspect.any():
        tokens = raw.filter(suspect).str.extract_all(_ESCAPE_TOKEN)
        has_nul = tokens.list.eval(pl.element() == r"\u0000").list.any()
        lone = tokens.list.eval(pl.element().str.contains(_LONE_SURROGATE)).list.any()
        text = pl.select(
            pl.when(pl.lit(has_nul))
            .then(pl.lit("contains \\u0000, which PostgreSQL text/JSONB cannot store"))
            .when(pl.lit(lone))
            .then(pl.lit("contains an unpaired UTF-16 surrogate escape, which PostgreSQL JSONB cannot store"))
        ).to_series()
        reason.scatter(suspect.arg_true(), text)
    return reason


def _reject_frame(frame: pl.DataFrame, reason: pl.Series) -> pl.DataFrame:
    """Rejects (stage decode, plus ``_row``) for the rows of ``frame``, raw clipped to MAX_REJECT_RAW bytes."""
    rejects = frame.select(
        line=pl.col("_source_line"),
        stage=pl.lit("decode", dtype=pl.String),
        reason=pl.lit(reason, dtype=pl.String),
        raw=pl.col("raw"),
        raw_length=pl.col("raw").str.len_bytes().cast(pl.Int64),
        _row=pl.col("_row"),
    )
    if (rejects.get_column("raw_length") > MAX_REJECT_RAW).any():
        # rare (huge bad lines): cut on a UTF-8 boundary, which Polars' char-based slicing cannot do
        clipped = [clip_raw(raw.encode("utf-8")) for raw in rejects.get_column("raw")]
        rejects = rejects.with_columns(raw=pl.Series(clipped, dtype=pl.String))
    return rejects


def _decode_all(frame: pl.DataFrame, dtype: pl.Struct) -> pl.DataFrame:
    """One vectorised decode; raises if any line fails or a line holds more or fewer than one value."""
    values = frame.get_column("raw").str.json_decode(dtype)
    if values.len() != frame.height:
        raise pl.exceptions.ShapeError(f"json_decode returned {values.len()} rows for {frame.height} lines")
    return frame.with_columns(values.alias("_record")).unnest("_record")


def _empty_records(frame: pl.DataFrame, dtype: pl.Struct) -> pl.DataFrame:
    return pl.DataFrame(schema=frame.schema | {field.name: field.dtype for field in dtype.fields})


def _bisect(frame: pl.DataFrame, dtype: pl.Struct, parts: list[pl.DataFrame], failing: list[pl.DataFrame]) -> None:
    """Decode ``frame`` into ``parts``, halving it level by level around failures (parts end up unordered).

    Frames that still fail go to ``failing`` (parsed in Python) once they are at most ``_BISECT_FLOOR``
    rows, or all at once when most frames of a level fail: with many drifted lines, halving further would
    cost more decode calls than it saves.
    """
    level = [frame]
    while level:
        failed = []
        for part in level:
            try:
                parts.append(_decode_all(part, dtype))
            except _DECODE_ERRORS:
                failed.append(part)
        if len(level) >= _DENSE_LEVEL and 2 * len(failed) > len(level):
            failing.extend(failed)
            return
        failing.extend(part for part in failed if part.height <= _BISECT_FLOOR)
        level = [
            half
            for part in failed
            if part.height > _BISECT_FLOOR
            for half in (part.slice(0, part.height // 2), part.slice(part.height // 2))
        ]


def _coerce_lines(frame: pl.DataFrame, dtype: pl.Struct) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Slow path for the few lines near a decode failure: parse in Python, coerce, decode in one call.

    Returns:
        ``(records, rejects)`` of ``frame`` (both with ``_row``): malformed JSON is rejected, valid objects
        are coerced to ``dtype`` (see :func:`_coercer`) and keep their original ``raw``.
    """
    coerce = _coercer(dtype)
    texts: list[str | None] = []
    reasons: list[str | None] = []
    for raw in frame.get_column("raw"):
        try:
            value = json.loads(
                raw, object_pairs_hook=_first_key_wins, parse_float=_parse_float, parse_constant=_no_constant
            )
        except (ValueError, RecursionError) as exc:
            texts.append(None)
            reasons.append(f"malformed JSON: {exc}")
            continue
        texts.append(json.dumps(coerce(value)))
        reasons.append(None)
    reason = pl.Series(reasons, dtype=pl.String)
    bad = reason.is_not_null()
    coerced = frame.with_columns(raw=pl.Series(texts, dtype=pl.String)).filter(~bad)
    rejects = [_reject_frame(frame.filter(bad), reason.filter(bad))]
    try:
        records = _decode_all(coerced, dtype)
    except _DECODE_ERRORS:
        # a drift _coercer does not know about: find the lines one by one and quarantine them
        decoded = []
        for row in range(coerced.height):
            line = coerced.slice(row, 1)
            try:
                decoded.append(_decode_all(line, dtype))
            except _DECODE_ERRORS as exc:
                message = str(exc).split("\n", 1)[0]
                original = frame.filter(pl.col("_row") == line.item(0, "_row"))
                rejects.append(_reject_frame(original, pl.Series([f"does not fit the schema: {message}"])))
        records = pl.concat(decoded) if decoded else _empty_records(coerced, dtype)
    # the original text, not the re-serialised one, is what lands in raw_data
    columns = records.columns
    records = records.drop("raw").join(frame.select("_row", "raw"), on="_row", how="left", maintain_order="left")
    return records.select(columns), pl.concat(rejects)


class _BigNumber(str):
    """A JSON number beyond float range (e.g. ``1e400``), kept as its literal text."""


def _parse_float(text: str) -> float | _BigNumber:
    value = float(text)
    return value if math.isfinite(value) else _BigNumber(text)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _first_key_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # polars keeps the first of duplicate keys; json.loads would keep the last
    return dict(reversed(pairs))


def _coercer(dtype: PolarsDataType) -> Callable[[Any], Any]:
    """Build a function that bends a parsed JSON value into ``dtype`` the way the fast path would have.

    * Struct: an object keeps its declared fields (unknown keys dropped); anything else becomes null.
    * List: a list is coerced element-wise, dropping elements that are neither objects nor null when the
      elements are structs; a scalar becomes a one-element list (as Polars does); an object becomes null.
    * String: strings pass; numbers and booleans pass unchanged so Polars writes them as text exactly as
      on the fast path (``1.0`` -> ``"1"``, where ``json.dumps`` would say ``"1.0"``); a number beyond
      float range keeps its literal text; objects and arrays become null.
    * any other leaf: kept if Polars decodes it as that type, else null.
    """
    if isinstance(dtype, pl.Struct):
        fields = [(field.name, _coercer(field.dtype)) for field in dtype.fields]

        def struct(value: Any) -> Any:
            if type(value) is not dict:
                return None
            return {name: coerce(value.get(name)) for name, coerce in fields}

        return struct
    if isinstance(dtype, pl.List):
        inner = _coercer(dtype.inner)
        of_structs = isinstance(dtype.inner, pl.Struct)

        def list_(value: Any) -> Any:
            if type(value) is list:
                return [inner(item) for item in value if not of_structs or item is None or type(item) is dict]
            if value is None or of_structs or type(value) is dict:
                return None
            return [inner(value)]

        return list_
    if dtype == pl.String:

        def string(value: Any) -> Any:
            if type(value) in (dict, list):
                return None
            return str(value) if type(value) is _BigNumber else value

        return string

    def leaf(value: Any) -> Any:
        if value is None or type(value) in (dict, list, _BigNumber):
            return None
        try:
            pl.Series([json.dumps({"v": value})]).str.json_decode(pl.Struct({"v": dtype}))
        except _DECODE_ERRORS:
            return None
        return value

    return leaf


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen.add(key)


def _duplicated_key(raw: str) -> str | None:
    """The first key that one object of the JSON text ``raw`` holds twice, or None."""
    try:
        json.loads(raw, object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey as dup:
        return str(dup.args[0])
    except (ValueError, RecursionError):  # not for this check to judge
        return None
    return None


def reject_duplicate_keys(records: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split decoded ``records`` (from :func:`decode`) into those whose JSON objects hold each key
    once and rejects (stage ``decode``) of lines where one object holds a key twice.

    Such a line would load two different records: the typed columns keep the first value (as
    Polars decodes) while PostgreSQL's ``jsonb`` raw_data keeps the last, so a CORE rebuilt from
    STG would differ from the first load's. Cheap: one literal count of key tokens (``":``) per
    line flags candidates, the lines with more key tokens than is usual among the chunk's lines of
    the same shape (top-level list lengths); only those, and one usual line per shape (a producer
    that repeats a key in every line), are parsed again in Python to find the key.
    """
    if records.height == 0:
        return records, pl.DataFrame(schema=REJECT_SCHEMA)
    lists = [name for name, dtype in records.schema.items() if isinstance(dtype, pl.List)]
    shape = [pl.col(c).list.len().fill_null(-1) for c in lists] or [pl.lit(0)]
    tokens = pl.col("raw").str.count_matches('":', literal=True)
    flags = records.select(
        tokens.alias("_tokens"),
        pl.struct(shape).rank("dense").alias("_shape") if lists else pl.lit(0).alias("_shape"),
    ).with_columns(_usual=pl.col("_tokens").mode().min().over("_shape"))
    usual = pl.col("_tokens") == pl.col("_usual")
    candidate = flags.select(
        (pl.col("_tokens") > pl.col("_usual")) | (usual & ~usual.cum_sum().over("_shape").gt(1))
    ).to_series()
    if not candidate.any():
        return records, pl.DataFrame(schema=REJECT_SCHEMA)
    rows = candidate.arg_true()
    found = {int(i): key for i, key in ((i, _duplicated_key(records["raw"][i])) for i in rows.to_list()) if key}
    # a usual line holding a duplicate: every line of its shape may hold one
    dup_shapes = {flags["_shape"][i] for i in found if flags["_tokens"][i] == flags["_usual"][i]}
    for i in flags.with_row_index("_i").filter(pl.col("_shape").is_in(list(dup_shapes)))["_i"].to_list():
        if i not in found and (key := _duplicated_key(records["raw"][i])):
            found[i] = key
    if not found:
        return records, pl.DataFrame(schema=REJECT_SCHEMA)
    bad = pl.Series(list(found), dtype=pl.UInt32)
    mask = pl.int_range(records.height, eager=True, dtype=pl.UInt32).is_in(bad.implode())
    gone = records.filter(mask)
    rejects = pl.DataFrame(
        {
            "line": gone["_source_line"].cast(pl.Int64),
            "stage": ["decode"] * gone.height,
            "reason": [
                f"duplicate key {found[i]!r} in one JSON object (its values would disagree between raw_data and CORE)"
                for i in sorted(found)
            ],
            "raw": [clip_raw(raw.encode("utf-8")) for raw in gone["raw"]],
            "raw_length": gone["raw"].str.len_bytes().cast(pl.Int64),
        },
        schema=REJECT_SCHEMA,
    )
    return records.filter(~mask), rejects
