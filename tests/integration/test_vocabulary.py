"""``init`` migrates a target made by an earlier version to today's evo_meta names, keeping its rows."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import R1, cli, entry, rows, sink_for, write_bronze

#: evo_meta as the version before "one vocabulary" created it (rejects._source_file, runs without host/pid)
OLD_LAYOUT = (
    "CREATE SCHEMA evo_meta",
    "CREATE TABLE evo_meta.files (path TEXT NOT NULL, entity TEXT NOT NULL, run_id TEXT NOT NULL, "
    "ingestion_date DATE, size BIGINT NOT NULL, etag TEXT NOT NULL, lines_read BIGINT NOT NULL, "
    "blank_lines BIGINT NOT NULL, rows_loaded BIGINT NOT NULL, duplicates BIGINT NOT NULL, "
    "rejects BIGINT NOT NULL, partial BOOLEAN NOT NULL, error TEXT, load_id TEXT NOT NULL, "
    "_loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(), _updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
    "PRIMARY KEY (path))",
    "CREATE TABLE evo_meta.rejects (_source_file TEXT NOT NULL, line BIGINT NOT NULL, entity TEXT NOT NULL, "
    "stage TEXT NOT NULL, reason TEXT NOT NULL, raw TEXT, raw_length BIGINT, load_id TEXT NOT NULL, "
    "_loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(), _updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
    "PRIMARY KEY (_source_file, line))",
    "CREATE TABLE evo_meta.runs (load_id TEXT NOT NULL, entity TEXT NOT NULL, command TEXT, "
    "status TEXT NOT NULL, started_at TIMESTAMPTZ NOT NULL, finished_at TIMESTAMPTZ, files BIGINT, "
    "lines_read BIGINT, inserted BIGINT, updated BIGINT, unchanged BIGINT, rejects BIGINT, "
    "seconds NUMERIC(15,2), error TEXT, _loaded_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
    "_updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (load_id, entity))",
    "INSERT INTO evo_meta.rejects (_source_file, line, entity, stage, reason, load_id) "
    "VALUES ('old.jsonl.gz', 3, 'entries', 'decode', 'not JSON', 'L0')",
    "INSERT INTO evo_meta.runs (load_id, entity, command, status, started_at, files) "
    "VALUES ('L0', 'entries', 'run', 'succeeded', TIMESTAMPTZ '2026-01-01 00:00:00+00', 1)",
)


def test_init_migrates_the_old_layout(tmp_path: Path, target_url: str) -> None:
    with sink_for(target_url) as sink:
        for stmt in OLD_LAYOUT:
            sink.execute(stmt)
        sink.commit()

    up = cli("init", "--target", target_url)
    assert up.returncode == 0, up.stderr
    assert "added column evo_meta.runs.host" in up.stdout
    assert "renamed column evo_meta.rejects._source_file to path" in up.stdout
    assert rows(target_url, "SELECT path, line, load_id FROM evo_meta.rejects") == [
        {"path": "old.jsonl.gz", "line": 3, "load_id": "L0"}
    ]
    assert rows(target_url, "SELECT load_id, status, files, host FROM evo_meta.runs") == [
        {"load_id": "L0", "status": "succeeded", "files": 1, "host": None}
    ]
    assert cli("init", "--target", target_url).stdout.strip().endswith("schema up to date")

    # the migrated target loads and records as a new one does
    write_bronze(str(tmp_path), "entries", R1, [entry(1, 1), "{bad"])
    assert cli("run", "-e", "entries", "--lake", str(tmp_path), "--target", target_url).returncode == 0
    assert rows(target_url, "SELECT count(*) AS n FROM evo_meta.rejects WHERE path LIKE '%part-00001.jsonl.gz'") == [
        {"n": 1}
    ]
    assert len(rows(target_url, "SELECT load_id FROM evo_meta.runs")) == 2
