"""Every kind of bad bronze input, on both sinks: what loads, what is rejected where, counts reconcile."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import load, rows, scalar, write_bronze

R1 = "20260111T031522Z"


def entry(second: int, member: int, **extra: object) -> dict[str, object]:
    return {"date": f"2025-11-03T06:41:{second:02d}", "idMember": member, "idBranch": 57, "device": "CATRACA 01",
            "entryAction": "Allowed", **extra}  # fmt: skip


def line(rec: dict[str, object]) -> bytes:
    return json.dumps(rec, ensure_ascii=False).encode()


def rejects(target: str) -> list[tuple[int, str, str]]:
    got = rows(target, "SELECT line, stage, reason FROM evo_meta.rejects ORDER BY line")
    return [(r["line"], r["stage"], r["reason"]) for r in got]


def reconcile(target: str) -> None:
    for f in rows(target, "SELECT lines_read, rows_loaded, duplicates, rejects FROM evo_meta.files"):
        assert f["lines_read"] == f["rows_loaded"] + f["duplicates"] + f["rejects"], f


def test_every_bad_line_kind_in_one_file(tmp_path: Path, target_url: str) -> None:
    big = entry(59, 9, nameMember="x" * (5 << 20))
    lines = [
        b"\xef\xbb\xbf" + line(entry(1, 1)),                   # 1 BOM before the first record
        line(entry(2, 2)) + b"\r",                             # 2 CRLF ending
        b"{\"date\": \"2025-11-03T06:41:03\", \"idMember\": ",  # 3 malformed JSON
        line({"idMember": 4, "device": "no date"}),           # 4 no key
        line(entry(5, 5, nameMember="a\\u0000b")).replace(b"\\\\u0000", b"\\u0000"),  # 5 NUL escape
        b"{\"date\": \"2025-11-03T06:41:06\", \"nameMember\": \"Jo\xe3o\"}",  # 6 invalid UTF-8 (latin-1)
        b"",                                                   # 7 blank
        b"   ",                                                # 8 whitespace only
        b"[1, 2]",                                             # 9 array
        b"42",                                                 # 10 scalar
        b"null",                                               # 11 null
        line(entry(2, 2, nameMember="second copy")),           # 12 duplicate key of line 2
        line({**entry(13, 13), "idBranch": {"nested": True}}),  # 13 drift: object where a scalar belongs
        line({**entry(14, 14), "date": 20251103}),             # 14 key of the wrong type
        line(big),                                             # 15 5 MB record, last line, no newline
    ]  # fmt: skip
    write_bronze(str(tmp_path), "entries", R1, lines)
    s = load(tmp_path, target_url)
    assert s.lines_read == 13  # 15 physical lines, 2 blank
    got = rejects(target_url)
    assert [(n, stage) for n, stage, _ in got] == [
        (3, "decode"), (4, "transform"), (5, "decode"), (6, "read"), (9, "decode"), (10, "decode"),
        (11, "decode"), (14, "transform"),
    ]  # fmt: skip
    reasons = dict((n, r) for n, _, r in got)
    assert "malformed JSON" in reasons[3] and "date" in reasons[4] and "\\u0000" in reasons[5]
    assert "UTF-8" in reasons[6] and "not a JSON object" in reasons[9] and "20251103" in reasons[14]
    assert (s.rows_loaded, s.duplicates, s.rejects) == (4, 1, 8)
    loaded = rows(target_url, "SELECT member_id, member_name, branch_id FROM core.evo_entries ORDER BY member_id")
    assert [r["member_id"] for r in loaded] == [1, 2, 9, 13]
    assert loaded[1]["member_name"] == "second copy"  # the later line wins
    assert loaded[3]["branch_id"] is None  # the drifted value becomes NULL, and is counted
    assert s.cast_failures == {"core.evo_entries.branch_id": 1}
    assert len(loaded[2]["member_name"]) == 5 << 20
    assert rows(target_url, "SELECT _source_line FROM stg_evo.entries_raw ORDER BY _source_line")[0] == {
        "_source_line": 1
    }
    reconcile(target_url)


def test_truncated_gzip_loads_complete_lines_and_reloads_when_repaired(tmp_path: Path, target_url: str) -> None:
    full = gzip.compress(b"\n".join(line(entry(i, i)) for i in range(40)), mtime=0)
    write_bronze(str(tmp_path), "entries", R1, [], raw=full[: len(full) * 2 // 3])
    s = load(tmp_path, target_url)
    assert len(s.files_partial) == 1 and s.rejects >= 1 and 0 < s.rows_loaded < 40
    files = rows(target_url, "SELECT partial, error FROM evo_meta.files")
    assert files[0]["partial"] is True and "truncated" in files[0]["error"]
    reconcile(target_url)
    unchanged = load(tmp_path, target_url)  # the same truncated copy is not read again
    assert (unchanged.files_skipped, unchanged.files_loaded, unchanged.files_partial) == (1, 0, [])
    write_bronze(str(tmp_path), "entries", R1, [], raw=full)  # the repaired copy
    again = load(tmp_path, target_url)
    assert again.files_loaded == 1 and again.rejects == 0
    assert scalar(target_url, "SELECT count(*) FROM core.evo_entries") == 40
    assert scalar(target_url, "SELECT count(*) FROM evo_meta.rejects") == 0  # rejects of the old copy are gone
    reconcile(target_url)


def test_empty_file_and_plain_records(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [], raw=b"")
    write_bronze(str(tmp_path), "entries", R1, [], raw=gzip.compress(b""), name="2025-11-03_part-00002.jsonl.gz")
    s = load(tmp_path, target_url)
    assert (s.files_loaded, s.lines_read, s.rejects) == (2, 0, 0)
    assert load(tmp_path, target_url).files_loaded == 0


def test_member_key_of_the_wrong_type(tmp_path: Path, target_url: str) -> None:
    good = {"idMember": 1, "firstName": "Ana"}
    write_bronze(str(tmp_path), "members", R1, [good, {"idMember": "abc"}, {"idMember": 2.5}, {"firstName": "x"}],
                 name="2023-02_part-00001.jsonl.gz")  # fmt: skip
    s = load(tmp_path, target_url, "members")
    assert (s.rows_loaded, s.rejects) == (1, 3)
    reasons = [r for _, _, r in rejects(target_url)]
    assert "abc" in reasons[0] and "2.5" in reasons[1] and "missing" in reasons[2]


def test_max_bad_ratio_exits_3_after_loading(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [line(entry(1, 1)), b"{bad", b"{worse"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}
    args = [sys.executable, "-m", "evo_frames", "run", "--entity", "entries", "--lake", str(tmp_path),
            "--target", target_url]  # fmt: skip
    r = subprocess.run([*args, "--max-bad-ratio", "0.5"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "rejected 2 of 3 lines" in r.stderr and "--max-bad-ratio 0.5" in r.stderr
    assert scalar(target_url, "SELECT count(*) FROM core.evo_entries") == 1  # the good line is loaded


def test_reject_holding_nul_bytes_is_stored(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [line(entry(1, 1)), b'{"a": "\x00\xff"}'])
    s = load(tmp_path, target_url)
    assert (s.rows_loaded, s.rejects) == (1, 1)
    raw = rows(target_url, "SELECT raw FROM evo_meta.rejects")[0]["raw"]
    assert "\\u0000" in raw and "\x00" not in raw
