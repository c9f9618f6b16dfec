"""Entries: turnstile check-ins. Grain: one row per entry; key ``(entry_id, entry_local_date)``.

The EVO API sends entries without an id. ``entry_id`` follows the recipe of the system this
replaces, so ids stay comparable with data it loaded:
``int(md5("|".join([date, v(idMember), v(idProspect), v(idEmployee), v(idBranch), v(device),
v(entryAction)]))[:15], 16) % 10**15`` where ``date`` is the raw API string and ``v(x)`` is
``str(x)`` when ``x`` is truthy, else ``""``.

Time: ``date`` and ``dateTurn`` are local times of the branch's turnstile, whose zone the record
names in ``timeZone`` (a Windows zone name, mapped to IANA by :mod:`transforms.windows_zones`);
a missing or unknown zone falls back to ``source_timezone``. ``entry_date`` is ``date`` read so and
stored in UTC, ``iana_zone`` the zone used. The key and the partitions use ``entry_local_date``,
the calendar day of ``date`` as sent: it comes from the raw string alone, so no zone setting or
mapping can give one entry two keys.
"""

from __future__ import annotations

import polars as pl
import polars_hash as plh

from evo_frames import expr as E
from evo_frames.spec import Column, Endpoint, Entity, Index, RecordZone, Table, TransformContext

from .windows_zones import WINDOWS_ZONES

FIELDS = (
    "date", "dateTurn", "timeZone", "idMember", "nameMember", "idProspect", "nameProspect",
    "idEmployee", "nameEmployee", "entryType", "entryAction", "device", "releasesByID",
    "idBranch", "blockReason", "idMigration",
)  # fmt: skip

RECORD = pl.Struct({f: pl.String for f in FIELDS})

KEY = (
    Column("entry_id", "bigint", nullable=False, doc="md5-derived id of the entry (see the module docstring)"),
    Column("entry_local_date", "date", nullable=False, doc="the calendar day of EVO `date` as sent (local day)"),
)

ZONE = RecordZone("timeZone", WINDOWS_ZONES)

ENTRIES = Table(
    "core",
    "evo_entries",
    (
        *KEY,
        # NULL only for a local time that does not exist in its zone (skipped by a DST change)
        Column("entry_date", "timestamptz", source="date", doc="EVO `date`, read in iana_zone, stored in UTC"),
        Column("entry_date_turn", "timestamptz", source="dateTurn"),
        Column("timezone", "text", source="timeZone"),
        Column("iana_zone", "text", doc="IANA zone of date and dateTurn: timeZone mapped, else source_timezone"),
        Column("member_id", "bigint", source="idMember"),
        Column("member_name", "text", source="nameMember"),
        Column("prospect_id", "bigint", source="idProspect"),
        Column("prospect_name", "text", source="nameProspect"),
        Column("employee_id", "bigint", source="idEmployee"),
        Column("employee_name", "text", source="nameEmployee"),
        Column("branch_id", "bigint", source="idBranch"),
        Column("entry_type", "text", source="entryType"),
        Column("entry_action", "text", source="entryAction"),
        Column("device", "text", source="device"),
        Column("block_reason", "text", source="blockReason"),
        Column("releases_by_id", "bigint", source="releasesByID"),
        Column("migration_id", "text", source="idMigration"),
        Column(
            "_source_run_id",
            "text",
            doc="the bronze run (run_id) of the record this row was derived from (STG: run_id)",
        ),
    ),
    primary_key=("entry_id", "entry_local_date"),
    doc="one row per turnstile entry (check-in)",
    partition_by="entry_local_date",
    indexes=(
        Index("idx_core_entries_date", ("entry_date",)),
        Index("idx_core_entries_member", ("member_id",), where="member_id IS NOT NULL"),
        # a branch's entries over a period; branch_id alone is too coarse to be used
        Index("idx_core_entries_branch_date", ("branch_id", "entry_date")),
    ),
    retired_indexes=("idx_core_entries_branch",),
)


def _v(field: str) -> pl.Expr:
    # python truthiness of the API value: null, missing, "", 0 and false all become ""
    s = pl.col(field)
    return pl.when(s.is_null() | s.is_in(["", "0", "false", "0.0"])).then(pl.lit("")).otherwise(s)


def recipe_key() -> pl.Expr:
    """The string the reference hashes: raw ``date`` then the truthy-or-empty id fields."""
    parts = (_v(f) for f in ("idMember", "idProspect", "idEmployee", "idBranch", "device", "entryAction"))
    return pl.concat_str([pl.col("date"), *parts], separator="|")


def entry_id() -> pl.Expr:
    """The reference ``entry_id``: first 15 hex digits of md5(recipe key), mod 10**15."""
    digest = plh.col("_recipe_key").nchash.md5().str.slice(0, 15).str.to_integer(base=16)
    return pl.when(pl.col("date").is_not_null()).then(digest.mod(10**15)).alias("entry_id")


def keys(records: pl.LazyFrame, ctx: TransformContext) -> pl.LazyFrame:
    """Adds ``entry_id``, ``entry_local_date`` and ``_key_error``; none depends on a zone."""
    # staged once: an expression referenced twice would parse every date twice
    is_timestamp = pl.col("_date_is_timestamp")
    staged = E.with_is_timestamp(
        records.with_columns(recipe_key().alias("_recipe_key")), {is_timestamp.meta.output_name(): pl.col("date")}
    )
    return (
        staged.with_columns(entry_id(), pl.when(is_timestamp).then(E.date("date")).alias("entry_local_date"))
        .drop("_recipe_key")
        .with_columns(
            _key_error=pl.when(pl.col("date").is_null())
            .then(pl.lit("key field date is missing"))
            .when(pl.col("entry_local_date").is_null() & is_timestamp)
            .then(pl.format("key field date {} is outside the years 0001 to 9999", pl.col("date")))
            .when(pl.col("entry_local_date").is_null())
            .then(pl.format("key field date {} is not a timestamp (YYYY-MM-DDTHH:MM:SS)", pl.col("date")))
        )
        .drop(is_timestamp.meta.output_name())
    )


def transform(records: pl.LazyFrame, ctx: TransformContext) -> dict[str, pl.LazyFrame]:
    """Bronze entries (with keys) → ``core.evo_entries``, one row per record."""
    times = {"entry_date": "date", "entry_date_turn": "dateTurn"}
    zoned = E.with_zoned_timestamps(records, times, ctx.source_timezone, ZONE, "iana_zone")
    # entry_date and entry_date_turn: read in each record's zone above, not in source_timezone
    entries = E.parent_table(
        zoned, ENTRIES, ctx.source_timezone, entry_date=pl.col("entry_date"), entry_date_turn=pl.col("entry_date_turn")
    )
    return {ENTRIES.qualified: entries}


#: ``evo-frames extract``: weekly ``registerDate`` windows from ``--start`` (the API filters on ``date``)
API = Endpoint(
    path="/api/v1/entries",
    window_field="date",
    start_param="registerDateStart",
    end_param="registerDateEnd",
    take=1000,
    part_size=10_000,
    days=7,
    prefix="%Y-%m-%d_",
)

ENTITY = Entity(
    name="entries",
    record=RECORD,
    key=KEY,
    keys=keys,
    core=(ENTRIES,),
    transform=transform,
    order=30,
    api=API,
    zone=ZONE,
)
