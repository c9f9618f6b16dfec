"""What PostgreSQL and DuckDB do differently, as data.

Both targets are driven through ADBC by the same :class:`~evo_frames.sinks.sql.SqlSink`; the
few SQL differences (JSON type, content hash, partitioning, session setup) live here so that no
code path branches on the target's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """The SQL differences of one target.

    Attributes:
        name: ``postgresql`` or ``duckdb``.
        types: logical column type → SQL type.
        partitions: range-partition tables that declare ``partition_by`` (monthly, on demand).
        max_identifier: longest identifier the target accepts.
        session_sql: statements run on every new connection.
        time_zone_sql: statement setting the session's time zone (``{}`` = a validated IANA name),
            in which the SQL computes and shows TIMESTAMPTZ values.
        read_only_sql: statements run on every new connection of a read-only sink (DuckDB opens
            the file read-only instead).
        lock_sql: statement that serialises loads of one entity in a transaction (``{}`` = key).
        ddl_lock_sql: statement that serialises schema, index and partition DDL of concurrent
            processes until the transaction ends (``{}`` = what is changed), or None where one
            process writes at a time (DuckDB's file lock).
        load_lock_sql: statement a load's own session runs to hold a lock for as long as it lives
            (``{}`` = key), or None where only one process can write at a time (DuckDB's file lock).
        load_held_sql: query counting (``n``) the sessions holding that lock (``{}`` = key).
        table_stats_sql: query of one table's ``bytes`` and ``dead_rows`` (``{schema}``,
            ``{table}``), or None where the target has no such statistics.
        index_names_sql: query of the index names (``name``) of a ``{schema}``, where indexes are
            schema objects with names of their own (renamed when a full refresh swaps tables).
        maintenance: ``optimize`` statements per action (``analyze``, ``vacuum``, ``reindex``), with
            ``{table}``; an action the target does not have is absent. They run in autocommit.
        parallel_writers: several connections may load batches at once (DuckDB: one writer
            process per file, and one connection writes as fast as several).
        direct_copy: rows certainly new go by binary COPY straight into their table (Arrow types
            exactly the column types, JSON as binary ``jsonb``); else through a TEMP table.
        direct_append: rows certainly new go by the driver's bulk append straight into their table
            (DuckDB's appender, in-process: Arrow in, no TEMP table, no INSERT … SELECT) when their
            columns already have the declared types; else through a TEMP table.
        secondary_indexes: create the tables' secondary indexes. DuckDB answers analytic queries
            from zone maps and its ART indexes slow every upsert, so it only keeps primary keys.
        create_database_sql: statement creating another database on the same server (``{}`` = the
            quoted name), or None where a database is a file (DuckDB).
        drop_database_sql: statement dropping such a database (``{}`` = the quoted name).
        copy_reference: the target's own client bulk-loads it (psql ``\\copy``), so ``bench``
            measures a first load against that limit.
        json_reference_sql: statement by which the target reads gzipped JSON lines into a new
            table itself (``{table}``, ``{files}`` = a list literal of paths), the limit ``bench``
            measures a first load against; None where the target cannot.
        lateral_lookup: change detection fetches each staged row's stored row by its own
            primary-key probe (``LEFT JOIN LATERAL … LIMIT 1``), which keeps PostgreSQL from hashing
            the whole table; else by a plain ``LEFT JOIN``, which DuckDB runs as one hash join
            (about 6× faster there than its decorrelated lateral join).
    """

    name: str
    types: Mapping[str, str]
    partitions: bool
    max_identifier: int
    session_sql: tuple[str, ...]
    time_zone_sql: str
    read_only_sql: tuple[str, ...]
    lock_sql: str | None
    ddl_lock_sql: str | None
    load_lock_sql: str | None
    load_held_sql: str | None
    parallel_writers: bool
    direct_copy: bool
    direct_append: bool
    secondary_indexes: bool
    table_stats_sql: str | None
    index_names_sql: str | None
    maintenance: Mapping[str, str]
    create_database_sql: str | None
    drop_database_sql: str | None
    copy_reference: bool
    json_reference_sql: str | None
    lateral_lookup: bool


_COMMON_TYPES = {
    "bigint": "BIGINT",
    "int": "INTEGER",
    "decimal": "NUMERIC(15,2)",
    "text": "TEXT",
    "bool": "BOOLEAN",
    "date": "DATE",
    "timestamptz": "TIMESTAMPTZ",
}

POSTGRESQL = Dialect(
    name="postgresql",
    types={**_COMMON_TYPES, "json": "JSONB"},
    partitions=True,
    max_identifier=63,
    # jit compiles every short ETL statement anew and costs more than it saves here
    session_sql=("SET TIME ZONE 'UTC'", "SET jit = off"),
    time_zone_sql="SET TIME ZONE '{}'",
    read_only_sql=("SET default_transaction_read_only = on",),
    lock_sql="SELECT pg_advisory_xact_lock(hashtext({}))",
    ddl_lock_sql="SELECT pg_advisory_xact_lock(hashtext('evo_frames:ddl'), hashtext({}))",
    load_lock_sql="SELECT pg_advisory_lock(hashtext('evo_frames:load'), hashtext({}))",
    load_held_sql=(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
        "AND classid = hashtext('evo_frames:load')::oid AND objid = hashtext({})::oid"
    ),
    parallel_writers=True,
    direct_copy=True,
    direct_append=False,
    secondary_indexes=True,
    # partitioned tables: sum over their partitions
    table_stats_sql=(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) AS bytes, "
        "coalesce(sum(s.n_dead_tup), 0) AS dead_rows "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p') AND (c.relname = '{table}' OR c.oid IN "
        "(SELECT inhrelid FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = '{table}' AND p.relnamespace = n.oid))"
    ),
    index_names_sql="SELECT indexname AS name FROM pg_indexes WHERE schemaname = '{schema}'",
    maintenance={
        "analyze": "ANALYZE {table}",
        "vacuum": "VACUUM (ANALYZE) {table}",
        "reindex": "REINDEX TABLE CONCURRENTLY {table}",
    },
    create_database_sql="CREATE DATABASE {}",
    drop_database_sql="DROP DATABASE IF EXISTS {} WITH (FORCE)",
    copy_reference=True,
    json_reference_sql=None,
    lateral_lookup=True,
)

DUCKDB = Dialect(
    name="duckdb",
    types={**_COMMON_TYPES, "json": "JSON"},
    partitions=False,
    max_identifier=255,
    session_sql=(
        "SET TimeZone = 'UTC'",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
    ),
    time_zone_sql="SET TimeZone = '{}'",
    read_only_sql=(),
    lock_sql=None,
    ddl_lock_sql=None,
    load_lock_sql=None,
    load_held_sql=None,
    # in-process, INSERT … SELECT from Arrow costs no more than an appender would
    parallel_writers=False,
    direct_copy=False,
    direct_append=True,
    secondary_indexes=False,
    table_stats_sql=None,
    index_names_sql=None,
    # DuckDB compacts on CHECKPOINT and keeps only primary-key indexes
    maintenance={"analyze": "ANALYZE {table}", "vacuum": "CHECKPOINT"},
    create_database_sql=None,
    drop_database_sql=None,
    copy_reference=False,
    json_reference_sql="CREATE TABLE {table} AS SELECT * FROM read_json({files}, format = 'newline_delimited')",
    lateral_lookup=False,
)
