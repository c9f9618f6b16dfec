"""The az:// lake path against a real Azure Blob emulator (Azurite), both sinks."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from urllib.parse import unquote

import fsspec
import pytest

from tests.helpers import R1, R2, bronze_path, entry, load, rows, write_bronze
from tests.services import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, LakeLocation, free_port


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


# --- Azure errors fail at once, naming account, container and kind of credential (issue 9 item 10)

BAD_KEY = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk9PQ=="
BAD_SIG = "Zm9yZ2VkU2lnbmF0dXJlRm9yZ2VkU2lnbmF0dXJl%3D"


def container_sas(container: str) -> str:
    """A valid read-and-list SAS of ``container``: Azurite checks its signature."""
    import datetime as dt

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        AZURITE_ACCOUNT,
        container,
        account_key=AZURITE_KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )


def run_with(lake: str, target: str, connection_string: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``evo-frames run`` with only this connection string as the Azure credential."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVO_FRAMES_", "AZURE_"))}
    env["AZURE_STORAGE_CONNECTION_STRING"] = connection_string
    env["EVO_FRAMES_TARGET"] = target
    return subprocess.run([sys.executable, "-m", "evo_frames", *args, "run", "-e", "entries", "--lake", lake],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip


def assert_fails_naming(
    done: subprocess.CompletedProcess[str], target: str, account: str, container: str, kind: str, *secrets: str
) -> str:
    """Exit 1 with one ``error:`` line naming account, container and kind; no secret anywhere."""
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert f"Azure account {account}" in errors[0] and f"container {container}" in errors[0], errors[0]
    assert f"credential: {kind}" in errors[0], errors[0]
    (run,) = rows(target, "SELECT status, error FROM evo_meta.runs")
    assert run["status"] == "failed" and f"Azure account {account}" in run["error"], run
    for secret in secrets:
        assert secret not in output, output
        assert secret not in run["error"], run
    return errors[0]


def _container(lake: LakeLocation) -> str:
    return lake.url.removeprefix("az://")


def test_wrong_account_key_fails_at_once(azurite: Azurite, az_lake: LakeLocation, target_url: str) -> None:
    write_bronze(az_lake.url, "entries", R1, [entry(1, 1)], storage_options=az_lake.storage_options)
    wrong = azurite.connection_string.replace(AZURITE_KEY, BAD_KEY)
    done = run_with(az_lake.url, target_url, wrong)
    line = assert_fails_naming(done, target_url, AZURITE_ACCOUNT, _container(az_lake),
                               "connection string with an account key", BAD_KEY, AZURITE_KEY)  # fmt: skip
    assert "refused the credential" in line and "403 AuthorizationFailure" in line


def test_wrong_sas_token_fails_at_once(azurite: Azurite, az_lake: LakeLocation, target_url: str) -> None:
    write_bronze(az_lake.url, "entries", R1, [entry(1, 1)], storage_options=az_lake.storage_options)
    good = container_sas(_container(az_lake))
    assert load_with_sas_works(azurite, az_lake, good)
    forged = good.split("sig=")[0] + f"sig={BAD_SIG}"
    done = run_with(az_lake.url, target_url, f"BlobEndpoint={azurite.endpoint};SharedAccessSignature={forged};")
    line = assert_fails_naming(done, target_url, AZURITE_ACCOUNT, _container(az_lake),
                               "connection string with a SAS token", forged, BAD_SIG, unquote(BAD_SIG))  # fmt: skip
    assert "refused the credential" in line


def load_with_sas_works(azurite: Azurite, lake: LakeLocation, sas: str) -> bool:
    """The unforged SAS lists the container: the test's SAS is refused for its signature alone."""
    fs = fsspec.filesystem("az", connection_string=f"BlobEndpoint={azurite.endpoint};SharedAccessSignature={sas};",
                           skip_instance_cache=True)  # fmt: skip
    return bool(fs.find(f"{_container(lake)}/bronze/evo/entity=entries"))


def test_anonymous_access_to_a_private_container_fails_at_once(
    azurite: Azurite, az_lake: LakeLocation, target_url: str
) -> None:
    write_bronze(az_lake.url, "entries", R1, [entry(1, 1)], storage_options=az_lake.storage_options)
    done = run_with(az_lake.url, target_url, f"BlobEndpoint={azurite.endpoint};")
    line = assert_fails_naming(done, target_url, AZURITE_ACCOUNT, _container(az_lake), "anonymous", AZURITE_KEY)
    assert "AZURE_STORAGE_ACCOUNT_KEY" in line  # says which credential a private container needs


def test_missing_container_fails_at_once(azurite: Azurite, az_lake: LakeLocation, target_url: str) -> None:
    missing = f"{_container(az_lake)}-missing"
    done = run_with(f"az://{missing}", target_url, azurite.connection_string)
    line = assert_fails_naming(done, target_url, AZURITE_ACCOUNT, missing, "connection string with an account key",
                               AZURITE_KEY)  # fmt: skip
    assert f"container {missing} of lake az://{missing} not found" in line


def test_missing_path_in_an_existing_container_fails_at_once(
    azurite: Azurite, az_lake: LakeLocation, target_url: str
) -> None:
    write_bronze(az_lake.url, "entries", R1, [entry(1, 1)], storage_options=az_lake.storage_options)
    lake = f"{az_lake.url}/typo"
    done = run_with(lake, target_url, azurite.connection_string)
    line = assert_fails_naming(done, target_url, AZURITE_ACCOUNT, _container(az_lake),
                               "connection string with an account key", AZURITE_KEY)  # fmt: skip
    assert f"lake folder {lake}/bronze/evo not found" in line


def test_opening_with_a_refused_credential_names_account_and_kind(azurite: Azurite, az_lake: LakeLocation) -> None:
    from evo_frames.errors import SourceError
    from evo_frames.lake import open_file

    write_bronze(az_lake.url, "entries", R1, [entry(1, 1)], storage_options=az_lake.storage_options)
    path = bronze_path(az_lake.url, "entries", R1, "2025-11-03_part-00001.jsonl.gz")
    wrong = azurite.connection_string.replace(AZURITE_KEY, BAD_KEY)
    with pytest.raises(SourceError) as caught:
        open_file(path, {"connection_string": wrong})
    text = str(caught.value)
    assert "refused the credential opening" in text and f"Azure account {AZURITE_ACCOUNT}" in text
    assert "connection string with an account key" in text and BAD_KEY not in text and "\n" not in text


def test_unanswered_endpoint_fails_after_the_bounded_retries(
    azurite: Azurite, az_lake: LakeLocation, target_url: str
) -> None:
    """Nothing listens at the endpoint: the blob client retries twice (not three times, 15 to 24 s
    apart), then one line names the account, the container and the kind of credential."""
    from evo_frames.lake import AZURE_RETRIES, open_lake

    closed = azurite.connection_string.replace(f":{azurite.port}/", f":{free_port()}/")
    fs, _ = open_lake(az_lake.url, {"connection_string": closed})
    policy = fs.service_client._config.retry_policy
    assert policy.total_retries == policy.connect_retries == AZURE_RETRIES == 2 and policy.initial_backoff <= 1
    done = run_with(az_lake.url, target_url, closed)
    line = assert_fails_naming(done, target_url, AZURITE_ACCOUNT, _container(az_lake),
                               "connection string with an account key", AZURITE_KEY)  # fmt: skip
    assert "cannot reach Azure listing" in line and "after 2 retries" in line
