"""FreshKeys: what a session knows of the keys it wrote into partitions it found empty."""

from __future__ import annotations

import polars as pl
import pytest

from evo_frames.sinks import fresh
from evo_frames.sinks.fresh import FreshKeys


def _u64(*values: int) -> pl.Series:
    return pl.Series(values, dtype=pl.UInt64)


def _parts(*values: int) -> pl.Series:
    return pl.Series(values, dtype=pl.Int64)


def test_keys_written_into_an_empty_partition_are_no_longer_certainly_new() -> None:
    keys = FreshKeys()
    assert keys.unknown("t", [1, 2]) == [1, 2]
    keys.found("t", 1, empty=True)
    keys.found("t", 2, empty=False)
    assert keys.unknown("t", [1, 2, 3]) == [3]
    keys.wrote("t", _parts(1, 2), _u64(10, 20))
    # partition 2 holds rows: nothing bound for it is certain; key 10 was written into 1
    assert keys.certainly_new("t", _parts(1, 1, 2), _u64(10, 11, 21)).to_list() == [False, True, False]
    keys.commit()
    assert keys.certainly_new("t", _parts(1, 1), _u64(10, 11)).to_list() == [False, True]


def test_a_rollback_forgets_and_a_disabled_session_is_never_certain() -> None:
    keys = FreshKeys()
    keys.found("t", 1, empty=True)
    keys.forget()
    assert keys.unknown("t", [1]) == [1]
    keys.disable()
    keys.found("t", 1, empty=True)
    assert keys.certainly_new("t", _parts(1), _u64(5)).to_list() == [False]


def test_past_the_cap_a_table_is_probed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fresh, "FRESH_KEYS_MAX", 2)
    keys = FreshKeys()
    keys.found("t", 1, empty=True)
    keys.wrote("t", _parts(1, 1, 1), _u64(1, 2, 3))
    keys.commit()
    assert keys.certainly_new("t", _parts(1), _u64(9)).to_list() == [False]
    assert keys.unknown("t", [1]) == []
