"""Change detection and writes: new rows straight into their tables, changed rows upserted.

Per chunk, inside the batch's transaction:

1. The probe: the chunk's keys, content hashes and lineage (no payload) go into a TEMP table, and
   one query returns the rows that are new, or whose content hash differs from the stored row's
   *and* whose (run_id, file, line) is the same or later: an older run never overwrites a newer
   one, a file re-sent at the same path with corrected content replaces what it brought before,
   and an unchanged record is dropped before any JSON parsing or index work. Rows bound for a
   partition this session found empty, with keys it has not written there since, are new
   without a probe (:mod:`~evo_frames.sinks.fresh`).
2. New rows go straight into STG and the CORE parent: on PostgreSQL by binary COPY into the final
   (partitioned) tables, with no TEMP table and no INSERT … SELECT (``dialect.direct_copy``).
3. Changed rows go into a TEMP table and are upserted (``ON CONFLICT … DO UPDATE``).
4. For each child table, the children of changed parents are deleted and those of new and
   changed parents inserted (children mirror their parent).

The files manifest and rejects are written in the same transaction
(:mod:`~evo_frames.sinks.bookkeeping`), so a file's rows and its manifest row commit together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import polars as pl

from ..errors import TransientSinkError
from ..spec import CONTENT_HASH, Entity, Table
from .base import Counts, Probe, Written
from .connection import arrow
from .fresh import key_hashes
from .meta import MANAGED
from .quoting import literal, q, qt
from .schema import Schema, partition_name, shadow_table

#: STG columns naming where a row's content came from, compared in this order (latest wins)
LINEAGE = ("run_id", "_source_file", "_source_line")


def _newer_content(new: str, old: str, new_lineage: Sequence[str] | None = None) -> str:
    """SQL: row ``new`` differs from row ``old`` in content and comes from the same or a later
    (run, file, line): the same one when a file is re-sent at its path with corrected content.
    ``new_lineage``: the expressions of ``new``'s lineage, where they are not its columns."""
    mine = new_lineage or [f"{new}.{c}" for c in LINEAGE]
    later = f"({', '.join(mine)}) >= ({', '.join(f'{old}.{c}' for c in LINEAGE)})"
    return f"({new}.{q(CONTENT_HASH)} IS DISTINCT FROM {old}.{q(CONTENT_HASH)} AND {later})"


