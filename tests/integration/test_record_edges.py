"""Edge records and re-sent files, on both sinks: no record blocks a load, corrections are applied,
duplicate JSON keys are rejected."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.helpers import load, rows, scalar, write_bronze
from tests.integration.test_core_entities import sale
from tests.services import LakeLocation

R1 = "20260111T031522Z"
SALES_PART = "2025-02_part-00001.jsonl.gz"


def entry(second: int, member: int, name: str = "Ana", **extra: object) -> dict[str, object]:
    return {"date": f"2025-11-03T06:41:{second:02d}", "idMember": member, "nameMember": name, "idBranch": 57,
            "device": "CATRACA 01", "entryAction": "Allowed", **extra}  # fmt: skip


def names(target: str) -> dict[int, str]:
    got = rows(target, "SELECT member_id, member_name FROM core.evo_entries")
    return {r["member_id"]: r["member_name"] for r in got}


def reconcile(target: str) -> None:
    for f in rows(target, "SELECT lines_read, rows_loaded, duplicates, rejects FROM evo_meta.files"):
        assert f["lines_read"] == f["rows_loaded"] + f["duplicates"] + f["rejects"], f


# a re-sent file is applied -------------------------------------------------------------------


def test_resent_file_at_the_same_path_applies_its_changed_rows(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    write_bronze(lake, "entries", R1, [entry(s, s) for s in range(5)])
    assert load(lake, target_url).tables["stg_evo.entries_raw"].inserted == 5
    # the corrected file replaces the first at its path: same run, file and line for every row
    write_bronze(lake, "entries", R1, [entry(s, s, "Bia" if s == 2 else "Ana") for s in range(5)])
    s = load(lake, target_url)
    assert s.files_loaded == 1
    stg = s.tables["stg_evo.entries_raw"]
    assert (stg.inserted, stg.updated, stg.unchanged) == (0, 1, 4)
    assert names(target_url) == {0: "Ana", 1: "Ana", 2: "Bia", 3: "Ana", 4: "Ana"}
    raw = scalar(target_url, "SELECT CAST(raw_data AS TEXT) FROM stg_evo.entries_raw WHERE _source_line = 3")
    assert "Bia" in raw


def test_resent_sales_file_replaces_the_changed_sale_and_its_children(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    write_bronze(lake, "sales", R1, [sale(1), sale(2)], name=SALES_PART)
    load(lake, target_url, "sales")
    assert scalar(target_url, "SELECT count(*) FROM core.evo_sale_items WHERE sale_id = 2") == 1
    fixed = sale(2)
    fixed["saleItens"] = [
        {"idSaleItem": 21, "description": "PLANO CORRIGIDO", "itemValue": 1198.8, "saleValue": 900},
        {"idSaleItem": 22, "description": "TAXA", "itemValue": 10, "saleValue": 10},
    ]
    write_bronze(lake, "sales", R1, [sale(1), fixed], name=SALES_PART)
    s = load(lake, target_url, "sales")
    stg = s.tables["stg_evo.sales_raw"]
    assert (stg.updated, stg.unchanged) == (1, 1)
    items = rows(target_url, "SELECT sale_item_id, description FROM core.evo_sale_items WHERE sale_id = 2 ORDER BY 1")
    assert [(r["sale_item_id"], r["description"]) for r in items] == [(21, "PLANO CORRIGIDO"), (22, "TAXA")]
    assert scalar(target_url, "SELECT count(*) FROM core.evo_sale_items WHERE sale_id = 1") == 1


def test_repaired_partial_file_applies_its_corrections(tmp_path: Path, target_url: str) -> None:
    lake = str(tmp_path)
    first = gzip.compress(b"\n".join(json.dumps(entry(i, i)).encode() for i in range(40)), mtime=0)
    write_bronze(lake, "entries", R1, [], raw=first[: len(first) * 2 // 3])
    partial = load(lake, target_url)
    assert len(partial.files_partial) == 1 and 0 < partial.rows_loaded < 40
    # the repaired copy also corrects a row the partial copy had loaded
    fixed = [entry(i, i, "Bia" if i == 1 else "Ana") for i in range(40)]
    write_bronze(lake, "entries", R1, fixed)
    again = load(lake, target_url)
    assert again.files_loaded == 1 and again.rejects == 0 and again.tables["stg_evo.entries_raw"].updated == 1
    got = names(target_url)
    assert len(got) == 40 and got[1] == "Bia" and got[0] == "Ana"
    reconcile(target_url)


def test_resent_azure_blob_applies_its_changed_rows(
    az_lake: LakeLocation, target_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = az_lake.storage_options
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", opts["connection_string"])
    write_bronze(az_lake.url, "entries", R1, [entry(s, s) for s in range(3)], storage_options=opts)
    load(az_lake.url, target_url)
    # the blob is replaced (a new etag) by one whose first row is corrected
    write_bronze(az_lake.url, "entries", R1, [entry(s, s, "Bia" if s == 0 else "Ana") for s in range(3)],
                 storage_options=opts)  # fmt: skip
    s = load(az_lake.url, target_url)
    assert s.files_loaded == 1 and s.tables["stg_evo.entries_raw"].updated == 1
    assert names(target_url) == {0: "Bia", 1: "Ana", 2: "Ana"}
