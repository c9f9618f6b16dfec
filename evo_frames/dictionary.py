"""The data dictionary, ``docs/tables.md``, rendered from the table declarations.

``python -m evo_frames.dictionary`` rewrites the file; ``tests/test_dictionary.py`` keeps it in
step with the declarations.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .registry import discover
from .sinks.sql import MANAGED, META_TABLES
from .spec import Column, Table

PATH = Path(__file__).resolve().parent.parent / "docs" / "tables.md"

#: meaning of the columns the sink adds to every table (:data:`~evo_frames.sinks.sql.MANAGED`)
MANAGED_DOCS = {
    "_loaded_at": "when the row was first inserted",
    "_updated_at": "when the row's content last changed (unchanged re-sends leave it)",
}

INTRO = """# Tables

Generated from the declarations (`transforms/*.py`, `evo_frames/spec.py`, `evo_frames/sinks/sql.py`)
by `python -m evo_frames.dictionary`; a test keeps it in step. Types are the logical types
(PostgreSQL: `json` is `JSONB`, `decimal` is `NUMERIC(15,2)`). *source* is the top-level key of the
bronze JSON record a column is typed from (`list[].field` for a field of a list's elements), where
it is one key; a column with a source and no meaning of its own means what that EVO field means
(see the EVO API model). A value present at the source that could not be typed is stored as NULL
and counted in `evo_meta.cast_failures`.

Lineage: STG's `run_id`, `_source_file` and `_source_line` say which bronze run, file (`path` in
`evo_meta`) and line a record came from; CORE keeps the run as `_source_run_id`. A load's
`load_id` (`evo_meta.runs`) is a different thing: one invocation of `evo-frames run` or
`transform`.
"""


def _row(col: Column, key: tuple[str, ...]) -> str:
    flags = " (key)" if col.name in key else ("" if col.nullable else " not null")
    source = f"`{col.source}`" if col.source else ""
    return f"| `{col.name}` | {col.type}{flags} | {source} | {col.doc} |"


def _table(table: Table) -> list[str]:
    lines = [f"### {table.qualified}", "", table.doc, "", "| column | type | source | meaning |", "|---|---|---|---|"]
    lines += [_row(c, table.primary_key) for c in table.columns]
    lines += [f"| `{m}` | timestamptz not null |  | {MANAGED_DOCS[m]} |" for m in MANAGED]
    return [*lines, ""]


def tables() -> Iterable[tuple[str, list[Table]]]:
    """The documented tables, by layer."""
    entities = sorted(discover().values(), key=lambda e: (e.order, e.name))
    yield "STG (`stg_evo`)", [e.stg for e in entities]
    yield "CORE (`core`)", [t for e in entities for t in e.core]
    yield "Bookkeeping (`evo_meta`)", list(META_TABLES)


def render() -> str:
    # what an entity's tables need said beyond their columns is the entity's own (Entity.notes)
    lines = [INTRO, *(e.notes for e in sorted(discover().values(), key=lambda e: (e.order, e.name)) if e.notes)]
    for layer, group in tables():
        lines += [f"## {layer}", ""]
        for table in group:
            lines += _table(table)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    PATH.write_text(render(), encoding="utf-8")
