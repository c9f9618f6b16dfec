"""PostgreSQL specifics: connection errors, schema upgrades, partitions, no dead tuples on re-send."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.helpers import (
    NOVEMBER,
    R1,
    R2,
    entries_snapshot,
    entry,
    load,
    rows,
    scalar,
    sink_for,
    write_bronze,
    write_entries_lake,
)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVO_FRAMES_", "PG"))}
    return subprocess.run(
        [sys.executable, "-m", "evo_frames", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_failures_are_one_clear_line(pg_url: str, tmp_path: Path) -> None:
    u = urlsplit(pg_url)
    cases = {
        "wrong password": (f"postgresql://{u.username}:wrong-secret-pw@{u.hostname}:{u.port}{u.path}", "password"),
        "wrong database": (f"postgresql://{u.username}:{u.password}@{u.hostname}:{u.port}/no_such_db", "database"),
        "wrong port": (f"postgresql://{u.username}:wrong-secret-pw@127.0.0.1:{free_port()}/x", "nothing listens"),
        "wrong host": (f"postgresql://{u.username}:wrong-secret-pw@no-such-host.invalid:5432/x", "host"),
    }
    for name, (url, expected) in cases.items():
        started = time.monotonic()
        r = cli("init", "--target", url, cwd=tmp_path)
        assert r.returncode == 1, name
        assert len(r.stderr.strip().splitlines()) == 1, (name, r.stderr)
        assert r.stderr.startswith("error: cannot connect to postgresql://"), (name, r.stderr)
        assert expected in r.stderr, (name, r.stderr)
        assert "wrong-secret-pw" not in r.stderr and "Traceback" not in r.stderr
        assert time.monotonic() - started < 60


def test_init_is_idempotent_and_upgrades_old_layout(pg_url: str, tmp_path: Path) -> None:
    with sink_for(pg_url) as sink:
        sink.execute("CREATE SCHEMA core")
        sink.execute(
            "CREATE TABLE core.evo_entries (entry_id BIGINT, entry_local_date DATE, "
            "member_id BIGINT, PRIMARY KEY (entry_id, entry_local_date))"
        )
        sink.execute("INSERT INTO core.evo_entries VALUES (1, current_date, 5)")
        sink.commit()
    r = cli("init", "--target", pg_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "added column core.evo_entries.member_name" in r.stdout and "created stg_evo.entries_raw" in r.stdout
    assert scalar(pg_url, "SELECT member_id FROM core.evo_entries") == 5  # nothing dropped
    again = cli("init", "--target", pg_url, cwd=tmp_path)
    assert again.returncode == 0 and "schema up to date" in again.stdout


def test_partitions_are_created_on_demand(pg_url: str, tmp_path: Path) -> None:
    odd = [{**entry(1, 1), "date": "1999-12-31T23:30:00"}, {**entry(2, 2), "date": "2031-02-01T00:10:00"}, entry(3, 3)]
    write_bronze(str(tmp_path), "entries", R1, odd)
    s = load(tmp_path, pg_url)
    assert s.rows_loaded == 3
    parts = rows(
        pg_url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'evo_entries' ORDER BY 1",
    )
    # 1999-12-31 23:30 in São Paulo is 2000-01-01 01:30 UTC: the partition follows the local date as sent
    assert [p["relname"] for p in parts] == ["evo_entries_p1999_12", "evo_entries_p2025_11", "evo_entries_p2031_02"]
    assert (
        scalar(
            pg_url,
            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname IN ('entries_raw', 'evo_entries') AND p.relkind = 'p'",
        )
        == 6
    )
    assert not rows(pg_url, "SELECT 1 FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partdefid")


def _tuple_stats(pg_url: str) -> dict[str, tuple[int, int]]:
    with sink_for(pg_url) as sink:
        sink.execute("SELECT pg_stat_force_next_flush()")
        sink.commit()
    time.sleep(0.6)  # the statistics collector publishes with a short delay
    got = rows(
        pg_url,
        "SELECT schemaname || '.' || relname AS t, n_tup_upd, n_dead_tup FROM pg_stat_user_tables "
        "WHERE schemaname IN ('stg_evo', 'core')",
    )
    return {r["t"]: (r["n_tup_upd"], r["n_dead_tup"]) for r in got}


def test_unchanged_resend_leaves_no_updates_or_dead_tuples(pg_url: str, tmp_path: Path) -> None:
    write_bronze(str(tmp_path), "entries", R1, [entry(s, s) for s in range(50)])
    load(tmp_path, pg_url)
    before = _tuple_stats(pg_url)
    write_bronze(str(tmp_path), "entries", R2, [entry(s, s) for s in range(50)], name="2025-11-03_part-00009.jsonl.gz")
    s = load(tmp_path, pg_url)
    assert s.files_loaded == 1 and s.tables["stg_evo.entries_raw"].unchanged == 50
    assert _tuple_stats(pg_url) == before
    assert all(upd == 0 and dead == 0 for upd, dead in before.values())


def test_session_has_timeouts_and_utc(pg_url: str) -> None:
    with sink_for(pg_url) as sink:
        assert sink.scalar("SELECT current_setting('statement_timeout')") == "10min"
        assert sink.scalar("SELECT current_setting('TimeZone')") == "UTC"


def test_terminated_backend_mid_load_is_retried(pg_url: str, tmp_path: Path, pg_server: object) -> None:
    lake = tmp_path / "lake"
    write_entries_lake(lake, NOVEMBER, 3000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVO_FRAMES_", "PG"))}
    args = [sys.executable, "-m", "evo_frames", "-v", "run", "--entity", "entries", "--lake", str(lake),
            "--target", pg_url, "--batch-size", "2"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    terminated = 0
    deadline = time.monotonic() + 120
    with sink_for(pg_url) as admin:
        while proc.poll() is None and time.monotonic() < deadline and terminated < 2:
            loaded = admin.scalar(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'evo_meta' AND tablename = 'files'"
            ) and admin.scalar("SELECT count(*) FROM evo_meta.files")
            admin.commit()
            if loaded and loaded >= 2 + 4 * terminated:
                terminated += int(
                    admin.scalar(
                        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE application_name = 'evo-frames' AND pid <> pg_backend_pid()) t"
                    )
                    or 0
                )
                admin.commit()
            time.sleep(0.05)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert terminated >= 1 and "retrying" in err
    clean = pg_server.create_database("clean_retry")  # type: ignore[attr-defined]
    try:
        subprocess.run([*args[:-4], "--target", clean, "--batch-size", "2"], check=True, env=env, timeout=300,
                       capture_output=True)  # fmt: skip
        assert entries_snapshot(pg_url) == entries_snapshot(clean)
    finally:
        pg_server.drop_database("clean_retry")  # type: ignore[attr-defined]
