"""Entries: the reference id recipe, keys no zone setting changes, each entry read in its own zone."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evo_frames import expr as E
from evo_frames.spec import TransformContext
from transforms.entries import ENTITY, ENTRIES, RECORD
from transforms.windows_zones import WINDOWS_ZONES

CTX = TransformContext(source_timezone="America/Sao_Paulo")


def reference_id(rec: dict[str, Any]) -> int:
    """The recipe exactly as the replaced loader computes it (reference §3)."""

    def v(x: Any) -> str:
        return str(x) if x else ""

    key = "|".join(
        [str(rec.get("date"))]
        + [v(rec.get(k)) for k in ("idMember", "idProspect", "idEmployee", "idBranch", "device", "entryAction")]
    )
    return int(hashlib.md5(key.encode("utf-8")).hexdigest()[:15], 16) % 10**15


def keyed(records: list[dict[str, Any]], ctx: TransformContext = CTX) -> pl.DataFrame:
    lines = pl.Series("raw", [json.dumps(r, ensure_ascii=False) for r in records])
    frame = pl.DataFrame({"raw": lines}).with_columns(pl.col("raw").str.json_decode(RECORD).alias("r")).unnest("r")
    frame = frame.with_columns(
        pl.lit("f.jsonl.gz").alias("_source_file"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_source_line"),
        pl.lit("20260111T031522Z").alias("run_id"),
        pl.lit(dt.date(2026, 1, 11)).alias("ingestion_date"),
    )
    return ENTITY.keys(frame.lazy(), ctx).collect()


def core(records: list[dict[str, Any]], ctx: TransformContext = CTX) -> pl.DataFrame:
    return ENTITY.transform(keyed(records, ctx).lazy(), ctx)[ENTRIES.qualified].collect()


VECTORS: list[tuple[dict[str, Any], int]] = [
    # (record, its id as the replaced loader computes it, recorded once with hashlib)
    (
        {"date": "2025-11-03T06:41:17", "idMember": 1048577, "idBranch": 57, "device": "CATRACA 01", "entryAction": "Allowed"},
        983805634770848,
    ),
    ({"date": "2025-11-03T06:41:17.123", "idProspect": 3300121, "idBranch": 57, "device": "CATRACA 01"}, 453812660003818),
    ({"date": "2025-11-03T06:41:17", "idMember": 0, "idEmployee": 311, "idBranch": 1, "device": "Recepção"}, 968002166402919),
    ({"date": "2025-11-03T06:41:17", "idMember": None, "device": "", "entryAction": "Denied"}, 382698128928707),
    ({"date": "2024-02-29T23:59:59", "idMember": 12, "idBranch": 60, "device": "CATRACA 03", "entryAction": "Allowed",
      "nameMember": "João"}, 135721225351534),
]  # fmt: skip


@pytest.mark.parametrize(("record", "known"), VECTORS)
def test_entry_id_matches_reference_recipe(record: dict[str, Any], known: int) -> None:
    out = keyed([record])
    assert out["entry_id"][0] == reference_id(record) == known


def test_falsy_values_hash_like_the_reference() -> None:
    zero = {"date": "2025-11-03T06:41:17", "idMember": 0, "idBranch": 57}
    missing = {"date": "2025-11-03T06:41:17", "idBranch": 57}
    out = keyed([zero, missing])
    assert out["entry_id"][0] == out["entry_id"][1] == reference_id(zero) == reference_id(missing)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("zone", "stored"),
    [
        ("SA Western Standard Time", utc(2025, 3, 10, 12)),  # Manaus, UTC-4
        ("E. South America Standard Time", utc(2025, 3, 10, 11)),  # São Paulo, UTC-3
        ("Central Brazilian Standard Time", utc(2025, 3, 10, 12)),  # Cuiabá, UTC-4
        ("SA Eastern Standard Time", utc(2025, 3, 10, 11)),  # Fortaleza, UTC-3
        ("SA Pacific Standard Time", utc(2025, 3, 10, 13)),  # Rio Branco (territory BR, not Bogotá)
        ("UTC", utc(2025, 3, 10, 8)),
        (None, utc(2025, 3, 10, 11)),  # missing: source_timezone
        ("", utc(2025, 3, 10, 11)),
        ("Mars Standard Time", utc(2025, 3, 10, 11)),  # unknown: source_timezone, never a guess
    ],
)
def test_each_entry_is_read_in_its_own_zone(zone: str | None, stored: dt.datetime) -> None:
    out = core([{"date": "2025-03-10T08:00:00", "dateTurn": "2025-03-10T08:00:02", "timeZone": zone}])
    assert out["entry_date"][0] == stored
    assert out["entry_date_turn"][0] == stored + dt.timedelta(seconds=2)
    assert out["entry_local_date"][0] == dt.date(2025, 3, 10)


def test_fallback_zone_is_source_timezone() -> None:
    recs = [{"date": "2025-03-10T08:00:00"}, {"date": "2025-03-10T08:00:00", "timeZone": "SA Western Standard Time"}]
    out = core(recs, TransformContext(source_timezone="UTC"))
    assert out["entry_date"].to_list() == [utc(2025, 3, 10, 8), utc(2025, 3, 10, 12)]
    assert out["iana_zone"].to_list() == ["UTC", "America/Manaus"]


def test_key_never_depends_on_a_zone_setting() -> None:
    recs = [{"date": "2025-11-03T23:41:17", "timeZone": z} for z in (None, "SA Western Standard Time", "x")]
    in_sp = keyed(recs).select("entry_id", "entry_local_date")
    for tz in ("UTC", "America/Manaus", "Asia/Tokyo"):
        assert keyed(recs, TransformContext(source_timezone=tz)).select("entry_id", "entry_local_date").equals(in_sp)
    assert in_sp["entry_local_date"].to_list() == [dt.date(2025, 11, 3)] * 3  # the day as sent


def test_daylight_saving_times_never_fail() -> None:
    # Brazil kept DST until 2019: 2018-02-17 23:30 happened twice in São Paulo and Cuiabá;
    # 2018-11-04 00:30 never happened there (clocks went 00:00 → 01:00); Manaus had no DST
    recs = [
        {"date": "2018-02-17T23:30:00", "timeZone": "E. South America Standard Time"},
        {"date": "2018-11-04T00:30:00", "timeZone": "E. South America Standard Time"},
        {"date": "2018-11-04T00:30:00", "timeZone": "Central Brazilian Standard Time"},
        {"date": "2018-11-04T00:30:00", "timeZone": "SA Western Standard Time"},
    ]
    out = keyed(recs)
    assert out["_key_error"].to_list() == [None] * 4  # the keys come from the string: nothing rejected
    assert core(recs)["entry_date"].to_list() == [
        utc(2018, 2, 18, 1, 30),  # ambiguous: the earlier instant (still in DST, UTC-2)
        None,  # non-existent: NULL, counted among the run's cast failures
        None,
        utc(2018, 11, 4, 4, 30),
    ]


def test_zone_map_holds_valid_zones_for_every_brazilian_windows_zone() -> None:
    brazilian = {
        "E. South America Standard Time": "America/Sao_Paulo",
        "SA Eastern Standard Time": "America/Fortaleza",
        "SA Western Standard Time": "America/Manaus",
        "Central Brazilian Standard Time": "America/Cuiaba",
        "Bahia Standard Time": "America/Bahia",
        "Tocantins Standard Time": "America/Araguaina",
        "SA Pacific Standard Time": "America/Rio_Branco",
        "UTC-02": "America/Noronha",
    }
    assert brazilian.items() <= WINDOWS_ZONES.items()
    naive = pl.Series([dt.datetime(2025, 3, 10, 8)])
    for zone in set(WINDOWS_ZONES.values()):
        ZoneInfo(zone)  # Python, PostgreSQL and DuckDB share the tz database names
        assert naive.dt.replace_time_zone(zone).null_count() == 0


def test_key_errors_name_the_field_and_value() -> None:
    out = keyed([{"idMember": 1}, {"date": "yesterday"}, {"date": "2025-11-03T06:41:17"}])
    assert out["_key_error"].to_list() == [
        "key field date is missing",
        "key field date yesterday is not a timestamp (YYYY-MM-DDTHH:MM:SS)",
        None,
    ]


def test_core_row_typed_and_cleaned() -> None:
    rec = {
        "date": "2025-11-03T06:41:17", "dateTurn": "2025-11-03T06:41:20", "timeZone": "E. South America Standard Time",
        "idMember": 1048577, "nameMember": "  Ana Souza Lima ", "idProspect": None, "nameProspect": "",
        "idEmployee": "x", "entryType": "Check-in", "device": "CATRACA 01", "releasesByID": 7,
        "idBranch": "57", "blockReason": None, "entryAction": "Allowed", "idMigration": None,
    }  # fmt: skip
    out = core([rec])
    assert out.schema == pl.Schema(ENTRIES.polars_schema())
    row = out.row(0, named=True)
    assert row["entry_date"] == dt.datetime(2025, 11, 3, 9, 41, 17, tzinfo=dt.UTC)
    assert row["timezone"] == "E. South America Standard Time" and row["iana_zone"] == "America/Sao_Paulo"
    assert row["entry_date_turn"] == dt.datetime(2025, 11, 3, 9, 41, 20, tzinfo=dt.UTC)
    assert row["member_id"] == 1048577 and row["member_name"] == "Ana Souza Lima"
    assert row["prospect_name"] is None and row["employee_id"] is None  # '' → NULL, 'x' → NULL
    assert row["branch_id"] == 57 and row["releases_by_id"] == 7 and row["_source_run_id"] == "20260111T031522Z"


def _two(n: int) -> str:
    return f"{n:02d}"


DATES = st.builds(
    lambda y, m, d: f"{y:04d}-{_two(m)}-{_two(d)}",
    st.integers(1, 9999),
    st.integers(0, 13),
    st.integers(0, 32),
)
TIMES = st.builds(
    lambda sep, h, mi, sec, frac, off: f"{sep}{_two(h)}:{_two(mi)}{sec}{frac}{off}",
    st.sampled_from(["T", " ", "t", "x"]),
    st.integers(0, 25),
    st.integers(0, 61),
    st.sampled_from(["", ":00", ":59", ":60", ":7"]),
    st.sampled_from(["", ".5", ".123456", ".1234567891", "."]),
    st.sampled_from(["", "Z", "z", "+00:00", "-03:00", "-0300", "+14:00", "+25:00", "-03", "+ab:cd"]),
)
STAMPS = st.builds(
    lambda pad, d, t: f"{pad}{d}{t}{pad}", st.sampled_from(["", " "]), DATES, st.one_of(st.just(""), TIMES)
)


@settings(max_examples=100, deadline=None)
@given(st.lists(STAMPS, min_size=1, max_size=20))
def test_the_key_check_accepts_exactly_what_timestamp_reads(dates: list[str]) -> None:
    out = keyed([{"date": d} for d in dates])
    read = pl.DataFrame({"d": dates}).select(E.timestamp("d", "UTC")).to_series()
    assert out["_key_error"].is_null().to_list() == read.is_not_null().to_list()
    assert out["entry_local_date"].to_list() == [
        v and dt.date.fromisoformat(d.strip()[:10]) for d, v in zip(dates, read, strict=True)
    ]
