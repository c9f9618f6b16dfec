"""No password is ever printed: wrong passwords, URLs that do not parse, unknown schemes, --verbose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from evo_frames.errors import redact
from tests.helpers import write_bronze

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
