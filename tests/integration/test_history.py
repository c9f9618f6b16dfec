"""Every load is on record in evo_meta.runs (one row per load_id and entity), whatever its outcome, and status shows the latest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from evo_frames import pipeline
from evo_frames.errors import SinkError
from tests.helpers import R1, R2, cli, entry, load, rows, write_bronze

REPO = Path(__file__).resolve().parents[2]

LOADS = "SELECT command, status, files, lines_read, inserted, rejects, host, pid, error FROM evo_meta.runs"


def status(lake: Path, target: str, *extra: str) -> dict:
    st = cli("status", "-e", "entries", "--lake", str(lake), "--target", target, "--json", *extra)
    assert st.returncode == 0, st.stderr
    return json.loads(st.stdout)


def test_each_outcome_is_recorded(tmp_path: Path, target_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = cli("run", "-e", "entries", "--lake", str(tmp_path / "nothing"), "--target", target_url)
    assert empty.returncode == 1 and "no bronze files" in empty.stderr
    [failed] = rows(target_url, LOADS)
    assert (failed["status"], failed["files"]) == ("failed", 0) and "no bronze files" in failed["error"]

    write_bronze(str(tmp_path), "entries", R1, [entry(1, 1), entry(2, 2), "{bad"])
    partial = cli("run", "-e", "entries", "--lake", str(tmp_path), "--target", target_url, "--max-bad-ratio", "0.1")
    assert partial.returncode == 3
    got = rows(target_url, LOADS + " WHERE status <> 'failed'")
    assert [(r["status"], r["files"], r["lines_read"], r["inserted"], r["rejects"], r["pid"] > 0) for r in got] == [
        ("partial", 1, 3, 2, 1, True)
    ]

    nothing = cli(
        "run", "-e", "entries", "--lake", str(tmp_path), "--target", target_url, "--run-id", "20990101T000000Z"
    )
    assert nothing.returncode == 1 and "matches --run-id 20990101T000000Z" in nothing.stderr
    assert len(rows(target_url, "SELECT load_id FROM evo_meta.runs")) == 3, nothing.stderr

    def broken(self: pipeline.Loader, files: object, writers: int = 1) -> None:
        raise SinkError("lost postgresql://etl:s3cret@db:5432/x while loading")

    write_bronze(str(tmp_path), "entries", R1, [entry(3, 3)], name="2025-11-03_part-00002.jsonl.gz")
    monkeypatch.setattr(pipeline.Loader, "load", broken)
    with pytest.raises(SinkError):
        load(tmp_path, target_url)
    report = status(tmp_path, target_url, "--loads", "10", "--rejects", "5")["entities"]["entries"]
    last, success = report["last_attempt"], report["last_success"]
    assert last["status"] == "failed" and "s3cret" not in last["error"] and "etl:***@db" in last["error"]
    assert (success["status"], success["files"]) == ("partial", 1)

    tr = cli("transform", "-e", "entries", "--target", target_url, "--json")
    assert tr.returncode == 0, tr.stderr
    assert (json.loads(tr.stdout)["rows_written"], json.loads(tr.stdout)["rows_unchanged"]) == (0, 2)
    assert rows(target_url, LOADS + " WHERE command = 'transform'")[0]["status"] == "succeeded"
    full = status(tmp_path, target_url, "--loads", "10", "--rejects", "5")
    assert [r["status"] for r in full["loads"]] == ["succeeded", "failed", "failed", "partial", "failed"]
    assert [(r["line"], r["stage"]) for r in full["rejects"]] == [(3, "decode")]


def test_transform_before_any_run_says_so(target_url: str) -> None:
    tr = cli("transform", "-e", "entries", "--target", target_url)
    assert tr.returncode == 1 and "evo-frames run -e entries" in tr.stderr
    assert rows(target_url, "SELECT command, status FROM evo_meta.runs") == [
        {"command": "transform", "status": "failed"}
    ]


HANG = """
import sys, time
from evo_frames import pipeline
from tests.helpers import load
def hang(self, files, writers=1):
    print("loading", flush=True)
    time.sleep(120)
