"""bench passes the target URL to its children by environment, never on their command lines."""

from __future__ import annotations

from evo_frames import bench


def test_child_argv_has_no_target_url() -> None:
    url = "postgresql://etl:Zq7x%2FKv9w@db:5432/bench"
    args, env = bench._target_out_of_argv(bench._cli("run", "--entity", "entries", "--target", url, "--json"))
    assert url not in " ".join(args) and "Zq7x" not in " ".join(args)
    assert env == {"EVO_FRAMES_TARGET": url}


def test_psql_url_has_no_password() -> None:
    shown, env = bench._without_password("postgresql://etl:Zq7x%2FKv9w@db:5432/bench")
    assert shown == "postgresql://etl@db:5432/bench"
    assert env == {"PGPASSWORD": "Zq7x/Kv9w"}
