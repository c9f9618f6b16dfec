"""No password is ever printed: wrong passwords, URLs that do not parse, unknown schemes, --verbose."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest

from evo_frames.errors import redact
from tests.helpers import rows, write_bronze
from tests.services import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, LakeLocation

PASSWORDS = ["Zq7x/Kv9w", "Zq7x:Kv9w", "100%Zq7xKv9w", "Zq7x@Kv9w", "Zq7x Kv9w", "Zq7x'Kv9w"]


def evo(tmp_path: Path, target: str, *, verbose: bool) -> subprocess.CompletedProcess[str]:
    lake = tmp_path / "lake"
    if not lake.exists():
        write_bronze(str(lake), "entries", "20260111T031522Z", [{"date": "2025-11-01T06:00:00", "idMember": 1,
                     "idBranch": 57, "entryAction": "Allowed"}], name="2025-11-01_part-00001.jsonl.gz")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVO_FRAMES_", "PG"))}
    env["EVO_FRAMES_TARGET"] = target  # not on the command line: the test checks output only
    args = [sys.executable, "-m", "evo_frames", *(["--verbose"] if verbose else []), "run", "--entity", "entries",
            "--lake", str(lake)]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)


def secret_parts(password: str) -> list[str]:
    """The password and its pieces longer than 3 characters, plain and encoded."""
    pieces = {password, quote(password, safe="")}
    for sep in "/:%@ '":
        pieces.update(p for p in password.split(sep) if len(p) > 3)
    return sorted(pieces)


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize("password", PASSWORDS)
def test_wrong_password_encoded_is_never_printed(tmp_path: Path, pg_url: str, password: str, verbose: bool) -> None:
    u = urlsplit(pg_url)
    target = f"postgresql://{u.username}:{quote(password, safe='')}@{u.hostname}:{u.port}{u.path}"
    done = evo(tmp_path, target, verbose=verbose)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "password" in output  # the server refused it, and the message says so
    for part in secret_parts(password):
        assert part not in output, output


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
@pytest.mark.parametrize("password", ["Zq7x/Kv9w", "100%Zq7xKv9w", "Zq7x Kv9w", "Zq7x'Kv9w"])
def test_unencoded_password_gets_the_fixed_message(tmp_path: Path, pg_url: str, password: str, verbose: bool) -> None:
    u = urlsplit(pg_url)
    target = f"postgresql://{u.username}:{password}@{u.hostname}:{u.port}{u.path}"
    done = evo(tmp_path, target, verbose=verbose)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "percent-encode" in output
    for part in secret_parts(password):
        assert part not in output, output


@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "verbose"])
def test_unknown_scheme_hides_the_password(tmp_path: Path, verbose: bool) -> None:
    done = evo(tmp_path, "postgresq://etl:p@ssW0rd@host/db", verbose=verbose)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "ssW0rd" not in output and "unknown target" in output


def test_redact_any_scheme() -> None:
    assert redact("postgresq://etl:p@ssW0rd@host/db") == "postgresq://etl:***@host/db"
    assert "xyzzy" not in redact("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=xyzzy==;")


def test_azure_key_and_sas_are_redacted_everywhere() -> None:
    from evo_frames.config import storage_options

    key, sas = "Xk3vQ9/abcDEF+ghi==", "sv=2024&sig=Pq8wLm%2Fzz"
    storage_options("az://c/x", {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": key})
    storage_options("az://c/x", {"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_SAS_TOKEN": sas})
    shown = redact(f"auth failed for key {key} and token {sas} at https://acct.blob.core.windows.net/c?{sas}")
    assert key not in shown and "Pq8wLm" not in shown and "acct" in shown


def evo_env(target: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVO_FRAMES_", "PG", "AZURE_"))}
    return {**env, "EVO_FRAMES_TARGET": target, **extra}


def run_lake(lake: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evo_frames", *args, "--lake", lake], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip


LAKE_URLS = [f"evolake://etl:{p}@lake-host/bronze" for p in PASSWORDS] + ["ftp://etl:Zq7x/Kv9w@127.0.0.1:9/lake"]


@pytest.mark.parametrize("lake", LAKE_URLS, ids=[f"{u.split(':', 1)[0]}-{i}" for i, u in enumerate(LAKE_URLS)])
def test_run_history_holds_no_password_of_a_failed_run(lake: str, target_url: str) -> None:
    """The run fails on its lake URL, whose message names the URL: the run's recorded error, and
    what is printed, hold no piece of its password."""
    password = lake.split("etl:", 1)[1].rsplit("@", 1)[0]
    done = run_lake(lake, evo_env(target_url), "run", "-e", "entries")
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    (run,) = rows(target_url, "SELECT status, error FROM evo_meta.runs")
    assert run["status"] == "failed" and "lake URL" in run["error"] and "etl:***@" in run["error"], run
    for part in secret_parts(password):
        assert part not in output, output
        assert part not in run["error"], run


BAD_KEY = "V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXlXcm9uZ0tleVdyb25nS2V5V3JvbmdLZXk9PQ=="


def container_sas(container: str, *, forged: bool = False) -> str:
    import datetime as dt

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    sas = generate_container_sas(
        AZURITE_ACCOUNT, container, account_key=AZURITE_KEY, permission=ContainerSasPermissions(read=True, list=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )  # fmt: skip
    return sas.split("sig=")[0] + "sig=Zm9yZ2VkU2lnbmF0dXJlRm9yZ2VkU2ln%3D" if forged else sas


def sas_secrets(sas: str) -> list[str]:
    sig = sas.split("sig=", 1)[1].split("&")[0]
    return [sas, sig, unquote(sig)]


def test_status_json_with_a_credential_in_the_azure_lake_url(
    azurite: Azurite, az_lake: LakeLocation, tmp_path: Path
) -> None:
    """A SAS token or an account key spelled into the lake URL is refused (exit 2) with where it
    belongs, and shown by neither ``run`` nor ``status --json``, nor kept in the run's error."""
    container = az_lake.url.removeprefix("az://")
    write_bronze(az_lake.url, "entries", "20260111T031522Z", [{"date": "2025-11-01T06:00:00", "idMember": 1,
                 "idBranch": 57, "entryAction": "Allowed"}], storage_options=az_lake.storage_options)  # fmt: skip
    target = f"duckdb://{tmp_path / 't.duckdb'}"
    env = evo_env(target, AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string)
    assert run_lake(az_lake.url, env, "run", "-e", "entries").returncode == 0
    sas = container_sas(container)
    spellings = {
        f"abfs://{container}@{AZURITE_ACCOUNT}.dfs.core.windows.net/?{sas}": ("AZURE_STORAGE_SAS_TOKEN", sas_secrets(sas)),
        f"az://{AZURITE_ACCOUNT}:{AZURITE_KEY}@{container}": ("AZURE_STORAGE_ACCOUNT_KEY", secret_parts(AZURITE_KEY)),
    }  # fmt: skip
    for lake, (where, secrets) in spellings.items():
        failed = run_lake(lake, env, "run", "-e", "entries")
        status = run_lake(lake, env, "status", "--json")
        for done in (failed, status):
            output = done.stdout + done.stderr
            assert done.returncode == 2 and where in done.stderr, output
            assert not any(s in output for s in secrets), output
        report = run_lake(az_lake.url, env, "status", "--json", "-e", "entries")
        assert report.returncode == 0, report.stderr
        last = json.loads(report.stdout)["entities"]["entries"]["last_attempt"]
        assert last["status"] == "failed" and "lake URL" in last["error"], last
        assert not any(s in report.stdout + report.stderr for s in secrets), report.stdout
    errors = [r["error"] for r in rows(target, "SELECT error FROM evo_meta.runs WHERE status = 'failed'")]
    assert len(errors) == len(spellings) and all("lake URL" in e for e in errors), errors
    assert not any(s in e for e in errors for _, secrets in spellings.values() for s in secrets), errors


