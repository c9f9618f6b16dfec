"""Tests of evo_frames.reader: streaming gz/plain line reading and JSON decoding with quarantine.

Every reader test writes real bytes (gzip or plain) to a file and opens it; no mocks.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from evo_frames.reader import MAX_REJECT_RAW, REJECT_SCHEMA, FileStats, decode, iter_lines

LINES_SCHEMA = {"_source_line": pl.Int64, "raw": pl.String}
ENTRY_FIELDS = [
    "date", "dateTurn", "timeZone", "idMember", "nameMember", "idProspect", "nameProspect", "idEmployee",
    "nameEmployee", "entryType", "device", "releasesByID", "idBranch", "blockReason", "entryAction", "idMigration",
]  # fmt: skip
ENTRY = pl.Struct({name: pl.String for name in ENTRY_FIELDS})
NESTED = pl.Struct(
    {
        "id": pl.Int64,
        "name": pl.String,
        "tags": pl.List(pl.String),
        "items": pl.List(pl.Struct({"sku": pl.String, "qty": pl.Int64})),
        "address": pl.Struct({"city": pl.String}),
    }
)


# ---------------------------------------------------------------------------------------------- helpers


def write(tmp_path: Path, data: bytes, name: str = "part-00000.jsonl.gz", *, gz: bool = True) -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def read_all(path: Path, **kwargs: int) -> tuple[pl.DataFrame, pl.DataFrame, FileStats]:
    """Read a whole file with iter_lines, checking the per-chunk contract on the way."""
    stats = FileStats()
    chunk_lines = kwargs.get("chunk_lines", 100_000)
    lines, rejects = [], []
    with path.open("rb") as fileobj:
        for chunk, rejected in iter_lines(fileobj, stats=stats, **kwargs):
            assert chunk.schema == pl.Schema(LINES_SCHEMA)
            assert rejected.schema == pl.Schema(REJECT_SCHEMA)
            assert chunk.height <= chunk_lines
            assert chunk.height or rejected.height
            lines.append(chunk)
            rejects.append(rejected)
    all_lines = pl.concat(lines) if lines else pl.DataFrame(schema=LINES_SCHEMA)
    all_rejects = pl.concat(rejects) if rejects else pl.DataFrame(schema=REJECT_SCHEMA)
    assert stats.lines_read == all_lines.height + all_rejects.height
    return all_lines, all_rejects, stats


def reference_read(data: bytes) -> tuple[list[tuple[int, str]], list[tuple], int]:
    """Slow, obviously right line reader: (lines, read rejects, blank line count) of decompressed bytes."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    physical = data.split(b"\n") if data else []
    if data.endswith(b"\n"):
        physical.pop()
    lines, rejects, blank = [], [], 0
    for number, line in enumerate(physical, 1):
        line = line.removesuffix(b"\r")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"invalid UTF-8 at byte {exc.start + 1} of the line"
            rejects.append((number, "read", reason, line.decode("utf-8", "replace"), len(line)))
            continue
        if text.strip(" \t\r"):
            lines.append((number, text))
        else:
            blank += 1
    return lines, rejects, blank


def expected_lines(text: str) -> list[tuple[int, str]]:
    return reference_read(text.encode())[0]


def lines_frame(*raws: str, first: int = 1) -> pl.DataFrame:
    return pl.DataFrame({"_source_line": range(first, first + len(raws)), "raw": list(raws)}, schema=LINES_SCHEMA)


def entry(i: int, **extra: object) -> str:
    record = {name: None for name in ENTRY_FIELDS} | {"date": f"2025-11-03T06:41:{i % 60:02d}", "idMember": i}
    return json.dumps(record | extra)


# ---------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_bom_crlf_blank_lines_and_no_trailing_newline(tmp_path: Path, gz: bool) -> None:
    text = '\ufeff{"a":1}\r\n\r\n   \n\t\n{"a":2}\r\n\n{"a":3}'
    path = write(tmp_path, text.encode(), gz=gz)
    lines, rejects, stats = read_all(path)
    assert lines.rows() == [(1, '{"a":1}'), (5, '{"a":2}'), (7, '{"a":3}')]
    assert rejects.is_empty()
    assert (stats.lines_read, stats.blank_lines, stats.partial, stats.error) == (3, 4, False, None)
    assert stats.bytes_uncompressed == len(text.encode())
    assert stats.bytes_compressed == path.stat().st_size


