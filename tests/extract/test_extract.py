"""``evo-frames extract`` against a fake EVO API on 127.0.0.1 (``tests/extract/fake_api.py``).

Every record arrives exactly once through 500s, 429s, timeouts and resets; a window that keeps
failing fails the run naming it, and ``--resume`` completes it with no record twice; the rate
limit and ``Retry-After`` hold on the server's own request timestamps; no secret is printed or
written; and ``extract`` → ``run`` gives exactly the API's records in CORE on both targets.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from evo_frames.config import Settings
from evo_frames.extract import END_OF_DAY, Credentials, RateLimiter, extract_entity, new_run_id, windows
from evo_frames.spec import Entity
from tests.extract.fake_api import FakeEvo, Fault, bronze_records, synth_records
from tests.helpers import ENTITIES, load, rows, scalar

USER = "skyfit-gym.w12app.com.br"
PASSWORD = "p@ss:w/rd%20&take=9\"'\\ é!#"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
START, END = dt.date(2020, 6, 1), dt.date(2026, 1, 11)  # the span synth spreads records over
KEYS = {"members": "idMember", "sales": "idSale", "prospects": "idProspect"}
RECIPE = ("idMember", "idProspect", "idEmployee", "idBranch", "device", "entryAction")


def _canon(records: Any) -> Counter[str]:
    return Counter(json.dumps(r, sort_keys=True, ensure_ascii=False) for r in records)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("synth")
    return {name: synth_records(folder, name, 300, seed=3) for name in ENTITIES}


def _fake(records: dict[str, list[dict[str, Any]]]) -> FakeEvo:
    apis = {name: e.api for name, e in ENTITIES.items() if e.api is not None}
    return FakeEvo(apis, records, username=USER, password=PASSWORD, envelope=(apis["prospects"].path,))


@pytest.fixture
def fake(records: dict[str, list[dict[str, Any]]]) -> Iterator[FakeEvo]:
    with _fake(records) as server:
        yield server


def _small(name: str, **changes: Any) -> Entity:
    """The entity with small pages and parts, so a few hundred records make many of both."""
    entity = ENTITIES[name]
    assert entity.api is not None
    return dataclasses.replace(entity, api=dataclasses.replace(entity.api, **{"take": 7, "part_size": 20, **changes}))


def _settings(lake: Path, **overrides: Any) -> Settings:
    base = {"requests_per_minute": 30_000.0, "free_requests_per_minute": 30_000.0, "request_attempts": 4}
    return dataclasses.replace(Settings(), lake=str(lake), **{**base, **overrides})


def _extract(
    fake: FakeEvo,
    entity: Entity,
    lake: Path,
    resume: bool = False,
    span: tuple[dt.date, dt.date] = (START, END),
    **overrides: Any,
) -> Any:
    return extract_entity(
        entity, *span, _settings(lake, **overrides), credentials=Credentials(fake.url, USER, PASSWORD),
        run_id=new_run_id(), resume=resume, base_delay=0.01,
    )  # fmt: skip


def _manifest(lake: Path, entity: str) -> dict[str, Any]:
    (path,) = lake.rglob(f"entity={entity}/*/*/_manifest.json")
    return json.loads(path.read_text())


def cli(*args: str, fake: FakeEvo, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EVO_FRAMES_", "EVO_"))}
    base = {
        "EVO_API_URL": fake.url, "EVO_USERNAME": USER, "EVO_PASSWORD": PASSWORD,
        "EVO_FRAMES_REQUESTS_PER_MINUTE": "30000", "EVO_FRAMES_REQUEST_ATTEMPTS": "2",
    }  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "evo_frames", *args],
        cwd=cwd,
        env={**clean, **base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _window(api_param: str, day: str, skip_from: int = 0) -> Any:
    return lambda path, params: params.get(api_param, "").startswith(day) and int(params.get("skip", 0)) >= skip_from


def test_windows_cover_every_day_once_and_end_at_the_last_tick() -> None:
    start, end = dt.date(2024, 1, 31), dt.date(2025, 3, 4)
    for name, entity in ENTITIES.items():
        assert entity.api is not None, name
        ws = windows(entity.api, start, end)
        assert ws[0].start == start and ws[-1].end == end, name
        for a, b in zip(ws, ws[1:], strict=False):
            assert b.start == a.end + dt.timedelta(days=1), (name, a, b)
        assert len({w.prefix for w in ws}) == len(ws)
    weekly = windows(ENTITIES["entries"].api, dt.date(2025, 12, 3), dt.date(2025, 12, 20))
    assert [(w.start.isoformat(), w.end.isoformat(), w.prefix) for w in weekly] == [
        ("2025-12-03", "2025-12-09", "2025-12-03_"), ("2025-12-10", "2025-12-16", "2025-12-10_"),
        ("2025-12-17", "2025-12-20", "2025-12-17_"),
    ]  # fmt: skip
    monthly = windows(ENTITIES["sales"].api, dt.date(2024, 1, 1), dt.date(2024, 3, 10))
    assert [w.period for w in monthly] == [
        "2024-01-01 - 2024-01-31",
        "2024-02-01 - 2024-02-29",
        "2024-03-01 - 2024-03-10",
    ]
    assert END_OF_DAY == "T23:59:59.9999999"


def test_limiter_spaces_requests_holds_for_retry_after_and_speeds_up_in_free_hours() -> None:
    clock = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock[0] += s

    local = [dt.datetime(2026, 1, 11, 12, tzinfo=dt.UTC)]  # 09:00 in Sao Paulo
    lim = RateLimiter(60, free=(0, 5), free_per_minute=600, clock=lambda: clock[0], sleep=sleep, now=lambda: local[0])
    for _ in range(3):
        lim.acquire()
    assert slept == [1.0, 1.0]
    lim.hold_until(clock[0] + 5)
    lim.acquire()
    assert slept[-1] == pytest.approx(5.0)
    local[0] = dt.datetime(2026, 1, 11, 4, tzinfo=dt.UTC)  # 01:00 in Sao Paulo: free hours
    lim.acquire()
    lim.acquire()
    assert slept[-1] == pytest.approx(0.1)


def test_every_record_arrives_once_through_500s_429s_timeouts_and_resets(fake: FakeEvo, tmp_path: Path) -> None:
    entity = _small("sales", months=6)
    api = entity.api
    assert api is not None
    fake.faults += [
        Fault(_window(api.start_param, "2023-12-01", 14), status=500, times=2),
        Fault(_window(api.start_param, "2024-06-01", 7), status=429, retry_after=1.0),
        Fault(_window(api.start_param, "2024-12-01", 21), status=503),
        Fault(
            lambda p, q: _window(api.start_param, "2025-06-01", 28)(p, q) and q["skip"] == "28", status=None, delay=2.5
        ),  # beyond the timeout
        Fault(_window(api.start_param, "2024-06-01", 35), drop=True),
    ]
    summary = _extract(fake, entity, tmp_path / "lake", request_timeout=1.0)
    assert summary.failed == ()
    got = list(bronze_records(tmp_path / "lake", "sales"))
    assert _canon(got) == _canon(fake.served["sales"]) and len(got) == 300
    assert all(f.times == 0 for f in fake.faults), "every fault was hit"
    doc = _manifest(tmp_path / "lake", "sales")
    assert doc["status"] == "complete" and doc["total_records"] == 300 and doc["errors"] == []
    assert {r["status"] for r in doc["results"]} == {"complete"}
    for r in doc["results"]:
        names = sorted(p.name for p in tmp_path.rglob(f"{r['prefix']}part-*"))
        assert names == r["files"] == [f"{r['prefix']}part-{i:05d}.jsonl.gz" for i in range(1, r["parts"] + 1)]
        sizes = [
            sum(1 for _ in gzip.decompress(p.read_bytes()).split(b"\n"))
            for p in sorted(tmp_path.rglob(f"{r['prefix']}part-*"))
        ]
        assert all(s == 20 for s in sizes[:-1]) and all(0 < s <= 20 for s in sizes[-1:])
        assert sum(sizes) == r["records"]
    assert not list(tmp_path.rglob("*.inprogress"))
    # Retry-After: the retry of the 429'd page reached the server at least 1 s after it
    hits = fake.hits_of(api.path)
    (refused,) = [h for h in hits if h.status == 429]
    again = [h for h in hits if h.params == refused.params and h.at > refused.at]
    assert again and again[0].at - refused.at >= 1.0
    slow = [h for h in hits if h.params.get(api.start_param, "").startswith("2025-06-01") and h.params["skip"] == "28"]
    assert len(slow) == 2, "the request that timed out was sent again"


def test_a_window_that_keeps_failing_fails_and_resume_redoes_only_it(fake: FakeEvo, tmp_path: Path) -> None:
    entity = _small("members", months=12)
    api = entity.api
    assert api is not None
    lake = tmp_path / "lake"
    broken = Fault(_window(api.start_param, "2022-06-01", 21), status=500, times=None)
    fake.faults.append(broken)
    first = _extract(fake, entity, lake, request_attempts=3)
    assert [p for p, _ in first.failed] == ["2022-06-01 - 2023-05-31"]
    assert "failed 3 times" in first.failed[0][1] and "HTTP 500" in first.failed[0][1]
    doc = _manifest(lake, "members")
    assert doc["status"] == "failed" and doc["errors"] and doc["errors"][0].startswith("2022-06-01 - 2023-05-31: ")
    bad = next(r for r in doc["results"] if r["status"] != "complete")
    assert (bad["status"], bad["records"], bad["parts"], bad["partial_records"]) == ("failed", 20, 1, 21)
    assert sum(r["status"] == "complete" for r in doc["results"]) == len(doc["results"]) - 1
    assert len(list(lake.rglob("2022-06_part-*"))) == 1  # the part written before the failure

    broken.heal()
    before = len(fake.hits_of())
    second = _extract(fake, entity, lake, resume=True)
    assert (second.run_id, second.redone, second.failed) == (first.run_id, 1, ())
    assert {h.params[api.start_param] for h in fake.hits_of()[before:]} == {"2022-06-01T00:00:00"}
    assert _canon(bronze_records(lake, "members")) == _canon(fake.served["members"])
    doc = _manifest(lake, "members")
    assert doc["status"] == "complete" and doc["errors"] == [] and doc["total_records"] == 300
    assert "partial_records" not in next(r for r in doc["results"] if r["prefix"] == "2022-06_")


def test_rate_limit_holds_on_the_servers_clock(fake: FakeEvo, tmp_path: Path) -> None:
    entity = _small("entries", take=10)
    rpm = 600.0  # one request every 0.1 s, whatever the 4 workers could do
    span = (dt.date(2025, 12, 21), dt.date(2026, 1, 11))  # where the entries are: 4 weeks, about 33 pages
    summary = _extract(fake, entity, tmp_path / "lake", span=span, requests_per_minute=rpm, extract_workers=4)
    assert summary.failed == () and summary.requests >= 30
    times = sorted(h.at for h in fake.hits_of())
    gap = 60 / rpm
    # requests leave the client evenly spaced and reach the server with some jitter (a new
    # connection, a busy machine): any k+1 consecutive arrivals span at least k-1 gaps
    spans = [(k, times[i + k] - times[i]) for k in range(1, len(times)) for i in range(len(times) - k)]
    assert all(span >= (k - 1) * gap - 0.02 for k, span in spans), min(spans, key=lambda x: x[1] - x[0] * gap)
    assert times[-1] - times[0] >= (len(times) - 2) * gap


def test_cli_names_the_failed_window_exits_1_and_resume_completes_it(fake: FakeEvo, tmp_path: Path) -> None:
    api = ENTITIES["sales"].api
    assert api is not None
    broken = Fault(_window(api.start_param, "2024-02-01"), status=500, times=None)
    fake.faults.append(broken)
    args = ("extract", "--entity", "sales", "--start", "2024-01-01", "--end", "2026-01-11", "--lake", "lake")
    r = cli(*args, fake=fake, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "sales 2024-02-01 - 2024-02-29: GET /api/v2/sales" in r.stderr and "--resume" in r.stderr
    assert "24 of 25 windows complete" in r.stdout
    broken.heal()
    r = cli(*args, "--resume", fake=fake, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "25 of 25 windows complete (1 redone)" in r.stdout
    assert _canon(bronze_records(tmp_path / "lake", "sales")) == _canon(fake.served["sales"])
    r = cli(*args, "--resume", fake=fake, cwd=tmp_path)
    assert r.returncode == 0 and "nothing to resume" in r.stdout


def test_missing_credentials_exit_2_naming_the_variable(fake: FakeEvo, tmp_path: Path) -> None:
    r = cli("extract", "-e", "sales", "--start", "2024-01-01", "--end", "2024-01-31", fake=fake, cwd=tmp_path,
            env={"EVO_PASSWORD": ""})  # fmt: skip
    assert r.returncode == 2 and "EVO_PASSWORD" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "data").exists()


def test_no_secret_is_printed_or_written(fake: FakeEvo, tmp_path: Path) -> None:
    api = ENTITIES["members"].api
    assert api is not None
    fake.faults += [
        Fault(_window(api.start_param, "2020-06-01"), status=500, times=1),
        Fault(_window(api.start_param, "2021-06-01"), status=429, retry_after=0.1),
        Fault(_window(api.start_param, "2022-06-01"), status=500, times=None),
    ]
    r = cli("-v", "extract", "-e", "members", "--start", "2020-06-01", "--end", "2023-01-01", "--lake", "lake",
            fake=fake, cwd=tmp_path)  # fmt: skip
    assert r.returncode == 1 and "2022-06-01 - 2022-08-31" in r.stderr
    assert "retrying" in r.stderr  # the retries were reported
    written = [
        gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        for p in (tmp_path / "lake").rglob("*")
        if p.is_file()
    ]
    assert written
    for secret in (PASSWORD, TOKEN, USER):
        assert secret not in r.stdout + r.stderr, secret
        assert not any(secret.encode() in data for data in written), secret


def test_extract_into_azure_lake(
    records: dict[str, list[dict[str, Any]]], az_lake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", az_lake.storage_options["connection_string"])
    import fsspec

    with _fake(records) as fake:
        fake.faults.append(Fault(lambda path, params: params.get("skip") == "14", status=500, times=1))
        summary = extract_entity(
            _small("prospects"), START, END, dataclasses.replace(_settings(Path("/")), lake=az_lake.url),
            credentials=Credentials(fake.url, USER, PASSWORD), run_id=new_run_id(), base_delay=0.01,
        )  # fmt: skip
        assert summary.failed == ()
        fs = fsspec.filesystem("az", **az_lake.storage_options)
        parts = fs.glob(f"{az_lake.url.removeprefix('az://')}/bronze/evo/entity=prospects/*/*/*.jsonl.gz")
        got = [json.loads(x) for p in parts for x in gzip.decompress(fs.cat_file(p)).decode().split("\n")]
        assert _canon(got) == _canon(fake.served["prospects"])
        assert not fs.glob(f"{az_lake.url.removeprefix('az://')}/**/*.inprogress")


@pytest.fixture(scope="module")
def extracted(
    records: dict[str, list[dict[str, Any]]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, FakeEvo]:
    """``extract --entity all`` over the whole synth span, through a few faults."""
    work = tmp_path_factory.mktemp("e2e")
    with _fake(records) as fake:
        fake.faults += [
            Fault(lambda path, params: params.get("skip") == "0", status=500, times=3),
            Fault(lambda path, params: params.get("skip") == "0", status=429, retry_after=0.2, times=2),
        ]
        r = cli("extract", "--entity", "all", "--start", START.isoformat(), "--end", END.isoformat(),
                "--lake", "lake", "--json", fake=fake, cwd=work, env={"EVO_FRAMES_REQUEST_ATTEMPTS": "8"})  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert {s["entity"] for s in json.loads(r.stdout)} == set(ENTITIES)
    return work / "lake", fake


def test_extract_then_run_gives_exactly_the_api_records(extracted: tuple[Path, FakeEvo], target_url: str) -> None:
    lake, fake = extracted
    for name, entity in ENTITIES.items():
        served = fake.served[name]
        assert _canon(bronze_records(lake, name)) == _canon(served), name
        summary = load(lake, target_url, name)
        assert summary.rejects == 0 and not summary.problems, (name, summary.problems)
        parent = entity.core[0]
        if name in KEYS:
            want = sorted({int(r[KEYS[name]]) for r in served})
            key = parent.primary_key[0]
            assert [r[key] for r in rows(target_url, f"SELECT {key} FROM {parent.qualified} ORDER BY 1")] == want
        else:
            recipes = {"|".join([str(r["date"]), *(str(r[k]) if r.get(k) else "" for k in RECIPE)]) for r in served}
            assert scalar(target_url, f"SELECT count(*) FROM {parent.qualified}") == len(recipes)
        assert scalar(target_url, f"SELECT count(*) FROM {entity.stg.qualified}") == scalar(
            target_url, f"SELECT count(*) FROM {parent.qualified}"
        )


def test_extract_settings_come_from_the_file_and_env_and_are_checked(tmp_path: Path) -> None:
    from evo_frames.config import load_settings
    from evo_frames.errors import ConfigError

    conf = tmp_path / "config.toml"
    conf.write_text('[extract]\nrequests_per_minute = 90\nfree_hours = "22-6"\npages_in_flight = 2\n')
    s = load_settings(config=conf, env={"EVO_FRAMES_REQUEST_ATTEMPTS": "3"})
    assert (s.requests_per_minute, s.free_hours, s.pages_in_flight, s.request_attempts) == (90.0, "22-6", 2, 3)
    for env, word in (({"EVO_FRAMES_FREE_HOURS": "5"}, "free_hours"), ({"EVO_FRAMES_API_TIMEZONE": "Brasilia"}, "api_timezone"),
                      ({"EVO_FRAMES_REQUESTS_PER_MINUTE": "0"}, "requests_per_minute")):  # fmt: skip
        with pytest.raises(ConfigError, match=word):
            load_settings(env=env)


def test_bad_credentials_and_oversized_pages_fail_their_windows_without_retrying(fake: FakeEvo, tmp_path: Path) -> None:
    entity = ENTITIES["sales"]
    span = (dt.date(2024, 1, 1), dt.date(2024, 3, 31))
    wrong = extract_entity(
        entity, *span, _settings(tmp_path / "a"), credentials=Credentials(fake.url, USER, "wrong-password"),
        run_id=new_run_id(), base_delay=0.01,
    )  # fmt: skip
    assert len(wrong.failed) == 3 and all("HTTP 401" in e and "EVO_PASSWORD" in e for _, e in wrong.failed)
    assert len(fake.hits_of()) == 3, "a 401 is not retried"
    fake.faults.append(Fault(_window("dateSaleStart", "2024-02-01"), status=None, body=[{"idSale": 1}] * 101))
    big = _extract(fake, entity, tmp_path / "b", span=span)
    assert [p for p, _ in big.failed] == ["2024-02-01 - 2024-02-29"] and "more than asked" in big.failed[0][1]