class Upserts(Schema):
    """Change detection and writes of STG and CORE rows; see the module docstring."""

    def lock(self, entity: Entity, paths: Iterable[str] = ()) -> None:
        """Serialise concurrent loads of one entity until the transaction ends: without ``paths``
        the entity as a whole; with them, only those files (in path order, so two batches never
        wait for each other crosswise), which loads of other files pass by."""
        if not self.dialect.lock_sql:
            return
        if not paths:
            self.execute(self.dialect.lock_sql.format(f"'evo_frames:{entity.name}'"), f"locking {entity.name}")
            return
        for path in sorted(set(paths)):
            self.execute(
                self.dialect.lock_sql.format(literal(f"evo_frames:{entity.name}:file:{path}")),
                f"locking {entity.name} file {path!r}",
            )

    def probe_chunk(self, entity: Entity, rows: pl.DataFrame) -> Probe:
        """Step 1 of the module docstring for the STG rows ``rows`` (their key columns, content
        hash and lineage are read; keys may repeat): which are new and which changed. Runs inside
        the open transaction, so it sees what earlier chunks of the batch wrote."""
        stg_t = entity.stg
        rows = rows.select(*entity.key_names, CONTENT_HASH, *LINEAGE).with_row_index("_row")
        # rows bound for a table or partition found empty (a first load, a new month) whose keys
        # this session has not written there since are new: no probe (see sinks.fresh)
        empty = self._certainly_new(stg_t, rows)
        # a chunk comes file after file: their paths go once, in the query, and each row names its
        # file by number (a path is about 120 bytes, the rest of a probed row about 40)
        probed = rows.filter(~empty).with_columns(pl.struct("run_id", "_source_file").rle_id().alias("_file"))
        files = probed.filter(pl.col("_file").is_first_distinct()).select("_file", "run_id", "_source_file")
        values = ", ".join(f"({n}, {literal(run)}, {literal(path)})" for n, run, path in files.iter_rows())
        stored = self._lookup(stg_t, entity.key_names, [CONTENT_HASH, *LINEAGE])
        newer = _newer_content("s", "t", ("f.run_id", "f._source_file", "s._source_line"))
        new, changed = self._probe(
            probed.select(*entity.key_names, CONTENT_HASH, "_file", "_source_line", "_row"),
            f"JOIN (VALUES {values}) AS f (_file, run_id, _source_file) ON f._file = s._file "
            f"{stored} WHERE t._found IS NULL OR {newer}",
            "t._found IS NULL",
            f"comparing {stg_t.qualified}",
        )
        return Probe(new=pl.concat([rows.filter(empty)["_row"], new]).sort(), changed=changed)

    def write_chunk(
        self,
        entity: Entity,
        stg: pl.DataFrame,
        core: Callable[[], dict[str, pl.DataFrame]],
        contested: Callable[[pl.DataFrame], pl.Series] | None = None,
        probe: Probe | None = None,
    ) -> Written:
        """Write one deduplicated chunk; see the module docstring. Runs inside the open transaction.

        ``core()`` gives the chunk's CORE frames; it is called once STG is written, so the caller
        may still be computing them meanwhile.

        ``probe`` is what :meth:`probe_chunk` found of ``stg`` (row numbers of ``stg``), when the
        caller probed before decoding; without it the chunk is probed here.

        With parallel writers, ``contested(keys)`` claims the keys the probe found new and returns
        the row numbers (in ``keys``) of those another writer's open transaction claimed first:
        they are upserted, so the database waits for that transaction and keeps the newer row,
        instead of copied, which would fail on the other's key.
        """
        stg_t = entity.stg
        if probe is None:
            probe = self.probe_chunk(entity, stg)
        new, changed = probe.new, probe.changed
        keys = stg.select(entity.key_names)
        if contested is not None and len(new):
            taken = new.gather(contested(keys[new]))
            new, changed = new.filter(~new.is_in(taken.implode())), pl.concat([changed, taken]).sort()
        if len(new):
            inserted = stg if len(new) == stg.height else stg[new]
            self._append(stg_t, inserted)
            self._fresh.wrote(stg_t.qualified, self._parts(stg_t, inserted), self._key_hashes(stg_t, inserted))
        if len(changed):
            # the same comparison again, on the row as it is when the upsert reaches it: whatever
            # the commit order of concurrent batches, the newer row stays, and only the rows this
            # upsert wrote go on to CORE
            guard = _newer_content("EXCLUDED", "x")
            written = self._upsert(stg_t, stg[changed], guard=guard, returning=entity.key_names)
            written = written.cast(dict(keys.schema))
            changed = keys.with_row_index("_row").join(written, on=list(entity.key_names), how="semi")["_row"]
        unchanged = stg.height - len(new) - len(changed)
        counts = {stg_t.qualified: Counts(inserted=len(new), updated=len(changed), unchanged=unchanged)}
        counts.update(self._write_core(entity, entity.core, core(), keys, new, changed))
        return Written(counts=counts, new=new, changed=changed)

    def _parts(self, table: Table, frame: pl.DataFrame) -> pl.Series:
        """Per row of ``frame``: its partition, as the month's physical value (0: the whole table)."""
        if not (table.partition_by and self.dialect.partitions):
            return pl.repeat(0, frame.height, dtype=pl.Int64, eager=True)
        return frame[table.partition_by].dt.truncate("1mo").to_physical().cast(pl.Int64)

    def _certainly_new(self, table: Table, frame: pl.DataFrame) -> pl.Series:
        """Per row of ``frame``: certainly new in ``table`` (see :mod:`~evo_frames.sinks.fresh`);
        partitions not seen yet in this session are asked whether they hold a row."""
        self._ensure_partitions(table, frame)
        parts = self._parts(table, frame)
        unknown = self._fresh.unknown(table.qualified, parts.unique().to_list())
        if unknown and table.partition_by and self.dialect.partitions:
            months = frame.select(pl.col(table.partition_by).dt.truncate("1mo").alias("m"), parts.alias("p")).unique()
            asked = months.filter(pl.col("p").is_in(pl.Series(unknown, dtype=pl.Int64).implode()))
            for month, part in asked.iter_rows():
                where = f"{q(table.schema)}.{q(partition_name(table, month))}"
                empty = self.query(f"SELECT 1 AS x FROM {where} LIMIT 1").num_rows == 0
                self._fresh.found(table.qualified, part, empty)
        elif unknown:
            self._fresh.found(table.qualified, 0, not self.has_rows(table))
        return self._fresh.certainly_new(table.qualified, parts, self._key_hashes(table, frame))

    def _key_hashes(self, table: Table, frame: pl.DataFrame) -> pl.Series:
        return key_hashes(frame, table.primary_key, table.polars_schema())

    def _probe(self, keys: pl.DataFrame, join_where: str, is_new: str, what: str) -> tuple[pl.Series, pl.Series]:
        """Stage ``keys`` (no payload; ``_row`` numbers the rows) and return the row numbers of
        the new and of the changed rows.

        ``join_where`` joins the staged rows ``s`` to what is stored and keeps the rows to write;
        ``is_new`` tells the new ones apart. Only these small columns cross the wire twice: the
        rows themselves go out once, new ones straight into their table (:meth:`_append`).
        """
        if keys.height == 0:
            return pl.Series("_row", [], pl.UInt32), pl.Series("_row", [], pl.UInt32)
        self.ingest("_ef_probe", arrow(keys))
        found = self.query(f"SELECT s._row, {is_new} AS _is_new FROM _ef_probe s {join_where}", what)
        rows = pl.from_arrow(found)
        assert isinstance(rows, pl.DataFrame)
        rows = rows.sort("_row")
        return (
            rows.filter(pl.col("_is_new"))["_row"].cast(pl.UInt32),
            rows.filter(~pl.col("_is_new"))["_row"].cast(pl.UInt32),
        )

    def _lookup(self, table: Table, keys: Sequence[str], columns: Sequence[str], alias: str = "t") -> str:
        """``LEFT JOIN`` fetching ``columns`` of the stored row with the staged row's key.

        With ``dialect.lateral_lookup`` a ``LATERAL`` join with ``LIMIT 1``, which keeps the
        planner from turning it into a hash join over the whole table: each staged row costs one
        primary-key probe, however large the table grows. Else a plain join, which DuckDB runs as
        one hash join over the staged rows.
        """
        cols = ", ".join(f"x.{q(c)}" for c in columns)
        if not self.dialect.lateral_lookup:
            match = " AND ".join(f"{alias}.{q(k)} = s.{q(k)}" for k in keys)
            stored = ", ".join(f"x.{q(k)}" for k in keys)
            return f"LEFT JOIN (SELECT {stored}, {cols}, 1 AS _found FROM {qt(table)} x) {alias} ON {match}"
        match = " AND ".join(f"x.{q(k)} = s.{q(k)}" for k in keys)
        return (
            f"LEFT JOIN LATERAL (SELECT {cols}, 1 AS _found FROM {qt(table)} x WHERE {match} LIMIT 1) {alias} ON true"
        )

    def _write_core(
        self,
        entity: Entity,
        tables: Sequence[Table],
        core: dict[str, pl.DataFrame],
        keys: pl.DataFrame,
        new: pl.Series,
        changed: pl.Series,
    ) -> dict[str, Counts]:
        """Write the CORE rows of the ``new`` and ``changed`` records (row numbers of the parent
        frame and of ``keys``) into ``tables``, parent first; children mirror their parent."""
        counts: dict[str, Counts] = {}
        for declared, table in zip(entity.core, tables, strict=True):
            frame = core[declared.qualified]
            if table.parent_key:
                counts[declared.qualified] = self._replace_children(table, frame, keys, new, changed)
            else:
                counts[declared.qualified] = self._write(table, frame, new, changed)
        return counts

    def write_core(
        self, entity: Entity, keys: pl.DataFrame, core: dict[str, pl.DataFrame], *, shadow: bool
    ) -> dict[str, Counts]:
        """Write CORE rows derived from STG (``transform``), inside the open transaction.

        Into the shadow tables of a full refresh every key is new; otherwise only keys whose
        CORE parent row is missing or older than the STG row are written.
        """
        keys = keys.select(entity.key_names)
        if shadow:
            tables = [shadow_table(t) for t in entity.core]
            new, changed = pl.int_range(keys.height, dtype=pl.UInt32, eager=True), pl.Series([], dtype=pl.UInt32)
        else:
            tables = list(entity.core)
            parent = entity.core[0]
            stg_row = self._lookup(entity.stg, entity.key_names, ["_updated_at"], alias="g")
            core_row = self._lookup(parent, entity.key_names, ["_updated_at"], alias="p")
            older = "p._found IS NULL OR p._updated_at < g._updated_at"
            new, changed = self._probe(
                keys.with_row_index("_row"),
                f"{stg_row} {core_row} WHERE g._found IS NOT NULL AND ({older})",
                "p._found IS NULL",
                f"comparing {parent.qualified} with {entity.stg.qualified}",
            )
        return self._write_core(entity, tables, core, keys, new, changed)

    def _write(self, table: Table, frame: pl.DataFrame, new: pl.Series, changed: pl.Series) -> Counts:
        """Write the rows ``new`` (certainly absent: appended) and ``changed`` (upserted) of ``frame``."""
        if len(new):
            self._append(table, frame if len(new) == frame.height else frame[new])
        if len(changed):
            self._upsert(table, frame[changed])
        return Counts(inserted=len(new), updated=len(changed), unchanged=frame.height - len(new) - len(changed))

    def _append(self, table: Table, frame: pl.DataFrame) -> None:
        """Insert rows whose keys are certainly absent from ``table``: no conflict handling.

        With ``dialect.direct_copy`` they go by binary COPY straight into the table (no TEMP
        table, no INSERT … SELECT); the Arrow types must then be exactly the column types,
        since COPY does not cast, and JSON goes as binary ``jsonb`` (version byte 1, then the
        text), which the server parses as it would the text.
        """
        self._ensure_partitions(table, frame)
        data = frame.select(table.column_names)
        if self.dialect.direct_append and self._appendable(table, data):
            self._append_rows(table, data)
            return
        if not self.dialect.direct_copy:
            self.ingest("_ef_new", arrow(data))
            cols = ", ".join(q(c) for c in table.column_names)
            self.execute(
                f"INSERT INTO {qt(table)} ({cols}) SELECT {self._select_casts(table)} FROM _ef_new s",
                f"inserting into {table.qualified}",
            )
            return
        json_cols = [c.name for c in table.columns if c.type == "json"]
        data = data.with_columns(pl.concat_str(pl.lit("\x01"), pl.col(c)).cast(pl.Binary).alias(c) for c in json_cols)
        # another run's open transaction may have inserted one of these keys after the probe: a
        # replay probes again and finds the key stored
        concurrent = "a concurrent load inserted one of its keys first"
        try:
            with self._errors(f"copying into {table.qualified}", concurrent=concurrent), self.conn.cursor() as cur:
                cur.adbc_ingest(table.name, arrow(data), mode="append", db_schema_name=table.schema)
        except TransientSinkError:
            # another process writes these tables too: what this session wrote proves nothing
            self._fresh.disable()
            raise

    @staticmethod
    def _appendable(table: Table, data: pl.DataFrame) -> bool:
        """Whether the driver's bulk append can take ``data`` as it is: every column already of
        its declared type (the append casts without the errors a SQL cast names) and no NULL in
        a NOT NULL column; else the rows go through a TEMP table, whose INSERT names the value
        that does not fit."""
        if dict(data.schema) != table.polars_schema():
            return False
        return not any(data[c.name].null_count() for c in table.columns if not c.nullable)

    def _append_rows(self, table: Table, data: pl.DataFrame) -> None:
        """Append ``data`` straight into ``table`` by the driver's bulk append
        (``dialect.direct_append``): no TEMP table, no INSERT … SELECT.

        The append takes every column of the table in its stored order, so the frame is laid
        out in that order: the managed timestamps are the transaction's ``now()`` (what their
        default gives), and a column the declaration no longer has is NULL.
        """
        stored = self.query(
            "SELECT column_name FROM information_schema.columns "
            f"WHERE table_schema = {literal(table.schema)} AND table_name = {literal(table.name)} "
            "ORDER BY ordinal_position",
            f"reading the columns of {table.qualified}",
        )
        # in the session's time zone; the column holds the instant
        now = self.scalar("SELECT now() AS now").astimezone(dt.UTC)
        stamp = pl.lit(now, dtype=pl.Datetime("us", "UTC"))
        columns = [
            pl.col(c) if c in data.columns else (stamp if c in MANAGED else pl.lit(None)).alias(c)
            for c in stored.column("column_name").to_pylist()
        ]
        with self._errors(f"appending to {table.qualified}"), self.conn.cursor() as cur:
            cur.adbc_ingest(table.name, arrow(data.select(columns)), mode="append", db_schema_name=table.schema)

    def _upsert(
        self, table: Table, frame: pl.DataFrame, guard: str | None = None, returning: Sequence[str] = ()
    ) -> Any:
        """Stage ``frame`` and upsert it into ``table`` (alias ``x``): ``ON CONFLICT`` on its primary key.

        ``guard`` (SQL over ``EXCLUDED`` and ``x``) decides whether a stored row is replaced. Returns
        the rows written, or with ``returning`` the frame of those columns of the rows written.
        """
        self._ensure_partitions(table, frame)
        self.ingest("_ef_stage", arrow(frame.select(table.column_names)))
        cols = ", ".join(q(c) for c in (*table.column_names, *MANAGED))
        updates = [c for c in table.column_names if c not in table.primary_key] + ["_updated_at"]
        set_sql = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in updates)
        sql = (
            f"INSERT INTO {qt(table)} AS x ({cols}) SELECT {self._select_casts(table)}, now(), now() FROM _ef_stage s "
            f"ON CONFLICT ({', '.join(q(k) for k in table.primary_key)}) DO UPDATE SET {set_sql}"
            + (f" WHERE {guard}" if guard else "")
        )
        what = f"upserting {table.qualified}"
        if not returning:
            return self.execute(sql, what)
        written = pl.from_arrow(self.query(f"{sql} RETURNING {', '.join(f'x.{q(c)}' for c in returning)}", what))
        assert isinstance(written, pl.DataFrame)
        return written

    def _replace_children(
        self, table: Table, frame: pl.DataFrame, keys: pl.DataFrame, new: pl.Series, changed: pl.Series
    ) -> Counts:
        """Delete the children of the ``changed`` parents, then write those of ``new`` and ``changed``."""
        deleted = 0
        if len(changed):
            self.ingest("_ef_changed", arrow(keys[changed]))
            # the planner must know how few parents changed before deleting children by them
            self.execute("ANALYZE _ef_changed")
            match = " AND ".join(f"c.{q(k)} = x.{q(p)}" for k, p in zip(keys.columns, table.parent_key, strict=True))
            deleted = self.execute(
                f"DELETE FROM {qt(table)} x WHERE EXISTS (SELECT 1 FROM _ef_changed c WHERE {match})",
                f"deleting children in {table.qualified}",
            )
        parents = keys[pl.concat([new, changed])].rename(dict(zip(keys.columns, table.parent_key, strict=True)))
        # a child may have moved from another parent: its id conflicts, and the upsert moves it
        children = frame.join(parents, on=list(table.parent_key), how="semi")
        inserted = self._upsert(table, children) if children.height else 0
        return Counts(inserted=inserted, deleted=deleted)

    def read_stg(self, entity: Entity, batch_rows: int, batch_bytes: int) -> Iterator[pl.DataFrame]:
        """Stream the STG rows of ``entity`` (raw_data as text) in batches of about ``batch_rows``
        rows or ``batch_bytes`` of JSON text, whichever comes first.

        Reads through a second connection to the same database, so the caller can write on the
        sink's own connection while the stream is open.
        """
        cols = ", ".join(
            f"CAST({q(c)} AS TEXT) AS {q(c)}" if c == "raw_data" else q(c) for c in entity.stg.column_names
        )
        reader = self.conn.adbc_clone()
        try:
            with self._errors(f"reading {entity.stg.qualified}"), reader.cursor() as cur:
                for stmt in self.dialect.session_sql:
                    cur.execute(stmt)
                cur.execute(f"SELECT {cols} FROM {qt(entity.stg)}")
                pending: list[pl.DataFrame] = []
                rows = text = 0
                for batch in cur.fetch_record_batch():
                    frame = pl.from_arrow(batch)
                    assert isinstance(frame, pl.DataFrame)
                    pending.append(frame)
                    rows += frame.height
                    text += int(frame["raw_data"].str.len_bytes().sum())
                    if rows >= batch_rows or text >= batch_bytes:
                        yield pl.concat(pending)
                        pending, rows, text = [], 0, 0
                if pending:
                    yield pl.concat(pending)
        finally:
            reader.close()