def test_bom_only_at_file_start_is_stripped(tmp_path: Path) -> None:
    lines, _, _ = read_all(write(tmp_path, '\ufeff{"a":1}\n\ufeff{"a":2}\n'.encode()), read_bytes=1)
    assert lines.get_column("raw").to_list() == ['{"a":1}', '\ufeff{"a":2}']


def test_single_line_file_with_bom_and_no_newline(tmp_path: Path) -> None:
    lines, _, _ = read_all(write(tmp_path, '\ufeff{"a":1}\r'.encode()), read_bytes=2)
    assert lines.rows() == [(1, '{"a":1}')]


@pytest.mark.parametrize("data", [b"", gzip.compress(b"", mtime=0)], ids=["zero-bytes", "empty-gzip"])
def test_empty_file_yields_nothing(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "empty.jsonl.gz"
    path.write_bytes(data)
    stats = FileStats()
    with path.open("rb") as fileobj:
        assert list(iter_lines(fileobj, stats=stats)) == []
    assert stats == FileStats(bytes_compressed=len(data))


def test_only_blank_lines(tmp_path: Path) -> None:
    lines, rejects, stats = read_all(write(tmp_path, b"\n \r\n\t\n"))
    assert lines.is_empty() and rejects.is_empty()
    assert (stats.lines_read, stats.blank_lines) == (0, 3)


def test_plain_text_file(tmp_path: Path) -> None:
    text = "".join(entry(i) + "\n" for i in range(1000))
    lines, rejects, stats = read_all(write(tmp_path, text.encode(), "plain.jsonl", gz=False), read_bytes=4096)
    assert lines.rows() == expected_lines(text)
    assert rejects.is_empty()
    assert stats.bytes_compressed == stats.bytes_uncompressed == len(text)


def test_multi_member_gzip_joins_members_like_gzip_does(tmp_path: Path) -> None:
    # a member boundary inside a line, an empty member, and zero padding at the end (ignored by gzip(1))
    members = [b'{"a":1}\n{"a":', b"", b'2}\n{"a":3}\n', b'{"a":4}']
    path = tmp_path / "multi.jsonl.gz"
    path.write_bytes(b"".join(gzip.compress(m, mtime=0) for m in members) + b"\0" * 10)
    assert gzip.decompress(path.read_bytes()) == b"".join(members)
    for read_bytes in (1, 3, 7, 1 << 20):
        lines, rejects, stats = read_all(path, read_bytes=read_bytes)
        assert lines.rows() == [(1, '{"a":1}'), (2, '{"a":2}'), (3, '{"a":3}'), (4, '{"a":4}')]
        assert rejects.is_empty() and not stats.partial


def test_garbage_after_last_member_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "garbage.jsonl.gz"
    member = gzip.compress(b'{"a":1}\n{"a":2}\n', mtime=0)
    path.write_bytes(member + b"not gzip")
    lines, rejects, stats = read_all(path)
    assert lines.height == 2 and rejects.is_empty()
    assert stats.partial
    assert stats.error == f"garbage after the last gzip member at compressed byte {len(member)}"


@pytest.mark.parametrize("cut", [1, 4, 8, 9, 50, 500, 3000])
def test_truncated_gzip_keeps_complete_lines_and_rejects_the_fragment(tmp_path: Path, cut: int) -> None:
    text = "".join(entry(i) + "\n" for i in range(2000))
    whole = gzip.compress(text.encode(), mtime=0)
    path = tmp_path / "truncated.jsonl.gz"
    path.write_bytes(whole[:-cut])
    for read_bytes in (1000, 1 << 20):
        lines, rejects, stats = read_all(path, read_bytes=read_bytes)
        expected = expected_lines(text)
        assert lines.rows() == expected[: lines.height]  # a clean prefix, nothing shifted
        assert stats.partial
        assert stats.error.startswith(f"truncated gzip stream at compressed byte {len(whole) - cut}: ")
        assert rejects.height <= 1
        if rejects.height:
            line, stage, reason, raw, raw_length = rejects.row(0)
            assert (line, stage) == (lines.height + 1, "read")
            assert reason.startswith("truncated gzip stream at compressed byte")
            assert expected[lines.height][1].startswith(raw) and raw_length == len(raw.encode())
        if cut <= 8:  # only the trailer is missing: every line was decompressed
            assert lines.height == len(expected)


def test_truncated_inside_the_header(tmp_path: Path) -> None:
    lines, rejects, stats = read_all(write(tmp_path, gzip.compress(b'{"a":1}\n', mtime=0)[:5], gz=False))
    assert lines.is_empty() and rejects.is_empty()
    assert stats.partial and stats.error.startswith("truncated gzip stream at compressed byte 5")


def test_corrupt_gzip_does_not_raise(tmp_path: Path) -> None:
    rnd = random.Random(1)
    text = "".join(json.dumps({"id": i, "note": "".join(rnd.choices("abcdefgh ij", k=rnd.randint(5, 80)))}) + "\n"
                   for i in range(5000))  # fmt: skip
    whole = gzip.compress(text.encode(), mtime=0)
    mid = len(whole) // 2
    path = write(tmp_path, whole[:mid] + b"\xff" * 64 + whole[mid + 64 :], gz=False)
    lines, rejects, stats = read_all(path, read_bytes=4096)
    assert stats.partial
    assert stats.error.startswith("corrupt gzip stream at compressed byte ")
    expected = dict(expected_lines(text))
    good = sum(expected.get(line) == raw for line, raw in lines.rows())
    assert good >= 2000  # the lines before the damaged bytes are intact


def test_corrupt_header_names_the_byte(tmp_path: Path) -> None:
    whole = gzip.compress(b'{"a":1}\n', mtime=0)
    path = write(tmp_path, whole[:2] + b"\x09" + whole[3:], gz=False)  # compression method 9 does not exist
    lines, rejects, stats = read_all(path)
    assert lines.is_empty() and rejects.is_empty()
    # zlib reads the method and flag bytes together, so it notices at byte 3 (0-based)
    assert stats.partial and stats.error.startswith("corrupt gzip stream at compressed byte 3: ")
    assert "unknown compression method" in stats.error


def test_invalid_utf8_rejects_only_that_line(tmp_path: Path) -> None:
    data = b'{"a":"ok1"}\n{"a":"caf\xe9"}\r\n\n{"a":"\xc3\xa9t\xc3\xa9"}\n'
    for read_bytes in (1, 1 << 20):
        lines, rejects, stats = read_all(write(tmp_path, data), read_bytes=read_bytes)
        assert lines.rows() == [(1, '{"a":"ok1"}'), (4, '{"a":"été"}')]
        assert rejects.rows() == [
            (2, "read", "invalid UTF-8 at byte 10 of the line", '{"a":"caf\ufffd"}', 12),
        ]
        assert (stats.lines_read, stats.blank_lines) == (3, 1)


def test_five_megabyte_single_record(tmp_path: Path) -> None:
    big = "x" * (5 << 20)
    text = entry(1) + "\n" + json.dumps({"name": big, "id": 2}) + "\n" + entry(3)
    lines, rejects, _ = read_all(write(tmp_path, text.encode()))
    assert lines.get_column("_source_line").to_list() == [1, 2, 3]
    records, rejected = decode(lines, NESTED)
    assert rejected.is_empty()
    assert records.get_column("name").to_list()[1] == big


def test_line_longer_than_the_limit_is_rejected_and_skipped(tmp_path: Path) -> None:
    text = '{"a":1}\n{"a":"' + "é" * 40_000 + '"}\n{"a":3}\n{"a":"' + "y" * 200 + '"}'
    for read_bytes in (7, 1000, 1 << 20):
        lines, rejects, stats = read_all(write(tmp_path, text.encode()), read_bytes=read_bytes, max_line_bytes=100)
        assert lines.rows() == [(1, '{"a":1}'), (3, '{"a":3}')]
        assert rejects.get_column("line").to_list() == [2, 4]
        line_2 = rejects.row(0, named=True)
        assert line_2["raw_length"] == 80_008
        assert line_2["reason"] == "line longer than 100 bytes (80008 bytes), not loaded"
        assert len(line_2["raw"].encode()) <= MAX_REJECT_RAW and line_2["raw"].startswith('{"a":"éé')
        assert "\ufffd" not in line_2["raw"]  # clipped on a character boundary
        assert stats.lines_read == 4


def test_rejects_of_a_bad_file_are_yielded_as_they_pile_up(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xff\n" * 50, gz=False)
    stats = FileStats()
    with path.open("rb") as fileobj:  # blocks of 2 lines; rejects leave once there are chunk_lines of them
        chunks = list(iter_lines(fileobj, stats=stats, chunk_lines=5, read_bytes=4))
    assert [rejects.height for _, rejects in chunks] == [6] * 8 + [2]
    assert all(lines.is_empty() for lines, _ in chunks)
    assert stats.lines_read == 50


def test_chunks_respect_chunk_lines_and_keep_line_numbers(tmp_path: Path) -> None:
    text = "".join(entry(i) + ("\n\n" if i % 7 == 0 else "\n") for i in range(1500))
    path = write(tmp_path, text.encode())
    whole, _, _ = read_all(path)
    for chunk_lines, read_bytes in [(1, 97), (333, 1 << 10), (1499, 1 << 12), (1500, 1 << 16), (100_000, 3)]:
        lines, _, _ = read_all(path, chunk_lines=chunk_lines, read_bytes=read_bytes)
        assert lines.equals(whole)
    assert whole.rows() == expected_lines(text)


line_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r"), max_size=30)
physical_line = st.one_of(
    line_text.map(str.encode),
    st.sampled_from([b"", b" ", b"\t", b"\r", b" \r", b"\xef\xbb\xbf{}"]),
    st.binary(max_size=6).map(lambda b: b.replace(b"\n", b"")),  # mostly invalid UTF-8
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.lists(st.tuples(physical_line, st.booleans()), max_size=40),
    trailing_newline=st.booleans(),
    bom=st.booleans(),
    gz=st.booleans(),
    member_cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=3),
    read_bytes=st.integers(min_value=1, max_value=80),
    chunk_lines=st.integers(min_value=1, max_value=12),
)
def test_any_block_size_gives_the_same_lines(
    tmp_path: Path,
    body: list[tuple[bytes, bool]],
    trailing_newline: bool,
    bom: bool,
    gz: bool,
    member_cuts: list[int],
    read_bytes: int,
    chunk_lines: int,
) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(line + (b"\r" if crlf else b"") for line, crlf in body)
    data += b"\n" if trailing_newline and body else b""
    assume(gz or not data.startswith(b"\x1f\x8b"))  # a plain file that starts like gzip is read as gzip
    if gz:  # several members, cut anywhere (even inside a character)
        cuts = sorted({0, len(data), *(c for c in member_cuts if c < len(data))})
        payload = b"".join(gzip.compress(data[a:b], mtime=0) for a, b in zip(cuts, cuts[1:], strict=False))
    else:
        payload = data
    path = write(tmp_path, payload, "prop.jsonl.gz", gz=False)
    lines, rejects, stats = read_all(path, read_bytes=read_bytes, chunk_lines=chunk_lines)
    want_lines, want_rejects, want_blank = reference_read(data)
    assert lines.rows() == want_lines
    assert rejects.rows() == want_rejects
    assert (stats.blank_lines, stats.partial, stats.error) == (want_blank, False, None)
    assert stats.bytes_uncompressed == len(data)


# ---------------------------------------------------------------------------------------------- decoding


def test_decode_fast_path_types_and_order() -> None:
    frame = lines_frame(
        '{"id": 1, "name": "Ana", "tags": ["a", "b"], "items": [{"sku": "X", "qty": 2}], "address": {"city": "Rio"}}',
        '{"id": 2, "name": 5, "tags": "solo", "extra": {"ignored": true}}',
        '{"id": 3, "name": 1.0, "tags": [1, true, null]}',
        first=10,
    )
    records, rejects = decode(frame, NESTED)
    assert rejects.is_empty() and rejects.schema == pl.Schema(REJECT_SCHEMA)
    assert records.columns == ["_source_line", "raw", "id", "name", "tags", "items", "address"]
    assert records.select("_source_line", "id", "name", "tags").rows() == [
        (10, 1, "Ana", ["a", "b"]),
        (11, 2, "5", ["solo"]),  # polars: numbers at a String leaf become text, a scalar at a List a 1-list
        (12, 3, "1", ["1", "true", None]),
    ]
    assert records.get_column("raw").equals(frame.get_column("raw"))
    assert records.get_column("items").to_list()[0] == [{"sku": "X", "qty": 2}]


def test_malformed_line_among_good_ones() -> None:
    raws = [entry(i) for i in range(1, 1001)]
    raws[499] = '{"date": "2025-11-03", "idMember": 5,'  # cut off
    raws[777] = '{"date": "2025-11-03" "idMember": 5}'  # missing comma
    records, rejects = decode(lines_frame(*raws), ENTRY)
    assert records.height == 998
    assert 500 not in records.get_column("_source_line") and 778 not in records.get_column("_source_line")
    assert records.get_column("_source_line").is_sorted()
    assert records.get_column("idMember").to_list()[:3] == ["1", "2", "3"]
    assert rejects.select("line", "stage").rows() == [(500, "decode"), (778, "decode")]
    assert rejects.get_column("reason").to_list() == [
        f"malformed JSON: Expecting property name enclosed in double quotes: line 1 column {len(raws[499]) + 1} "
        f"(char {len(raws[499])})",
        "malformed JSON: Expecting ',' delimiter: line 1 column 23 (char 22)",
    ]
    assert rejects.get_column("raw").to_list() == [raws[499], raws[777]]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("[1, 2]", "not a JSON object (starts with '[')"),
        ('[{"id": 1}]', "not a JSON object (starts with '[')"),
        ('"text"', "not a JSON object (starts with '\"')"),
        ("5", "not a JSON object (starts with '5')"),
        ("null", "not a JSON object (starts with 'n')"),
        ("  true", "not a JSON object (starts with 't')"),
        ("", "not a JSON object (empty line)"),
        (" \t", "not a JSON object (empty line)"),
        ('{"a": NaN}', "malformed JSON: NaN is not valid JSON"),
        ('{"a": 1} {"a": 2}', "malformed JSON: Extra data: line 1 column 10 (char 9)"),
        ('{"a": 1}, {"a": 2}', "malformed JSON: Extra data: line 1 column 9 (char 8)"),
    ],
)
def test_lines_that_are_not_one_json_object_are_rejected(raw: str, reason: str) -> None:
    frame = lines_frame('{"id": 1}', raw, '{"id": 3}')
    records, rejects = decode(frame, NESTED)
    # two values on one line would make polars' json_decode return an extra row: nothing may shift
    assert records.select("_source_line", "id").rows() == [(1, 1), (3, 3)]
    assert rejects.rows() == [(2, "decode", reason, raw, len(raw.encode()))]


