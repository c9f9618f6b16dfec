"""Small tools the integration tests share: write bronze, load it, read tables back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import gzip
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import fsspec
import pytest

from evo_frames.config import Settings
from evo_frames.pipeline import Summary, new_load_id, run_entity
from evo_frames.registry import discover
from evo_frames.sinks import SqlSink, open_sink

ENTITIES = discover()

#: two weekly entries runs, in order
R1, R2 = "20260111T031522Z", "20260118T031522Z"


def entry(second: int, member: int, name: str = "Ana", **extra: object) -> dict[str, object]:
    return {
        "date": f"2025-11-03T06:41:{second:02d}",
        "idMember": member,
        "nameMember": name,
        "idBranch": 57,
        "device": "CATRACA 01",
        "entryAction": "Allowed",
        "entryType": "Check-in",
        **extra,
    }


def sale(sid: int, paid: float | None = None, receivables: int = 3) -> dict[str, Any]:
    return {
        "idSale": sid,
        "idMember": 1,
        "saleDate": "2025-02-14T10:25:00",
        "removed": None,
        "coporatePartnershipId": 77,
        "saleItens": [{"idSaleItem": sid * 10 + 1, "description": "PLANO", "itemValue": 1198.8, "saleValue": 958.8}],
        "receivables": [
            {"idReceivable": sid * 100 + i, "ammount": 79.9, "ammountPaid": paid if i == 1 else None,
             "status": {"id": 2 if paid and i == 1 else 1, "name": "x"}, "paymentType": {"id": 18, "name": "Pix"},
             "dueDate": f"2025-0{i + 1}-14T00:00:00"}
            for i in range(1, receivables + 1)
        ],
    }  # fmt: skip


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}
    return subprocess.run([sys.executable, "-m", "evo_frames", *args], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip


def bronze_path(lake: str, entity: str, run_id: str, name: str, day: str | None = None) -> str:
    day = day or f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}"
    return f"{lake.rstrip('/')}/bronze/evo/entity={entity}/ingestion_date={day}/run_id={run_id}/{name}"


def write_bronze(
    lake: str,
    entity: str,
    run_id: str,
    lines: Iterable[dict[str, Any] | str | bytes],
    name: str = "2025-11-03_part-00001.jsonl.gz",
    *,
    storage_options: dict[str, Any] | None = None,
    raw: bytes | None = None,
) -> str:
    """Write one part file; dict lines are JSON-encoded like the extractor (UTF-8, no trailing newline)."""
    path = bronze_path(lake, entity, run_id, name)
    if raw is None:
        parts = [
            x if isinstance(x, bytes) else (x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)).encode()
            for x in lines
        ]
        raw = gzip.compress(b"\n".join(parts), mtime=0)
    fs, p = fsspec.core.url_to_fs(path, **(storage_options or {}))
    fs.makedirs(p.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(p, "wb") as f:
        f.write(raw)
    return path


def settings(lake: str | Path, target: str, **overrides: Any) -> Settings:
    return dataclasses.replace(Settings(), lake=str(lake), target=target, **overrides)


def sink_for(target: str) -> SqlSink:
    return open_sink(target, memory_limit="1GB", connect_timeout=10, statement_timeout=600)


def load(lake: str | Path, target: str, entity: str = "entries", **kw: Any) -> Summary:
    """One ``run`` of one entity, in-process."""
    options = {k: kw.pop(k) for k in ("batch_size", "workers", "writers", "chunk_rows") if k in kw}
    with sink_for(target) as sink:
        return run_entity(sink, ENTITIES[entity], settings(lake, target, **options), load_id=new_load_id(), **kw)


def rows(target: str, sql: str) -> list[dict[str, Any]]:
    with sink_for(target) as sink:
        return sink.query(sql).to_pylist()


def scalar(target: str, sql: str) -> Any:
    with sink_for(target) as sink:
        return sink.scalar(sql)


def _normal(value: Any) -> Any:
    # the same instant or number may come back as different Python types from the two drivers
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, decimal.Decimal):
        return str(value.quantize(decimal.Decimal("0.01")))
    return value


def table_rows(target: str, table: Any, columns: Iterable[str]) -> list[tuple[Any, ...]]:
    """``columns`` of every row of ``table``, in primary-key order, comparable across targets."""
    columns = list(columns)
    cols = ", ".join(f'"{c}"' for c in columns)
    order = ", ".join(f'"{c}"' for c in table.primary_key)
    got = rows(target, f"SELECT {cols} FROM {table.qualified} ORDER BY {order}")
    return [tuple(_normal(r[c]) for c in columns) for r in got]


#: the two runs of the multi-file entries lakes the process-level tests (kill, failover, concurrent) load
ENTRY_RUNS = (R1, R2)
#: twelve days of November: with 3,000 entries a file, a load long enough to disturb it anywhere
NOVEMBER = [f"2025-11-{d:02d}" for d in range(1, 13)]


def write_entries_lake(lake: str | Path, days: Iterable[str], per_file: int) -> int:
    """Two runs of one entries file per day; the second re-sends every key with other content
    (latest wins). Returns the number of files written."""
    days = list(days)
    for r, run in enumerate(ENTRY_RUNS):
        for day in days:
            records = [
                {"date": f"{day}T06:{i // 60 % 60:02d}:{i % 60:02d}", "idMember": i, "idBranch": 57,
                 "device": "CATRACA 01", "entryAction": "Allowed", "nameMember": f"membro {i} run {r}"}
                for i in range(per_file)
            ]  # fmt: skip
            write_bronze(str(lake), "entries", run, records, name=f"{day}_part-00001.jsonl.gz")
    return len(ENTRY_RUNS) * len(days)


def entries_snapshot(target: str) -> dict[str, object]:
    """STG, CORE and the manifest of an entries load, to compare two targets."""
    return {
        "stg": rows(target, "SELECT entry_id, entry_local_date, run_id, _source_file, _source_line, "
                            "CAST(raw_data AS TEXT) AS raw FROM stg_evo.entries_raw ORDER BY 1, 2"),
        "core": rows(target, "SELECT * EXCLUDE (_loaded_at, _updated_at) FROM core.evo_entries ORDER BY 1, 2")
        if target.startswith("duckdb")
        else rows(target, "SELECT entry_id, entry_local_date, entry_date, member_id, member_name, _source_run_id FROM core.evo_entries "
                          "ORDER BY 1, 2"),
        "files": rows(target, "SELECT path, lines_read, rows_loaded, duplicates, rejects FROM evo_meta.files ORDER BY 1"),
    }  # fmt: skip


def python_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules: dict[str, str]) -> str:
    """A fresh importable package of ``modules`` (name → source) under ``tmp_path``; its name."""
    name = f"pkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    for module, text in modules.items():
        (tmp_path / name / f"{module}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name
