"""The engine names no entity and no entity table, and its imports go one way (README "Architecture").

The names come from the registry, so an entity added to ``transforms/`` is checked too.
"""

from __future__ import annotations

import ast
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from evo_frames.registry import discover

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "evo_frames"


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants (first statement of a module, class or function)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every string constant of a module but its docstrings; f-strings give their literal parts."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node.lineno, node.value


def _domain_names() -> set[str]:
    """Every entity's name and each of its tables' names, bare (``evo_members``) and qualified (``core.evo_members``)."""
    names: set[str] = set()
    for entity in discover().values():
        names.add(entity.name)
        for table in entity.tables:
            names |= {table.name, table.qualified}
    return names


def _pattern(names: set[str]) -> re.Pattern[str]:
    # A name counts where it stands as a word: not inside a longer run of letters. Entity names
    # are ordinary English plurals (entries, sales, members), so "memberships" or "salesperson"
    # must not count, while "entity=members/", "members_raw", "idx_members_x" or "(members, sales"
    # do: digits, `_`, `.`, `=` and punctuation all end a word here. Table names are identifiers
    # (evo_members, stg_evo.members_raw) and match the same way, so both the bare and the
    # qualified form are found inside SQL text.
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z])(?:{alternatives})(?![A-Za-z])")


def test_the_pattern_finds_names_as_words_only() -> None:
    pattern = _pattern({"members", "evo_members", "core.evo_members"})
    hits = ["members", "entity=members/", "members_raw", "select * from core.evo_members", "(members, sales)"]
    misses = ["memberships", "member", "nonmembers", "membersince"]
    assert [s for s in hits if not pattern.search(s)] == []
    assert [s for s in misses if pattern.search(s)] == []


def test_strings_are_literals_and_f_string_parts_but_not_docstrings(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        '"""Module doc: ghosts."""\n'
        "def f(x):\n"
        '    """Function doc: ghosts."""\n'
        '    return f"select * from core.{x}_ghosts", "plain ghosts"\n'
        "class C:\n"
        '    """Class doc: ghosts."""\n'
        '    name = "ghosts"\n'
    )
    assert sorted(_strings(module)) == [(4, "_ghosts"), (4, "plain ghosts"), (4, "select * from core."), (7, "ghosts")]


def test_no_string_in_the_engine_names_an_entity_or_its_tables() -> None:
    names = _domain_names()
    assert {"members", "evo_members", "core.evo_member_memberships", "stg_evo.entries_raw"} <= names
    pattern = _pattern(names)
    hits = [
        f"{path.relative_to(ROOT)}:{line}: {sorted(set(pattern.findall(text)))} in {text[:60]!r}"
        for path in sorted(ENGINE.rglob("*.py"))
        for line, text in _strings(path)
        if pattern.search(text)
    ]
    assert hits == [], "the engine names entities; let the entity declare it or ask the registry:\n" + "\n".join(hits)


# -- the direction of imports ----------------------------------------------------------------------

#: the foundation: types, errors, settings, the registry and the readers; each imports only the foundation
FOUNDATION = {
    "evo_frames",  # the package itself: the public API re-exports errors and spec
    "evo_frames.config",
    "evo_frames.errors",
    "evo_frames.expr",
    "evo_frames.lake",
    "evo_frames.pgbin",
    "evo_frames.progress",
    "evo_frames.reader",
    "evo_frames.registry",
    "evo_frames.retry",
    "evo_frames.spec",
    "evo_frames.synth.kit",
}
#: what transforms/ may use of the engine: the public API, the declarations, the expression helpers, the synth kit
PUBLIC_FOR_TRANSFORMS = {"evo_frames", "evo_frames.spec", "evo_frames.expr", "evo_frames.synth.kit"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(package: str) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def _imported(path: Path, known: set[str]) -> set[str]:
    """Modules a module imports (also inside functions and ``TYPE_CHECKING``), relative imports resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = base[: len(base) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            # `from . import drift` imports the module evo_frames.drift, `from .x import f` the module x
            found |= {f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names}
    return found


def _engine_edges() -> list[tuple[str, str]]:
    modules = _modules("evo_frames")
    return [(src, dst) for src, path in modules.items() for dst in sorted(_imported(path, set(modules)))]


def test_the_engine_never_imports_transforms() -> None:
    # the registry finds entity modules by the package name in $EVO_FRAMES_TRANSFORMS (importlib)
    bad = [f"{s} imports {d}" for s, d in _engine_edges() if d.split(".")[0] == "transforms"]
    assert bad == []


def test_the_foundation_imports_only_the_foundation() -> None:
    bad = [f"{s} imports {d}" for s, d in _engine_edges() if s in FOUNDATION and _is_engine(d) and d not in FOUNDATION]
    assert bad == []


def test_sinks_import_only_sinks_and_the_foundation() -> None:
    bad = [
        f"{s} imports {d}"
        for s, d in _engine_edges()
        if _is_sink(s) and _is_engine(d) and not (_is_sink(d) or d in FOUNDATION)
    ]
    assert bad == []


def test_only_the_entry_point_imports_the_cli() -> None:
    bad = [f"{s} imports {d}" for s, d in _engine_edges() if d == "evo_frames.cli" and s != "evo_frames.__main__"]
    assert bad == []


def test_transforms_use_only_the_public_engine() -> None:
    modules = _modules("transforms")
    known = set(modules) | set(_modules("evo_frames"))
    bad = [
        f"{src} imports {dst}"
        for src, path in modules.items()
        for dst in sorted(_imported(path, known))
        if _is_engine(dst) and dst not in PUBLIC_FOR_TRANSFORMS
    ]
    assert bad == []


def test_the_layer_lists_name_real_modules() -> None:
    assert set(_modules("evo_frames")) >= FOUNDATION, FOUNDATION - set(_modules("evo_frames"))
    assert "evo_frames.cli" in _modules("evo_frames")


def _is_engine(module: str) -> bool:
    return module.split(".")[0] == "evo_frames"


def _is_sink(module: str) -> bool:
    return module.startswith("evo_frames.sinks")


# -- what the engine said about an entity, the entity now says itself ------------------------------

GHOSTS = '''
import polars as pl

from evo_frames.spec import Column, Entity, Table

KEY = (Column("ghost_id", "bigint", nullable=False),)
GHOSTS = Table("core", "ghosts", KEY, primary_key=("ghost_id",), doc="one row per ghost")
NOTES = """## Ghosts are never seen twice

- `core.ghosts` keeps the first sighting.
"""
ENTITY = Entity(
    name="ghosts",
    record=pl.Struct({"id": pl.String}),
    key=KEY,
    keys=lambda records, ctx: records,
    core=(GHOSTS,),
    transform=lambda records, ctx: {},
    notes=NOTES,
)
'''


def test_the_data_dictionary_takes_an_entitys_notes_from_the_entity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evo_frames import dictionary

    package = f"pkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "ghosts.py").write_text(GHOSTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("EVO_FRAMES_TRANSFORMS", package)
    text = dictionary.render()
    notes = "## Ghosts are never seen twice\n\n- `core.ghosts` keeps the first sighting.\n"
    assert text.startswith(dictionary.INTRO + "\n" + notes + "\n## STG")
    assert "### core.ghosts" in text
    # the engine's own introduction says nothing of any entity of the default package
    assert "core.ghosts" not in dictionary.INTRO and "evo_members" not in dictionary.INTRO
