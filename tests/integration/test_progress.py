"""Progress of run, transform and synth: live on a terminal, plain lines in a pipe, none with --quiet."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evo_frames import api
from evo_frames.progress import LineProgress, Progress, display

CLI = [sys.executable, "-m", "evo_frames"]
FIGURES = re.compile(r"files (\d+)/(\d+), records [\d,]+/\S+, [\d,]+ records/s, \d+ rejects, eta ")


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    api.synth("entries", records=3_000, runs=2, lake=str(tmp_path / "lake"))
    return tmp_path / "lake"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}
    return {**env, "EVO_FRAMES_TARGET": f"duckdb://{tmp_path}/evo.duckdb", "COLUMNS": "160", "TERM": "xterm"}


def _under_pty(args: list[str], env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run a command with a pseudo-terminal as stdin, stdout and stderr; return its exit code and output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            out += data
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=10), out.decode("utf-8", "replace")


def test_run_on_a_terminal_shows_a_live_display_that_updates(lake: Path, tmp_path: Path) -> None:
    code, out = _under_pty([*CLI, "run", "-e", "entries", "--lake", str(lake), "--batch-size", "1"], _env(tmp_path))
    assert code == 0, out
    assert "\x1b[" in out  # drawn in place with control codes
    done = {int(m.group(1)) for m in FIGURES.finditer(out)}
    total = {int(m.group(2)) for m in FIGURES.finditer(out)}
    assert total == {len(list(lake.rglob("*.jsonl.gz")))}
    assert len(done) >= 4, out  # one redraw per batch of one file at least
    assert "entries -> duckdb:" in out  # the summary after the display


def test_piped_output_has_no_control_codes_and_one_line_per_batch(lake: Path, tmp_path: Path) -> None:
    env = _env(tmp_path)
    parts = len(list(lake.rglob("*.jsonl.gz")))
    run = subprocess.run(
        [*CLI, "run", "-e", "entries", "--lake", str(lake), "--batch-size", "1"], capture_output=True, env=env
    )
    assert run.returncode == 0, run.stderr
    assert b"\x1b" not in run.stdout + run.stderr
    lines = run.stderr.decode().splitlines()
    progress = [line for line in lines if line.startswith("progress entries: ")]
    assert len(progress) == parts
    assert FIGURES.search(progress[-1]) and f"files {parts}/{parts}" in progress[-1]
    transform = subprocess.run([*CLI, "transform", "-e", "entries"], capture_output=True, env=env)
    assert transform.returncode == 0, transform.stderr
    assert b"\x1b" not in transform.stdout + transform.stderr
    assert re.search(rb"progress entries: records [\d,]+/[\d,]+, ", transform.stderr)
    synth = subprocess.run(
        [*CLI, "synth", "-e", "prospects", "-n", "200", "--lake", str(tmp_path / "other")], capture_output=True, env=env
    )
    assert synth.returncode == 0, synth.stderr
    assert b"\x1b" not in synth.stdout + synth.stderr
    assert b"progress prospects: records " in synth.stderr


def test_quiet_shows_only_the_summary(lake: Path, tmp_path: Path) -> None:
    code, out = _under_pty([*CLI, "run", "-e", "entries", "--lake", str(lake), "--quiet"], _env(tmp_path))
    assert code == 0, out
    assert "progress" not in out and "\x1b" not in out
    assert "entries -> duckdb:" in out and "loaded" in out


def test_display_is_chosen_by_the_stream() -> None:
    assert type(display(quiet=True)) is Progress
    assert isinstance(display(quiet=False, stream=io.StringIO()), LineProgress)
