"""Time zones on both sinks: each entry in its own zone, keys no zone setting can split, local display."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from evo_frames import api
from evo_frames.errors import ConfigError
from evo_frames.ops import status
from evo_frames.pipeline import Summary, new_load_id, run_entity, transform_entity
from tests.helpers import ENTITIES, R1, R2, rows, scalar, settings, sink_for, write_bronze

UTC = dt.UTC

ZONED = [
    ("SA Western Standard Time", dt.datetime(2025, 3, 10, 12, tzinfo=UTC)),
    ("E. South America Standard Time", dt.datetime(2025, 3, 10, 11, tzinfo=UTC)),
    ("Central Brazilian Standard Time", dt.datetime(2025, 3, 10, 12, tzinfo=UTC)),
    (None, dt.datetime(2025, 3, 10, 11, tzinfo=UTC)),  # missing: read in source_timezone
    ("Mars Standard Time", dt.datetime(2025, 3, 10, 11, tzinfo=UTC)),  # unknown: the same, and reported
]


def entries(date: str = "2025-03-10T08:00:00") -> list[dict[str, object]]:
    return [
        {"date": date, "dateTurn": date, "timeZone": zone, "idMember": i, "idBranch": i, "entryAction": "Allowed"}
        for i, (zone, _) in enumerate(ZONED, start=1)
    ]


def stored(target: str) -> dict[int, tuple[dt.datetime, dt.datetime]]:
    got = rows(target, "SELECT member_id, entry_date, entry_date_turn FROM core.evo_entries")
    return {r["member_id"]: (r["entry_date"], r["entry_date_turn"]) for r in got}


def run(lake: Path, target: str, tz: str = "America/Sao_Paulo", **kw: Any) -> Summary:
    with sink_for(target) as sink:
        return run_entity(
            sink, ENTITIES["entries"], settings(lake, target, source_timezone=tz), load_id=new_load_id(), **kw
        )


def refresh(target: str, tz: str = "America/Sao_Paulo") -> Summary:
    with sink_for(target) as sink:
        s = settings("unused", target, source_timezone=tz)
        return transform_entity(sink, ENTITIES["entries"], s, load_id=new_load_id(), full_refresh=True)


def test_each_entry_is_stored_in_its_own_zone_in_run_and_full_refresh(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, entries())
    expected = {i: (when, when) for i, (_, when) in enumerate(ZONED, start=1)}
    s = run(tmp_path, target_url)
    assert stored(target_url) == expected
    assert s.zone_fallbacks == {"(missing)": 1, "Mars Standard Time": 1}
    assert [p for p in s.problems if "Mars Standard Time" in p and "America/Sao_Paulo" in p] == s.problems[-1:]
    assert json.loads(json.dumps(s.to_dict()))["zone_fallbacks"] == s.zone_fallbacks

    t = refresh(target_url)
    assert stored(target_url) == expected
    assert t.zone_fallbacks == s.zone_fallbacks and t.tables["core.evo_entries"].inserted == len(ZONED)


def test_another_source_timezone_never_doubles_a_key(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, entries())
    run(tmp_path, target_url)
    keys = "SELECT entry_id, entry_local_date FROM {} ORDER BY 1"
    before = {t: rows(target_url, keys.format(t)) for t in ("stg_evo.entries_raw", "core.evo_entries")}

    # the case that used to double core.evo_entries: another zone and --full-refresh
    again = run(tmp_path, target_url, tz="America/Manaus", reload=True)
    assert (again.files_loaded, again.tables["stg_evo.entries_raw"].unchanged) == (1, len(ZONED))
    refresh(target_url, tz="America/Manaus")
    write_bronze(str(tmp_path), "entries", R2, entries(), name="2025-03-10_part-00001.jsonl.gz")  # re-sent
    newer = run(tmp_path, target_url, tz="UTC")
    assert (newer.files_loaded, newer.tables["stg_evo.entries_raw"].inserted) == (1, 0)
    for table, keyed in before.items():
        assert rows(target_url, keys.format(table)) == keyed, table

    # records without a known zone follow the setting once re-derived (the refresh); zoned ones never move
    manaus = dt.datetime(2025, 3, 10, 12, tzinfo=UTC)
    assert {i: when for i, (when, _) in stored(target_url).items()} == {
        1: manaus,
        2: dt.datetime(2025, 3, 10, 11, tzinfo=UTC),
        3: manaus,
        4: manaus,
        5: manaus,
    }


def test_partitions_follow_the_local_date_as_sent(tmp_path: Path, target_url: str) -> None:
    # 23:30 in Manaus on 31 March is 03:30 UTC on 1 April: the entry belongs to March's partition
    write_bronze(str(tmp_path), "entries", R1, entries("2025-03-31T23:30:00"))
    run(tmp_path, target_url)
    assert {r["entry_local_date"] for r in rows(target_url, "SELECT entry_local_date FROM core.evo_entries")} == {
        dt.date(2025, 3, 31)
    }
    assert stored(target_url)[1][0] == dt.datetime(2025, 4, 1, 3, 30, tzinfo=UTC)
    if target_url.startswith("postgresql"):
        for table in ("stg_evo.entries_raw", "core.evo_entries"):
            part = scalar(target_url, f"SELECT tableoid::regclass::text FROM {table} LIMIT 1")
            assert part.endswith("_p2025_03"), part


def test_dst_gap_and_overlap_load_and_are_counted(tmp_path: Path, target_url: str) -> None:
    lines = [
        {"date": "2018-02-17T23:30:00", "timeZone": "E. South America Standard Time", "idMember": 1},  # twice
        {"date": "2018-11-04T00:30:00", "timeZone": "E. South America Standard Time", "idMember": 2},  # never
    ]
    write_bronze(str(tmp_path), "entries", R1, lines)
    s = run(tmp_path, target_url)
    assert (s.rows_loaded, s.rejects, s.cast_failures) == (2, 0, {"core.evo_entries.entry_date": 1})
    assert {i: when for i, (when, _) in stored(target_url).items()} == {
        1: dt.datetime(2018, 2, 18, 1, 30, tzinfo=UTC),
        2: None,
    }


def test_query_and_status_show_local_time(tmp_path: Path, target_url: str) -> None:
    write_bronze(str(tmp_path), "entries", R1, entries())
    run(tmp_path, target_url)
    sql = "SELECT CAST(extract(hour FROM entry_date) AS INTEGER) AS h, entry_date FROM core.evo_entries WHERE member_id = 1"
    default = api.query(sql, target=target_url)  # source_timezone: São Paulo
    assert default["h"][0] == 9 and str(default["entry_date"].dtype.time_zone) == "America/Sao_Paulo"
    assert default["entry_date"][0] == dt.datetime(2025, 3, 10, 12, tzinfo=UTC)
    assert api.query(sql, target=target_url, time_zone="America/Manaus")["h"][0] == 8
    assert api.query(sql, target=target_url, time_zone="UTC")["h"][0] == 12
    with pytest.raises(ConfigError, match="not an IANA time zone"):
        api.query(sql, target=target_url, time_zone="Mars/Olympus'")

    with sink_for(target_url) as sink:
        local = status(sink, settings(tmp_path, target_url), "entries", loads=1)
        utc = status(sink, settings(tmp_path, target_url), "entries", loads=1, time_zone="UTC")
    started = local["entities"]["entries"]["last_attempt"]["started_at"]
    assert started.endswith("-03:00") and "T" in started
    assert dt.datetime.fromisoformat(started) == dt.datetime.fromisoformat(
        utc["entities"]["entries"]["last_attempt"]["started_at"]
    )
    assert utc["loads"][0]["finished_at"].endswith("+00:00")


def test_a_table_keyed_by_an_older_layout_is_refused(tmp_path: Path, target_url: str) -> None:
    with sink_for(target_url) as sink:
        sink.execute("CREATE SCHEMA IF NOT EXISTS stg_evo")
        sink.execute(
            "CREATE TABLE stg_evo.entries_raw (entry_id BIGINT, entry_date TIMESTAMPTZ, PRIMARY KEY (entry_id, entry_date))"
        )
        sink.commit()
    write_bronze(str(tmp_path), "entries", R1, entries())
    with pytest.raises(ConfigError) as refused:
        run(tmp_path, target_url)
    assert "stg_evo.entries_raw has the primary key (entry_id, entry_date)" in str(refused.value)
    assert "keys it by (entry_id, entry_local_date)" in str(refused.value) and "--full-refresh" in str(refused.value)
    assert refused.value.exit_code == 2