def test_nul_escape_rejected_but_escaped_backslash_is_not() -> None:
    frame = lines_frame(
        r'{"name": "a\u0000b"}',
        r'{"name": "a\\u0000b"}',  # an escaped backslash followed by the text u0000
        r'{"name": "a\\\u0000b"}',  # escaped backslash, then a real \u0000
        r'{"name": "\u00001"}',
    )
    records, rejects = decode(frame, NESTED)
    assert records.select("_source_line", "name").rows() == [(2, "a\\u0000b")]
    assert rejects.get_column("line").to_list() == [1, 3, 4]
    assert set(rejects.get_column("reason")) == {"contains \\u0000, which PostgreSQL text/JSONB cannot store"}


def test_unpaired_surrogate_escapes_rejected() -> None:
    frame = lines_frame(
        r'{"name": "\ud83d\ude00"}',  # a proper pair: kept
        r'{"name": "\ud800"}',  # polars would silently decode this to "\x00"
        r'{"name": "x\udc00"}',
        r'{"name": "\ud83d\\ude00"}',
        r'{"name": "\\ud800"}',  # text, not an escape
        r'{"name": "\uD83D\uDE00"}',
    )
    records, rejects = decode(frame, NESTED)
    assert records.select("_source_line", "name").rows() == [(1, "😀"), (5, "\\ud800"), (6, "😀")]
    assert rejects.get_column("line").to_list() == [2, 3, 4]
    assert rejects.get_column("reason").str.contains("unpaired UTF-16 surrogate").all()


