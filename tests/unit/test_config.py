"""Settings precedence (flag > env > file > default), validation and secrets."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from evo_frames.config import load_settings, storage_options
from evo_frames.errors import ConfigError, redact


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert (s.target, s.batch_size, s.source_timezone) == ("duckdb:data/evo.duckdb", 10, "America/Sao_Paulo")
    assert s.origins["batch_size"] == "default"


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[load]\nbatch_size = 4\nworkers = 3\nchunk_rows = 5000\n[lake]\nurl = "from-file"\n')
    env = {"EVO_FRAMES_BATCH_SIZE": "6", "EVO_FRAMES_WORKERS": "5"}
    s = load_settings({"batch_size": 8, "workers": None}, config=cfg, env=env)
    assert s.batch_size == 8 and s.origins["batch_size"] == "flag"
    assert s.workers == 5 and s.origins["workers"] == "env"
    assert s.chunk_rows == 5000 and s.origins["chunk_rows"].startswith("file")
    assert s.lake == "from-file"
    assert s.retries == 5 and s.origins["retries"] == "default"


def test_config_file_from_env_variable(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[target]\nurl = "duckdb:x.duckdb"\n')
    assert load_settings(env={"EVO_FRAMES_CONFIG": str(cfg)}).target == "duckdb:x.duckdb"


def test_unknown_key_names_key_file_and_choices(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[load]\nbatch_sise = 4\n")
    with pytest.raises(ConfigError) as e:
        load_settings(config=cfg, env={})
    msg = str(e.value)
    assert "batch_sise" in msg and str(cfg) in msg and "batch_size" in msg


def test_unknown_section(tmp_path: Path) -> None:
    cfg = write(tmp_path, "[loads]\nbatch_size = 4\n")
    with pytest.raises(ConfigError, match=r"unknown section \[loads\]; valid: lake, target, load"):
        load_settings(config=cfg, env={})


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    cfg = write(tmp_path, '[load]\nbatch_size = "many"\n')
    with pytest.raises(ConfigError, match=r"batch_size = 'many' must be int"):
        load_settings(config=cfg, env={})
    with pytest.raises(ConfigError, match="EVO_FRAMES_WORKERS"):
        load_settings(config=None, env={"EVO_FRAMES_WORKERS": "two"})


def test_invalid_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_bad_ratio"):
        load_settings({"max_bad_ratio": 1.5}, env={})
    with pytest.raises(ConfigError, match="IANA"):
        load_settings({"source_timezone": "Brazil/Nowhere"}, env={})
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config=tmp_path / "missing.toml", env={})


def test_password_never_in_repr() -> None:
    s = load_settings({"target": "postgresql://etl:s3cr3t@db:5432/evo"}, env={})
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in str(s)
    assert "postgresql://etl:***@db:5432/evo" in repr(s)


def test_a_lake_password_is_hidden_once_the_settings_are_loaded() -> None:
    # a space or `/` in it escapes the URL pattern of redact(): the password itself is registered,
    # so the lake shown before it is ever opened (e.g. by status) does not carry it
    password = f"Zq{uuid.uuid4().hex[:6]} K/v9"
    lake = f"sftp://etl:{password}@host/lake"
    settings = load_settings({"lake": lake}, env={})
    assert password not in redact(f"listing {settings.lake} failed")
    assert "etl:***@host/lake" in redact(settings.lake)


def test_azure_credentials_only_from_environment() -> None:
    assert storage_options("data/lake", {}) == {}
    conn = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k"
    assert storage_options("az://c", {"AZURE_STORAGE_CONNECTION_STRING": conn}) == {"connection_string": conn}
    assert storage_options("az://c", {"AZURE_STORAGE_ACCOUNT_NAME": "a", "AZURE_STORAGE_ACCOUNT_KEY": "k"}) == {
        "account_name": "a",
        "account_key": "k",
    }
    with pytest.raises(ConfigError, match="AZURE_STORAGE_CONNECTION_STRING"):
        storage_options("abfs://c@a.dfs.core.windows.net", {})
