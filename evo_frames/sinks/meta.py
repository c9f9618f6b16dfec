"""The bookkeeping tables in ``evo_meta``, and the columns the sink adds to every table.

Declarations only: the engine reads these tables (``status``, exploration, drift) by their
declared names, and the sink writes them (:mod:`evo_frames.sinks.bookkeeping`).
"""

from __future__ import annotations

from typing import Any

from ..spec import Column, Table

META_SCHEMA = "evo_meta"

FILES = Table(
    META_SCHEMA,
    "files",
    (
        Column(
            "path",
            "text",
            nullable=False,
            doc="the file's path, with the lake's scheme (an absolute path for local files)",
        ),
        Column("entity", "text", nullable=False, doc="the entity (entity=… folder)"),
        Column("run_id", "text", nullable=False, doc="the bronze run (run_id=… folder)"),
        Column("ingestion_date", "date", doc="the ingestion_date=… folder"),
        Column("size", "bigint", nullable=False, doc="size in bytes when loaded"),
        Column("etag", "text", nullable=False, doc="etag (or mtime) when loaded"),
        Column(
            "lines_read", "bigint", nullable=False, doc="non-blank lines read; = rows_loaded + duplicates + rejects"
        ),
        Column("blank_lines", "bigint", nullable=False, doc="blank lines skipped"),
        Column("rows_loaded", "bigint", nullable=False, doc="lines that reached STG (new, changed or unchanged)"),
        Column(
            "duplicates", "bigint", nullable=False, doc="lines superseded by a later line of the same key in the batch"
        ),
        Column("rejects", "bigint", nullable=False, doc="lines quarantined in evo_meta.rejects"),
        Column(
            "partial",
            "bool",
            nullable=False,
            doc="the gzip stream broke (truncated or corrupt): read again only once size or etag changes",
        ),
        Column("error", "text", doc="why the file is partial"),
        Column("load_id", "text", nullable=False, doc="the load that wrote this row"),
    ),
    primary_key=("path",),
    doc="one row per bronze file loaded (the manifest): a file whose path, size and etag are here is not read again",
)

REJECTS = Table(
    META_SCHEMA,
    "rejects",
    (
        Column("path", "text", nullable=False, doc="the file (as in evo_meta.files.path)"),
        Column("line", "bigint", nullable=False, doc="physical line number in the file, from 1 (STG's _source_line)"),
        Column("entity", "text", nullable=False, doc="the entity"),
        Column(
            "stage",
            "text",
            nullable=False,
            doc="read (bytes), decode (JSON), transform (key) or load (refused by the target)",
        ),
        Column("reason", "text", nullable=False, doc="what is wrong, naming the field and value"),
        Column("raw", "text", doc="the line (first 64 KiB)"),
        Column("raw_length", "bigint", doc="the line's full length in bytes"),
        Column("load_id", "text", nullable=False, doc="the load that found it"),
    ),
    primary_key=("path", "line"),
    doc="one row per line that could not be loaded",
)

LOADS = Table(
    META_SCHEMA,
    "runs",
    (
        Column("load_id", "text", nullable=False, doc="the load: UTC start time and a random suffix"),
        Column("entity", "text", nullable=False, doc="the entity"),
        Column("command", "text", doc="run or transform"),
        Column(
            "status",
            "text",
            nullable=False,
            doc="running, succeeded, partial (rejects above --max-bad-ratio), failed or interrupted (the process died)",
        ),
        Column("started_at", "timestamptz", nullable=False, doc="when it started"),
        Column("finished_at", "timestamptz", doc="when it ended (NULL while running or if it died)"),
        Column("host", "text", doc="host name of the process"),
        Column("pid", "bigint", doc="process id of the process"),
        Column("files", "bigint", doc="files loaded"),
        Column("lines_read", "bigint", doc="lines read (transform: STG rows read)"),
        Column("inserted", "bigint", doc="rows inserted (run: STG; transform: the CORE parent table)"),
        Column("updated", "bigint", doc="rows whose content changed"),
        Column("unchanged", "bigint", doc="rows read whose content was already stored"),
        Column("rejects", "bigint", doc="lines rejected"),
        Column("seconds", "decimal", doc="duration; records_per_second = lines_read / seconds"),
        Column("error", "text", doc="why it failed or was interrupted (passwords redacted)"),
    ),
    primary_key=("load_id", "entity"),
    doc="one row per load (evo-frames run or transform) and entity",
)

CAST_FAILURES = Table(
    META_SCHEMA,
    "cast_failures",
    (
        Column("load_id", "text", nullable=False, doc="the load"),
        Column("entity", "text", nullable=False, doc="the entity"),
        Column("path", "text", nullable=False, doc="the bronze file the values came from"),
        Column("table_name", "text", nullable=False, doc="the CORE table (schema.table)"),
        Column("column_name", "text", nullable=False, doc="the column"),
        Column("failures", "bigint", nullable=False, doc="values stored as NULL"),
    ),
    primary_key=("load_id", "path", "table_name", "column_name"),
    doc=(
        "per load, file, table and column: values present in the bronze line (a wrong scalar, an "
        "object or an array) that could not be typed and were stored as NULL"
    ),
)

KEY_STATS = Table(
    META_SCHEMA,
    "key_stats",
    (
        Column("entity", "text", nullable=False, doc="the entity"),
        Column("run_id", "text", nullable=False, doc="the bronze run the sampled records came from"),
        Column("path", "text", nullable=False, doc="key path: `a`, `a.b` in an object, `a[].b` in an array of objects"),
        Column("sampled", "bigint", nullable=False, doc="records of the run parsed (at most 2,000)"),
        Column("present", "bigint", nullable=False, doc="sampled records that carry the key"),
        Column("non_null", "bigint", nullable=False, doc="sampled records that carry it with a non-null value"),
        Column("types", "text", nullable=False, doc="JSON types seen, comma-separated"),
        Column("load_id", "text", nullable=False, doc="the load that sampled the run"),
    ),
    primary_key=("entity", "run_id", "path"),
    doc=(
        "per entity, run and JSON key path: how many of a sample of the run's STG records carry it; "
        "`evo-frames status` compares them with the keys the transforms read (see evo_frames.drift)"
    ),
)

META_TABLES = (FILES, REJECTS, LOADS, CAST_FAILURES, KEY_STATS)

#: earlier column names in evo_meta, renamed in place (data kept) by ``ensure_tables``:
#: ``(schema, table, old) -> new``
RENAMED_COLUMNS = {(META_SCHEMA, "rejects", "_source_file"): "path"}

#: columns the sink manages on every table, after the declared ones
MANAGED = ("_loaded_at", "_updated_at")


def interrupted_error(load: dict[str, Any]) -> str:
    """What an interrupted load's row says about it."""
    return f"the process (host {load['host']}, pid {load['pid']}) ended without recording an outcome"