def test_type_drift_is_kept_and_coerced() -> None:
    frame = lines_frame(
        '{"id": 1, "name": {"first": "Ana"}, "tags": ["a"]}',  # object where a string is declared
        '{"id": 2, "name": "Bo", "tags": null, "items": [{"sku": "A", "qty": 1}, 5, "x", null, {"sku": 7}]}',
        '{"id": 3, "name": ["x"], "tags": {"k": 1}, "address": "Rio"}',  # object at a list, string at a struct
        '{"id": "4", "name": "Cy", "tags": ["t", {"o": 1}, [2]], "items": {"sku": "B"}}',
        '{"id": 5, "name": 1e400, "tags": 7, "items": [{"sku": {"deep": 1}, "qty": 2}]}',
        '{"id": 6, "name": 1.0, "tags": [1.5, false], "address": {"city": 42}, "x": {"y": [1e999]}}',
    )
    records, rejects = decode(frame, NESTED)
    assert rejects.is_empty()
    assert records.get_column("raw").equals(frame.get_column("raw"))  # the original text is kept
    assert records.drop("raw").rows() == [
        (1, 1, None, ["a"], None, None),
        (2, 2, "Bo", None, [{"sku": "A", "qty": 1}, None, {"sku": "7", "qty": None}], None),
        (3, 3, None, None, None, None),
        (4, None, "Cy", ["t", None, None], None, None),
        (5, 5, "1e400", ["7"], [{"sku": None, "qty": 2}], None),
        (6, 6, "1", ["1.5", "false"], None, {"city": "42"}),
    ]


