"""Bronze layout parsing, listing through fsspec and file selection."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import fsspec
import pytest

from evo_frames.lake import list_files, parse_path, select_files

GOOD = [
    ("entity=entries/ingestion_date=2026-01-11/run_id=20260111T031522Z/2024-03-04_part-00012.jsonl.gz", "entries"),
    ("entity=members/ingestion_date=2026-01-11/run_id=20260111T031522Z/2024-03_part-00001.jsonl.gz", "members"),
    ("entity=prospects/ingestion_date=2026-01-12/run_id=20260111T031522Z/part-00001.jsonl.gz", "prospects"),
]
BAD = [
    "entity=entries/ingestion_date=2026-01-11/2024-03-04_part-00012.jsonl.gz",  # no run_id
    "entity=entries/ingestion_date=2026-13-11/run_id=20260111T031522Z/part-00001.jsonl.gz",  # month 13
    "entity=entries/ingestion_date=2026-01-11/run_id=20260111T031522/part-00001.jsonl.gz",  # no Z
    "entity=entries/ingestion_date=2026-01-11/run_id=20260111T031522Z/part-1.jsonl.gz",  # 1-digit part
    "entity=entries/ingestion_date=2026-01-11/run_id=20260111T031522Z/part-00001.json",  # not gz
]


@pytest.mark.parametrize(("path", "entity"), GOOD)
def test_parse_layout(path: str, entity: str) -> None:
    parsed = parse_path("lake/bronze/evo/" + path)
    assert parsed is not None and parsed[0] == entity
    assert isinstance(parsed[1], dt.date) and parsed[2] == "20260111T031522Z"


@pytest.mark.parametrize("path", BAD)
def test_reject_layout(path: str) -> None:
    assert parse_path("lake/bronze/evo/" + path) is None


def _touch(fs: fsspec.AbstractFileSystem, path: str, data: bytes = b"x") -> None:
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as f:
        f.write(data)


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_list_reports_layout_problems(tmp_path: Path, kind: str) -> None:
    lake = str(tmp_path) if kind == "local" else f"memory://lake-{tmp_path.name}"
    fs, root = fsspec.core.url_to_fs(lake)
    base = f"{root}/bronze/evo/entity=entries"
    _touch(fs, f"{base}/ingestion_date=2026-01-12/run_id=20260112T031522Z/2025-01-06_part-00001.jsonl.gz")
    _touch(fs, f"{base}/ingestion_date=2026-01-11/run_id=20260111T031522Z/2025-01-06_part-00002.jsonl.gz", b"yy")
    _touch(fs, f"{base}/ingestion_date=2026-01-11/run_id=20260111T031522Z/_manifest.json")
    _touch(fs, f"{base}/stray.jsonl.gz")
    files, problems = list_files(lake, "entries")
    assert [f.run_id for f in files] == ["20260111T031522Z", "20260112T031522Z"]  # oldest run first
    assert files[0].size == 2 and files[0].etag
    assert len(problems) == 1 and "stray.jsonl.gz" in problems[0] and "does not follow" in problems[0]
    if kind == "memory":
        assert files[0].path.startswith("memory://")


def test_missing_lake_lists_nothing(tmp_path: Path) -> None:
    assert list_files(str(tmp_path / "nothing"), "entries") == ([], [])


def test_select_skips_loaded_and_reloads_changed(tmp_path: Path) -> None:
    fs, root = fsspec.core.url_to_fs(str(tmp_path))
    base = f"{root}/bronze/evo/entity=sales"
    for run, day in (("20260111T031522Z", "2026-01-11"), ("20260120T031522Z", "2026-01-20")):
        _touch(fs, f"{base}/ingestion_date={day}/run_id={run}/2025-01_part-00001.jsonl.gz")
    files, _ = list_files(str(tmp_path), "sales")
    old, new = files
    loaded = {old.path: (old.size, old.etag)}
    chosen, skipped = select_files(files, loaded=loaded)
    assert chosen == [new] and skipped == 1
    changed = {old.path: (old.size + 1, old.etag)}
    assert select_files(files, loaded=changed)[0] == [old, new]
    assert select_files(files, loaded=loaded, run_id=old.run_id) == ([], 1)
    assert select_files(files, loaded={}, since=dt.date(2026, 1, 15))[0] == [new]
    assert select_files(files, loaded=loaded, reload=True)[0] == [old, new]


def test_storage_hiccups_are_transient_and_missing_files_are_not() -> None:
    from evo_frames.errors import SourceError, TransientSourceError
    from evo_frames.lake import reading
    from evo_frames.retry import is_transient

    class ServiceResponseError(Exception):  # the name azure-core gives its transport failures
        pass

    for error in (ConnectionResetError("reset by peer"), TimeoutError("read timed out"), ServiceResponseError("503")):
        with pytest.raises(TransientSourceError) as caught, reading("az://c/x.jsonl.gz"):
            raise error
        assert is_transient(caught.value) and "az://c/x.jsonl.gz" in str(caught.value)
    with pytest.raises(FileNotFoundError), reading("az://c/x.jsonl.gz"):
        raise FileNotFoundError("gone")
    assert not is_transient(SourceError("layout"))
