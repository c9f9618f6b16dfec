"""Package rules: imports go one way, transforms stay pure, the public API is complete."""

from __future__ import annotations

import ast
from pathlib import Path

import evo_frames

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_engine_never_imports_transforms() -> None:
    offenders = [p.name for p in (ROOT / "evo_frames").rglob("*.py") if "transforms" in _imports(p)]
    assert offenders == [], f"engine modules import transforms by name: {offenders}; use evo_frames.registry"


def test_transforms_import_only_polars_and_the_engine() -> None:
    allowed = {"__future__", "polars", "polars_hash", "evo_frames", "typing", "collections", "datetime"}
    for path in (ROOT / "transforms").glob("*.py"):
        extra = _imports(path) - allowed
        assert not extra, f"{path.name} imports {sorted(extra)}; transforms are pure Polars"


def test_transforms_do_no_io_collect_or_row_loops() -> None:
    banned = {"collect", "collect_all", "map_elements", "iter_rows", "rows", "to_list", "read_ndjson", "scan_ndjson"}
    for path in (ROOT / "transforms").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        assert not calls & banned, f"{path.name} calls {sorted(calls & banned)}"
        assert "open(" not in path.read_text(encoding="utf-8"), f"{path.name} opens files"


def test_public_api_is_sorted_and_complete() -> None:
    names = evo_frames.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(evo_frames, name), name
    public = {n for n in vars(evo_frames) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(names), f"not in __all__: {sorted(public - set(names))}"


def test_transforms_type_nested_records_with_whole_column_operations() -> None:
    # list.eval and Python callbacks work element by element; explode/unnest, joins and
    # group_by type every element of a chunk at once
    banned = {"eval", "map_batches", "map_elements", "map_rows"}
    paths = [p for p in (ROOT / "transforms").glob("*.py") if not p.name.endswith("_sample.py")]
    for path in [*paths, ROOT / "evo_frames" / "expr.py"]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        assert not calls & banned, f"{path.name} calls {sorted(calls & banned)}"
