"""The az:// lake path against a real Azure Blob emulator (Azurite), both sinks."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import fsspec
import pytest

from tests.helpers import R1, R2, bronze_path, entry, load, rows, write_bronze
from tests.services import LakeLocation


@pytest.fixture
def az_env(az_lake: LakeLocation, monkeypatch: pytest.MonkeyPatch) -> LakeLocation:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", az_lake.storage_options["connection_string"])
    return az_lake


def test_load_from_azure_blob(az_env: LakeLocation, target_url: str) -> None:
    opts = az_env.storage_options
    write_bronze(az_env.url, "entries", R1, [entry(s, s) for s in range(30)] + ["{bad"], storage_options=opts)
    write_bronze(az_env.url, "entries", R2, [entry(1, 1, "changed")], name="2025-11-03_part-00002.jsonl.gz",
                 storage_options=opts)  # fmt: skip
    s = load(az_env.url, target_url)
    assert (s.files_loaded, s.rows_loaded, s.duplicates, s.rejects) == (2, 30, 1, 1)
    paths = {r["_source_file"] for r in rows(target_url, "SELECT DISTINCT _source_file FROM stg_evo.entries_raw")}
    assert all(p.startswith("az://") and "/entity=entries/ingestion_date=" in p for p in paths)
    assert load(az_env.url, target_url).files_loaded == 0  # etags match: nothing reloads
    assert rows(target_url, "SELECT member_name FROM core.evo_entries WHERE member_id = 1") == [
        {"member_name": "changed"}
    ]


def test_content_encoding_gzip_blob_is_refused_with_the_fix(az_env: LakeLocation, target_url: str) -> None:
    from azure.storage.blob import BlobServiceClient, ContentSettings

    path = bronze_path(az_env.url, "entries", R1, "2025-11-03_part-00001.jsonl.gz")
    container, blob = path.removeprefix("az://").split("/", 1)
    client = BlobServiceClient.from_connection_string(az_env.storage_options["connection_string"])
    data = gzip.compress("\n".join(json.dumps(entry(s, s)) for s in range(5)).encode())
    client.get_blob_client(container, blob).upload_blob(data, content_settings=ContentSettings(content_encoding="gzip"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("EVO_FRAMES_")}}
    r = subprocess.run([sys.executable, "-m", "evo_frames", "run", "-e", "entries", "--lake", az_env.url,
                        "--target", target_url], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert r.returncode == 1
    assert "Content-Encoding" in r.stderr and "re-upload" in r.stderr and blob.rsplit("/", 1)[1] in r.stderr
    fs = fsspec.filesystem("az", **az_env.storage_options)
    assert fs.exists(path)  # nothing was touched