def test_coercion_matches_the_fast_path() -> None:
    # the same values decode alike whether the line took the fast path or the coercion fallback
    values = '"id": 7, "name": 2.50, "tags": 1e-7, "items": [{"sku": 12345678901234567890, "qty": true}]'
    fast, _ = decode(lines_frame("{" + values + "}"), NESTED)
    slow, _ = decode(lines_frame("{" + values + ', "address": [1]}'), NESTED)
    assert fast.drop("raw").rows() == slow.drop("raw").rows()
    assert fast.row(0)[2:5] == (7, "2.5", ["0.0000001"])


def test_duplicate_keys_first_wins_on_both_paths() -> None:
    # polars keeps the first of duplicate keys (PostgreSQL jsonb would keep the last): the fallback agrees
    frame = lines_frame(
        '{"name": "first", "name": "second", "address": {"city": "A", "city": "B"}}',
        '{"name": "first", "name": "second", "address": {"city": "A", "city": "B"}, "tags": {"o": 1}}',
    )
    records, rejects = decode(frame, NESTED)
    assert rejects.is_empty()
    assert records.select("name", "address").rows() == [("first", {"city": "A"})] * 2


def test_decode_keeps_order_across_every_kind_of_reject() -> None:
    raws = []
    for i in range(3000):
        kind = i % 10
        raws.append(
            {
                3: "[1]",
                5: '{"id": ' + str(i) + ', "name": {"o": 1}}',
                7: '{"id": ' + str(i) + ", broken",
                8: r'{"name": "\u0000"}',
            }.get(kind, '{"id": ' + str(i) + "}")
        )
    records, rejects = decode(lines_frame(*raws), NESTED)
    kept = [i for i in range(3000) if i % 10 not in (3, 7, 8)]
    assert records.get_column("_source_line").to_list() == [i + 1 for i in kept]
    assert records.get_column("id").to_list() == kept
    assert rejects.get_column("line").to_list() == [i + 1 for i in range(3000) if i % 10 in (3, 7, 8)]
    assert records.height + rejects.height == len(raws)


