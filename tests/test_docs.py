"""The README's CLI reference is the `--help` of every command, and every command has help."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from typer.testing import CliRunner

from evo_frames.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def _help(*args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "100", "TERM": "dumb"}, prog_name="evo-frames")
    assert result.exit_code == 0, result.output
    return result.output.rstrip()


def commands() -> list[str]:
    listed = _help().split("Commands:", 1)[1]
    return re.findall(r"^\s{2}(\w[\w-]*)\s", listed, flags=re.M)


def reference() -> str:
    parts = ["```text", "$ evo-frames --help", _help(), "```"]
    for name in commands():
        parts += ["", f"### evo-frames {name}", "", "```text", _help(name), "```"]
    return "\n".join(parts)


def test_every_command_has_help() -> None:
    names = commands()
    assert {"run", "init", "synth", "status"} <= set(names)
    for name in names:
        text = _help(name)
        summary = text.split("Options:", 1)[0].replace(f"Usage: evo-frames {name}", "")
        assert len(summary.split()) >= 5, f"evo-frames {name} --help has no real description"


def test_readme_cli_reference_matches_help() -> None:
    text = README.read_text(encoding="utf-8")
    current = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert current == reference(), "README CLI reference is stale: run `python tests/test_docs.py` to refresh it"


if __name__ == "__main__":
    text = README.read_text(encoding="utf-8")
    head, rest = text.split(START, 1)
    README.write_text(f"{head}{START}\n{reference()}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")
    sys.exit(0)
