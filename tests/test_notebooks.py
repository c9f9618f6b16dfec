"""Every notebook runs top to bottom against the package (nbclient, a real kernel), on both targets,
draws its plots, and is committed without outputs.

``python tests/test_notebooks.py`` runs the notebooks on a fresh DuckDB file and writes the plots
of ``explore_staging`` to ``docs/plots.png`` (the picture in the README).
"""

from __future__ import annotations

import base64
import io
import os
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PLOTS = ROOT / "docs" / "plots.png"


def execute(path: Path, workdir: Path) -> nbformat.NotebookNode:
    """Run a notebook in ``workdir`` with the current environment; return it with its outputs."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()
    return notebook


def outputs(notebook: nbformat.NotebookNode, kind: str) -> list[nbformat.NotebookNode]:
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == kind]


def images(notebook: nbformat.NotebookNode) -> list[bytes]:
    return [base64.b64decode(o.data["image/png"]) for o in outputs(notebook, "display_data") if "image/png" in o.data]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, target_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("EVO_FRAMES_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("EVO_FRAMES_TARGET", target_url)
    notebook = execute(path, tmp_path)
    assert outputs(notebook, "error") == []
    if path.stem == "explore_staging":
        pngs = images(notebook)
        assert len(pngs) >= 4  # heatmap, sales and receivables, membership status, throughput
        assert all(p.startswith(b"\x89PNG") and len(p) > 5_000 for p in pngs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, c in enumerate(notebook.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert dirty == [], f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    assert len(NOTEBOOKS) >= 1


def write_plots(target: Path = PLOTS) -> None:
    """Run explore_staging on a fresh DuckDB file and tile its plots into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    for name in [n for n in os.environ if n.startswith("EVO_FRAMES_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory() as workdir:
        pngs = images(execute(ROOT / "notebooks" / "explore_staging.ipynb", Path(workdir)))
    fig, axes = plt.subplots(2, 2, figsize=(16, 8), dpi=100)
    for ax, png in zip(axes.flat, pngs, strict=False):
        ax.imshow(mpimg.imread(io.BytesIO(png), format="png"))
        ax.axis("off")
    fig.tight_layout()
    target.parent.mkdir(exist_ok=True)
    fig.savefig(target)
    print(f"wrote {target} ({len(pngs)} plots)")


if __name__ == "__main__":
    write_plots(Path(sys.argv[1]) if len(sys.argv) > 1 else PLOTS)