@pytest.mark.parametrize("credential", ["account key", "SAS token"])
def test_verbose_azure_failure_prints_a_traceback_without_key_or_sas(
    azurite: Azurite, az_lake: LakeLocation, tmp_path: Path, credential: str
) -> None:
    write_bronze(az_lake.url, "entries", "20260111T031522Z", [{"date": "2025-11-01T06:00:00", "idMember": 1,
                 "idBranch": 57, "entryAction": "Allowed"}], storage_options=az_lake.storage_options)  # fmt: skip
    if credential == "account key":
        connection, secrets = azurite.connection_string.replace(AZURITE_KEY, BAD_KEY), [BAD_KEY, AZURITE_KEY]
    else:
        sas = container_sas(az_lake.url.removeprefix("az://"), forged=True)
        connection, secrets = f"BlobEndpoint={azurite.endpoint};SharedAccessSignature={sas};", sas_secrets(sas)
    env = evo_env(f"duckdb://{tmp_path / 't.duckdb'}", AZURE_STORAGE_CONNECTION_STRING=connection)
    done = run_lake(az_lake.url, env, "--verbose", "run", "-e", "entries")
    output = done.stdout + done.stderr
    assert (
        done.returncode == 1
        and "Traceback" in output
        and f"credential: connection string with a{'n' if credential == 'account key' else ''} {credential}" in output
    ), output
    for secret in secrets:
        assert secret not in output, output
