"""docs/tables.md is the rendering of the declarations, and every column has a meaning."""

from __future__ import annotations

from evo_frames import dictionary


def test_tables_md_matches_the_declarations() -> None:
    current = dictionary.PATH.read_text(encoding="utf-8")
    assert current == dictionary.render(), "docs/tables.md is stale: run `python -m evo_frames.dictionary`"


def test_every_table_and_column_is_explained() -> None:
    for _, group in dictionary.tables():
        for table in group:
            assert table.doc, f"{table.qualified} has no doc"
            unexplained = [c.name for c in table.columns if not (c.doc or c.source)]
            assert unexplained == [], f"{table.qualified}: columns without doc or source: {unexplained}"
