"""Identifiers and literals in the SQL the engine writes, the same on every target.

>>> qt(Table("core", 'odd"name', (), ()))
'"core"."odd""name"'
>>> literal("it's")
"'it''s'"
"""

from __future__ import annotations

from ..spec import Table
from .dialect import Dialect


def q(name: str) -> str:
    """Quote one identifier."""
    return '"' + name.replace('"', '""') + '"'


def qt(table: Table) -> str:
    """The quoted ``schema.table`` of a declared table."""
    return f"{q(table.schema)}.{q(table.name)}"


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def select_casts(dialect: Dialect, table: Table, alias: str = "s") -> str:
    """The select list casting the staged ``alias`` columns to ``table``'s declared SQL types."""
    return ", ".join(f"CAST({alias}.{q(c.name)} AS {dialect.types[c.type]})" for c in table.columns)
