"""evo_frames.explore on both targets: bounded frames of STG (decoded), CORE, bookkeeping and drift."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from evo_frames import api
from evo_frames.errors import ConfigError
from evo_frames.explore import Explorer
from tests.helpers import ENTITIES, write_bronze

RUN = "20260111T031522Z"


def test_frames_of_a_loaded_target(target_url: str, tmp_path: Path) -> None:
    lake = str(tmp_path / "lake")
    records = [
        {"idMember": i, "firstName": f"M{i}", "contacts": [{"idPhone": i, "description": "x"}]} for i in range(1, 31)
    ]
    write_bronze(lake, "members", RUN, [*records, "{not json"])
    api.run("members", lake=lake, target=target_url)
    ex = Explorer(target=target_url, lake=lake)

    stg = ex.stg("members", limit=7)
    assert stg.height == 7  # the limit is the database's
    assert stg["idMember"].to_list() == [str(i) for i in range(1, 8)]  # key order, decoded with the record type
    assert stg.schema["contacts"] == pl.List(ENTITIES["members"].record.to_schema()["contacts"].inner)
    assert {"member_id", "run_id", "_source_file", "_source_line", "raw_data"} <= set(stg.columns)
    assert ex.stg("members", run_id=RUN, limit=None).height == 30
    assert ex.stg("members", run_id="20990101T000000Z").height == 0

    assert ex.core("core.evo_members", limit=None).height == 30
    assert ex.core("evo_member_contacts", columns=["member_id"], limit=2).columns == ["member_id"]
    nulls = ex.nulls("evo_members")
    assert dict(nulls.select("column", "nulls").iter_rows())["first_name"] == 0
    assert dict(nulls.select("column", "share").iter_rows())["last_name"] == 1.0

    assert ex.files("members")["lines_read"].to_list() == [31]
    runs = ex.runs("members")
    assert runs["status"].to_list() == ["succeeded"] and runs["records_per_second"][0] > 0
    rejects = ex.rejects("members")
    assert rejects.select("line", "stage").rows() == [(31, "decode")]
    drift = ex.drift("members")
    assert drift.filter(pl.col("path") == "contacts[].idPhone").select("read", "share").row(0) == (True, 1.0)
    assert ex.sql("SELECT member_id FROM core.evo_members", limit=4).height == 4


def test_unknown_names_say_what_is_valid(tmp_path: Path) -> None:
    ex = Explorer(target=f"duckdb://{tmp_path}/evo.duckdb")
    with pytest.raises(ConfigError, match="unknown entity 'invoices'; valid: members"):
        ex.stg("invoices")
    with pytest.raises(ConfigError, match="unknown table 'evo_invoices'; valid: .*core.evo_members"):
        ex.core("evo_invoices")
