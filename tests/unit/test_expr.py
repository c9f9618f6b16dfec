"""The cleaning and casting helpers of ``evo_frames.expr``: trim, empty to NULL, lenient casts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import polars as pl
import pytest

from evo_frames import expr as E
from evo_frames.spec import RecordZone


def values(expr: pl.Expr, column: list[Any], dtype: type[pl.DataType] | pl.DataType = pl.String) -> list[Any]:
    return pl.DataFrame({"v": column}, schema={"v": dtype}).select(expr).to_series().to_list()


def test_text_trims_and_blanks_become_null() -> None:
    assert values(E.text("v"), [" a ", "  ", "", None, "b c"]) == ["a", None, None, None, "b c"]


def test_integers_are_cast_leniently_within_their_width() -> None:
    column = [" 12 ", "12.5", "x", "9223372036854775807", "9223372036854775808", "-2147483648", "2147483648"]
    assert values(E.bigint("v"), column) == [12, None, None, 9223372036854775807, None, -2147483648, 2147483648]
    assert values(E.int32("v"), column) == [12, None, None, None, None, -2147483648, None]
    assert pl.DataFrame({"v": ["1"]}).select(E.int32("v")).dtypes == [pl.Int32]


def test_money_is_decimal_15_2_rounded_half_away_from_zero_at_the_cent() -> None:
    column = ["12", "0.126", "-0.126", "0.124", "0.125", "-0.125", "1.005", "2.675", "1e3", " 3.5 ", "x", ""]
    assert values(E.money("v"), column) == [
        Decimal("12.00"),
        Decimal("0.13"),
        Decimal("-0.13"),
        Decimal("0.12"),
        Decimal("0.13"),
        Decimal("-0.13"),
        Decimal("1.01"),
        Decimal("2.68"),
        Decimal("1000.00"),
        Decimal("3.50"),
        None,
        None,
    ]
    assert pl.DataFrame({"v": ["1"]}).select(E.money("v")).dtypes == [pl.Decimal(15, 2)]


def test_money_that_does_not_fit_decimal_15_2_is_null_not_an_error() -> None:
    column = ["9999999999999.99", "9999999999999.994", "9999999999999.995", "1e13", "-1e13", "1e40", "NaN", "inf"]
    assert values(E.money("v"), column) == [Decimal("9999999999999.99"), Decimal("9999999999999.99")] + [None] * 6
    # JSON numbers decoded as floats take the same path
    assert values(E.money("v"), [0.125, 1e13, 2.5], pl.Float64) == [Decimal("0.13"), None, Decimal("2.50")]


def test_number_is_a_double() -> None:
    assert values(E.number("v"), ["1.5", " 2 ", "x", None]) == [1.5, 2.0, None, None]


def test_flag_is_false_when_missing_and_null_when_unreadable() -> None:
    out = values(E.flag("v"), ["true", "TRUE", " 1 ", "false", "0", None, "", "yes"])
    assert out == [True, True, True, False, False, False, False, None]


def test_full_name_skips_missing_parts() -> None:
    frame = pl.DataFrame({"f": [" Ana ", None, "Ana", ""], "l": [None, "Lima", "Lima", " "]})
    assert frame.select(E.full_name("f", "l")).to_series().to_list() == ["Ana", "Lima", "Ana Lima", None]


def test_date_takes_the_calendar_date_as_sent() -> None:
    out = values(E.date("v"), ["2025-11-03", "2025-11-03T23:59:59", "2025-11-03 06:41", "2025-02-30", "03/11/2025"])
    assert out == [dt.date(2025, 11, 3), dt.date(2025, 11, 3), dt.date(2025, 11, 3), None, None]


UTC = dt.UTC


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("2025-07-01T12:00:00", dt.datetime(2025, 7, 1, 16, 0, tzinfo=UTC)),  # EDT, UTC-4
        ("2025-07-01 12:00", dt.datetime(2025, 7, 1, 16, 0, tzinfo=UTC)),  # space and no seconds
        ("2025-01-15", dt.datetime(2025, 1, 15, 5, 0, tzinfo=UTC)),  # midnight EST, UTC-5
        ("2025-11-02T01:30:00", dt.datetime(2025, 11, 2, 5, 30, tzinfo=UTC)),  # the repeated hour: the earlier instant
        ("2025-03-09T02:30:00", None),  # the skipped hour does not exist
        ("2025-07-01T12:00:00-03:00", dt.datetime(2025, 7, 1, 15, 0, tzinfo=UTC)),  # an offset is kept
        ("2025-07-01T12:00:00z", dt.datetime(2025, 7, 1, 12, 0, tzinfo=UTC)),
        ("0000-01-01T00:00:00Z", None),  # year 0 is outside 1..9999
        ("12:00", None),
        ("", None),
    ],
)
def test_timestamp_reads_local_time_in_the_zone_and_keeps_offsets(sent: str, expected: dt.datetime | None) -> None:
    assert values(E.timestamp("v", "America/New_York"), [sent]) == [expected]
    assert values(E.is_timestamp("v"), [sent]) == [sent not in ("12:00", "")]


#: forms the staged parse must read exactly as :func:`evo_frames.expr.timestamp` does
AWKWARD_TIMESTAMPS = [
    "2025-11-03T06:41:17", "2025-11-03T06:41:17.5", "2025-11-03", "2025-11-03 06:41", " 2025-11-03T06:41:17 ",
    "2025-11-03T06:41:17Z", "2025-11-03T06:41:17z", "2025-11-03T06:41:17+03:00", "2025-11-03T06:41:17-0300",
    "2025-11-03T06:41:17.5Z", "2025-01-03T06:41:17.123456789", "2025-11-02T01:30:00", "2025-03-09T02:30:00",
    "0000-01-01", "0001-01-01T00:00:00", "9999-12-31T23:59:59", "2025-02-30T00:00:00", "2025-1-3T06:41:17",
    "2025-01-03T6:41:17", "2025-01-03t06:41:17", "2025-01-03T24:00:00", "2025-01-03T06:41", "20250103T064117",
    "2025-01-03T06:41:1", "2025-13-03T06:41:17", "x", "", " ", None,
]  # fmt: skip


def test_with_timestamps_gives_the_values_of_timestamp_for_every_form() -> None:
    columns = {"v": AWKWARD_TIMESTAMPS, "w": list(reversed(AWKWARD_TIMESTAMPS))}
    frame = pl.DataFrame(columns, schema={"v": pl.String, "w": pl.String})
    for tz in ("America/New_York", "America/Sao_Paulo", "Asia/Tokyo"):
        staged = E.with_timestamps(frame.lazy(), {"a": pl.col("v"), "b": pl.col("w")}, tz).collect()
        expected = frame.select(a=E.timestamp("v", tz), b=E.timestamp("w", tz))
        assert staged.columns == ["v", "w", "a", "b"]
        assert staged.select("a", "b").equals(expected)


def test_record_zone_falls_back_for_missing_blank_and_unknown_values() -> None:
    zone = RecordZone("tz", {"Eastern Standard Time": "America/New_York"})
    frame = pl.DataFrame({"tz": ["Eastern Standard Time", "Mars Time", " ", None]})
    assert frame.select(E.record_zone(zone, "UTC")).to_series().to_list() == ["America/New_York", "UTC", "UTC", "UTC"]


def test_with_json_lists_types_leaves_keeps_key_order_and_tells_null_from_empty() -> None:
    dtype = pl.List(pl.Struct({"b": pl.String, "a": pl.String, "c": pl.String}))
    frame = pl.DataFrame(
        {"v": [[{"b": " x ", "a": "1.5", "c": ""}, None, {"b": "", "a": "n", "c": "0"}], [], None]}, {"v": dtype}
    )
    out = E.with_json_lists(frame.lazy(), {"j": (pl.col("v"), {"a": "number", "b": "text", "c": "bool"})}).collect()
    assert out["j"].to_list() == ['[{"a":1.5,"b":"x","c":null},{"a":null,"b":null,"c":false}]', "[]", None]
    assert out.columns == ["v", "j"]


def test_source_run_id_is_the_run_of_the_record() -> None:
    assert pl.DataFrame({"run_id": ["r1"]}).select(E.source_run_id()).to_dict(as_series=False) == {
        "_source_run_id": ["r1"]
    }