def test_huge_rejected_line_is_clipped_on_a_character_boundary() -> None:
    raw = '{"name": "' + "é" * MAX_REJECT_RAW + '"'  # malformed: no closing brace
    records, rejects = decode(lines_frame(raw), NESTED)
    assert records.is_empty()
    (clipped,) = rejects.get_column("raw").to_list()
    assert raw.startswith(clipped)
    assert MAX_REJECT_RAW - 1 <= len(clipped.encode()) <= MAX_REJECT_RAW
    assert rejects.get_column("raw_length").to_list() == [len(raw.encode())]


def test_decode_empty_frame_and_bad_dtype() -> None:
    records, rejects = decode(pl.DataFrame(schema=LINES_SCHEMA), NESTED)
    assert records.is_empty() and rejects.is_empty()
    assert records.columns == ["_source_line", "raw", "id", "name", "tags", "items", "address"]
    with pytest.raises(ValueError, match="clash"):
        decode(pl.DataFrame(schema=LINES_SCHEMA), pl.Struct({"raw": pl.String}))
    with pytest.raises(TypeError):
        decode(pl.DataFrame(schema=LINES_SCHEMA), pl.String)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Polars cannot decode JSON into"):  # no line could ever load
        decode(lines_frame('{"pair": ["a", "b"]}'), pl.Struct({"pair": pl.Array(pl.String, 2)}))


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=60),
    bad=st.sets(st.integers(0, 59)),
    bad_kind=st.sampled_from(["{oops", "[]", '{"name": {}}', r'{"name": "\u0000"}']),
)
def test_bad_lines_never_change_the_good_ones(ids: list[int | None], bad: set[int], bad_kind: str) -> None:
    good_raws = [json.dumps({"id": i, "name": str(i)}) for i in ids]
    alone, _ = decode(lines_frame(*good_raws), NESTED)
    mixed = [bad_kind if n in bad else raw for n, raw in enumerate(good_raws)]
    records, rejects = decode(lines_frame(*mixed), NESTED)
    assert records.height + rejects.height == len(mixed)
    if bad_kind == '{"name": {}}':  # drift: kept and coerced, the id is simply null
        assert records.height == len(mixed)
    else:
        assert rejects.get_column("line").to_list() == [n + 1 for n in sorted(bad) if n < len(ids)]
    expected = alone.filter(~pl.col("_source_line").is_in([n + 1 for n in bad]))
    assert records.filter(~pl.col("_source_line").is_in([n + 1 for n in bad])).equals(expected)


