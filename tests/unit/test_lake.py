"""Bronze layout parsing, listing through fsspec and file selection."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from evo_frames.errors import SourceError
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


LAYOUT = "bronze/evo/entity=entries/ingestion_date=2026-01-11/run_id=20260111T031522Z"


def test_every_spelling_of_a_local_root_gives_the_same_paths(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    fs, _ = fsspec.core.url_to_fs(str(lake))
    _touch(fs, f"{lake}/{LAYOUT}/2025-01-06_part-00001.jsonl.gz")
    (tmp_path / "link").symlink_to(lake)
    spellings = [str(lake), f"{lake}/", f"{lake}/../lake", f"file://{lake}/", str(tmp_path / "link"), "lake"]
    monkey = pytest.MonkeyPatch()
    monkey.chdir(tmp_path)
    try:
        listed = {spelling: [f.path for f in list_files(spelling, "entries")[0]] for spelling in spellings}
    finally:
        monkey.undo()
    assert all(paths == [f"{lake.resolve()}/{LAYOUT}/2025-01-06_part-00001.jsonl.gz"] for paths in listed.values())


def test_a_link_out_of_the_lake_is_not_followed(tmp_path: Path) -> None:
    lake, outside = tmp_path / "lake", tmp_path / "elsewhere"
    fs, _ = fsspec.core.url_to_fs(str(lake))
    _touch(fs, f"{lake}/{LAYOUT}/2025-01-06_part-00001.jsonl.gz")
    _touch(fs, f"{outside}/secret.jsonl.gz")
    _touch(fs, f"{outside}/d/2025-01-08_part-00001.jsonl.gz")
    (lake / LAYOUT / "2025-01-07_part-00001.jsonl.gz").symlink_to(outside / "secret.jsonl.gz")
    (lake / LAYOUT / "sub").symlink_to(outside / "d")
    inside = lake / LAYOUT / "2025-01-09_part-00001.jsonl.gz"
    inside.symlink_to(lake / LAYOUT / "2025-01-06_part-00001.jsonl.gz")
    files, problems = list_files(str(lake), "entries")
    assert [f.path.rsplit("/", 1)[1] for f in files] == ["2025-01-06_part-00001.jsonl.gz", inside.name]
    outside_links = [p for p in problems if "outside the lake" in p and "not followed" in p]
    assert len(outside_links) == 2 and any("2025-01-07_part-00001.jsonl.gz" in p for p in outside_links)


def test_control_characters_in_names_are_escaped(tmp_path: Path) -> None:
    fs, _ = fsspec.core.url_to_fs(str(tmp_path))
    _touch(fs, f"{tmp_path}/{LAYOUT}/x\n2026-01-01 ERROR forged\x1b[2J.jsonl.gz")
    _, [problem] = list_files(str(tmp_path), "entries")
    assert "\n" not in problem and "\x1b" not in problem
    assert "x\\n2026-01-01 ERROR forged\\x1b[2J.jsonl.gz" in problem


def test_nearest_runs_are_those_closest_in_time(tmp_path: Path) -> None:
    from evo_frames.lake import BronzeFile, nearest_runs

    runs = ["20260104T031522Z", "20260111T031522Z", "20260118T031522Z", "20260125T031522Z"]
    files = [BronzeFile(r, f"p{r}", "entries", dt.date(2026, 1, 1), 1, "e") for r in runs]
    assert nearest_runs(files, "20260112T000000Z") == ["20260111T031522Z", "20260118T031522Z", "20260104T031522Z"]
    assert nearest_runs(files, "2026011") == runs[::-1][:3]  # not a run id: the latest


@pytest.fixture
def http_lake(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server listing ``tmp_path`` (directory index pages, as fsspec's HTTP lake reads)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_lake_lists_each_file_as_its_url(http_lake: tuple[Path, str]) -> None:
    root, url = http_lake
    path, _ = GOOD[0]
    _touch(fsspec.filesystem("file"), f"{root}/lake/bronze/evo/{path}")
    files, problems = list_files(f"{url}/lake", "entries")
    assert problems == []
    assert [f.path for f in files] == [f"{url}/lake/bronze/evo/{path}"]


def test_an_http_lake_that_refuses_the_connection_fails_instead_of_listing_empty() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match=rf"^cannot list http://127\.0\.0\.1:{port}/lake/bronze/evo/entity=entries: "):
        list_files(f"http://127.0.0.1:{port}/lake", "entries")


def test_an_http_lake_without_the_entity_lists_nothing(http_lake: tuple[Path, str]) -> None:
    assert list_files(f"{http_lake[1]}/lake", "entries") == ([], [])