pipeline.Loader.load = hang
load(sys.argv[1], sys.argv[2])
"""


def _wait_for_line(proc: subprocess.Popen[str], seconds: float) -> None:
    """Wait (bounded) until the child prints its first line."""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(seconds)
    assert got == ["loading\n"], f"the child did not start loading: {got}"


def test_a_killed_load_shows_as_interrupted(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(1, 1)])
    child = subprocess.Popen(
        [sys.executable, "-c", HANG, str(tmp_path), target_url], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        _wait_for_line(child, 60)
        live = cli("status", "-e", "entries", "--lake", str(tmp_path), "--target", target_url, "--json")
        if target_url.startswith("duckdb"):  # the writer holds the file: one line naming it
            assert live.returncode == 1 and f"locked by another process (pid {child.pid})" in live.stderr
        else:
            assert json.loads(live.stdout)["entities"]["entries"]["last_attempt"]["status"] == "running"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    last = status(tmp_path, target_url)["entities"]["entries"]["last_attempt"]
    assert last["status"] == "interrupted" and f"pid {child.pid}" in last["error"]
    assert rows(target_url, "SELECT status FROM evo_meta.runs") == [{"status": "running"}]  # status only reads
    again = load(tmp_path, target_url)
    assert again.files_loaded == 1
    assert sorted(r["status"] for r in rows(target_url, "SELECT status FROM evo_meta.runs")) == [
        "interrupted",
        "succeeded",
    ]


def test_a_run_id_or_since_that_matches_no_file_fails_naming_the_nearest_runs(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(1, 1)])
    write_bronze(str(tmp_path), "entries", R2, [entry(2, 2)])
    lake = ("--lake", str(tmp_path), "--target", target_url)
    typo = cli("run", "-e", "entries", *lake, "--run-id", "20260118T031552Z")
    assert typo.returncode == 1, typo.stderr
    [error] = [line for line in typo.stderr.splitlines() if line.startswith("error:")]
    assert f"matches --run-id 20260118T031552Z; the nearest runs in the lake: {R2}, {R1}" in error
    late = cli("run", "-e", "entries", *lake, "--since", "2099-01-01")
    assert (
        late.returncode == 1 and f"matches --since 2099-01-01; the nearest runs in the lake: {R2}, {R1}" in late.stderr
    )
    recorded = rows(target_url, "SELECT status, files, error FROM evo_meta.runs ORDER BY started_at")
    assert [(r["status"], r["files"]) for r in recorded] == [("failed", 0), ("failed", 0)]
    assert "--run-id 20260118T031552Z" in recorded[0]["error"] and R2 in recorded[0]["error"]
    right = cli("run", "-e", "entries", *lake, "--run-id", R2, "--json")
    assert right.returncode == 0 and json.loads(right.stdout)["files"]["loaded"] == 1, right.stderr


def test_one_identity_per_file_however_the_lake_is_spelled(tmp_path: Path, target_url: str) -> None:
    lake = tmp_path / "lake"
    write_bronze(str(lake), "entries", R1, [entry(1, 1)])
    (tmp_path / "link").symlink_to(lake)
    first = cli("run", "-e", "entries", "--lake", str(lake), "--target", target_url)
    assert first.returncode == 0, first.stderr
    for spelling in (f"{lake}/../lake/", str(tmp_path / "link"), f"file://{lake}/"):
        again = cli("run", "-e", "entries", "--lake", spelling, "--target", target_url, "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["files"] == {
            "found": 1, "skipped_already_loaded": 1, "loaded": 0, "loaded_by_concurrent_load": 0, "partial": [],
        }  # fmt: skip
        report = status(Path(spelling), target_url)["entities"]["entries"]
        assert (report["files_in_lake"], report["files_loaded"]) == (1, 1)


def test_names_with_control_characters_and_links_out_of_the_lake(tmp_path: Path, target_url: str) -> None:
    lake, outside = tmp_path / "lake", tmp_path / "outside"
    good = Path(write_bronze(str(lake), "entries", R1, [entry(1, 1)]))
    secret = Path(write_bronze(str(outside), "entries", R1, [entry(2, 2)]))
    (good.parent / "2025-11-04_part-00001.jsonl.gz").symlink_to(secret)
    (good.parent / "x\n2026-01-01 00:00:00,000 ERROR evo_frames: forged.jsonl.gz").write_bytes(b"")
    run = cli("run", "-e", "entries", "--lake", str(lake), "--target", target_url, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["files"]["loaded"] == 1
    assert not [line for line in run.stderr.splitlines() if line.startswith("2026-01-01 00:00:00,000 ERROR")]
    assert "x\\n2026-01-01 00:00:00,000 ERROR evo_frames: forged.jsonl.gz" in run.stderr
    assert f"{good.parent}/2025-11-04_part-00001.jsonl.gz: a symbolic link to {secret}" in run.stderr
    assert rows(target_url, "SELECT count(*) AS n FROM stg_evo.entries_raw") == [{"n": 1}]
    text = cli("status", "-e", "entries", "--lake", str(lake), "--target", target_url)
    assert text.returncode == 0, text.stderr
    assert "x\\n2026-01-01" in text.stdout and "\n2026-01-01" not in text.stdout
    assert "outside the lake" in text.stdout and "not followed" in text.stdout