KEYS = ["id", "name", "tags", "items", "address", "sku", "qty", "city"]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=["Cs"]), max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    objects=st.lists(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6) | json_values, max_size=12),
    ensure_ascii=st.booleans(),
)
def test_decode_of_arbitrary_json_is_total_and_context_free(objects: list[object], ensure_ascii: bool) -> None:
    raws = [json.dumps(obj, ensure_ascii=ensure_ascii) for obj in objects]
    records, rejects = decode(lines_frame(*raws), NESTED)
    assert records.height + rejects.height == len(raws)
    assert sorted([*records.get_column("_source_line"), *rejects.get_column("line")]) == list(range(1, len(raws) + 1))
    assert records.get_column("_source_line").is_sorted() and rejects.get_column("line").is_sorted()
    # json.dumps writes NUL as \u0000 (rejected); dropping escaped backslashes first leaves only real escapes
    loadable = {
        n
        for n, o in enumerate(objects, 1)
        if isinstance(o, dict) and "\\u0000" not in json.dumps(o).replace("\\\\", "")
    }
    assert set(records.get_column("_source_line")) == loadable
    # each line decodes the same alone as among the others, whichever path (fast, bisect, coercion) it took
    for n, raw in enumerate(raws, 1):
        alone, alone_rejects = decode(lines_frame(raw, first=n), NESTED)
        assert alone.rows() == records.filter(pl.col("_source_line") == n).rows()
        assert alone_rejects.rows() == rejects.filter(pl.col("line") == n).rows()


def test_file_counts_reconcile(tmp_path: Path) -> None:
    text = (
        "\n".join(
            [entry(1), "", "[1]", '{"date": "x", oops', entry(5), "null", r'{"nameMember": "\u0000"}', entry(8), "  "]
        ).encode()
        + b'\n{"nameMember": "\xff"}\n'
        + entry(11).encode()
    )
    lines, read_rejects, stats = read_all(write(tmp_path, text), read_bytes=16, chunk_lines=2)
    records, decode_rejects = decode(lines, ENTRY)
    assert records.get_column("_source_line").to_list() == [1, 5, 8, 11]
    assert read_rejects.get_column("line").to_list() == [10]
    assert decode_rejects.get_column("line").to_list() == [3, 4, 6, 7]
    assert stats.lines_read == records.height + read_rejects.height + decode_rejects.height == 9
    assert stats.blank_lines == 2


def test_chunks_are_bounded_by_bytes_as_well_as_lines(tmp_path: Path) -> None:
    record = '{"idMember": 1, "note": "' + "x" * 1000 + '"}'
    path = write(tmp_path, "\n".join([record] * 500).encode())
    stats = FileStats()
    with path.open("rb") as fh:
        sizes = [
            lines.height
            for lines, _ in iter_lines(fh, stats=stats, chunk_lines=10_000, read_bytes=16 << 10, chunk_bytes=64 << 10)
        ]
    assert sum(sizes) == 500 and stats.lines_read == 500
    # 64 KiB of ~1 KB lines, plus at most one 16 KiB read block past the limit
    assert len(sizes) > 5 and max(sizes) <= (64 + 16 + 16) * 1024 // len(record)
