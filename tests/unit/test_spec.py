"""The declarations check themselves, and an entity derives its STG table from its key."""

from __future__ import annotations

import polars as pl
import pytest

from evo_frames.spec import CONTENT_HASH, POLARS_TYPES, Column, Endpoint, Entity, Table, TransformContext

KEY = (Column("ghost_id", "bigint", nullable=False), Column("seen_at", "timestamptz", nullable=False))
PARENT = Table("core", "ghosts", (*KEY, Column("name", "text", source="name")), primary_key=("ghost_id", "seen_at"))
CHILD = Table(
    "core",
    "ghost_chains",
    (Column("ghost_id", "bigint"), Column("chain_id", "bigint", source="chains[].id")),
    primary_key=("ghost_id", "chain_id"),
    parent_key=("ghost_id",),
)


def _keys(records: pl.LazyFrame, ctx: TransformContext) -> pl.LazyFrame:
    return records


def _transform(records: pl.LazyFrame, ctx: TransformContext) -> dict[str, pl.LazyFrame]:
    return {}


def _entity(*core: Table, key: tuple[Column, ...] = KEY) -> Entity:
    record = pl.Struct({"id": pl.String})
    return Entity(name="ghosts", record=record, key=key, keys=_keys, core=core, transform=_transform)


def test_an_unknown_column_type_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"column 'n': unknown type 'varchar'; valid: bigint, int, decimal, text"):
        Column("n", "varchar")  # type: ignore[arg-type]


def test_key_columns_must_be_columns() -> None:
    with pytest.raises(ValueError, match=r"table core\.t: key columns \['id'\] are not among its columns \['a'\]"):
        Table("core", "t", (Column("a", "int"),), primary_key=("id",))
    with pytest.raises(ValueError, match=r"key columns \['p'\]"):
        Table("core", "t", (Column("a", "int"),), primary_key=("a",), parent_key=("p",))


def test_the_partition_column_must_be_in_the_primary_key() -> None:
    columns = (Column("a", "int"), Column("d", "date"))
    with pytest.raises(ValueError, match=r"partition column 'd' must be in the primary key"):
        Table("core", "t", columns, primary_key=("a",), partition_by="d")
    assert Table("core", "t", columns, primary_key=("a", "d"), partition_by="d").partition_by == "d"


def test_a_table_names_itself_and_its_polars_schema() -> None:
    assert PARENT.qualified == "core.ghosts"
    assert PARENT.column_names == ("ghost_id", "seen_at", "name")
    assert PARENT.polars_schema() == {
        "ghost_id": pl.Int64(),
        "seen_at": pl.Datetime("us", "UTC"),
        "name": pl.String(),
    }
    assert set(POLARS_TYPES) == {"bigint", "int", "decimal", "text", "bool", "date", "timestamptz", "json"}


def test_the_stg_table_is_derived_from_the_key() -> None:
    stg = _entity(PARENT, CHILD).stg
    assert stg.qualified == "stg_evo.ghosts_raw"
    assert stg.primary_key == ("ghost_id", "seen_at")
    assert stg.column_names == (
        "ghost_id",
        "seen_at",
        "raw_data",
        CONTENT_HASH,
        "_source_file",
        "_source_line",
        "run_id",
        "ingestion_date",
    )
    # the first date or timestamp key column partitions STG
    assert stg.partition_by == "seen_at"
    assert stg.retired_indexes == ("idx_stg_ghosts_run",)


def test_an_entity_keyed_by_an_integer_alone_has_no_partition() -> None:
    key = KEY[:1]
    parent = Table("core", "ghosts", key, primary_key=("ghost_id",))
    entity = _entity(parent, key=key)
    assert entity.stg.partition_by is None
    assert entity.key_names == ("ghost_id",)
    assert [t.qualified for t in entity.tables] == ["stg_evo.ghosts_raw", "core.ghosts"]


def test_the_first_core_table_must_be_the_parent() -> None:
    with pytest.raises(ValueError, match=r"entity ghosts: the first CORE table must be the parent"):
        _entity(CHILD, PARENT)
    with pytest.raises(ValueError, match=r"the first CORE table must be the parent"):
        _entity()


@pytest.mark.parametrize(
    ("months", "days", "take", "part_size", "message"),
    [
        (0, 0, 50, 100, "give exactly one of months or days"),
        (3, 7, 50, 100, "give exactly one of months or days"),
        (3, 0, 0, 100, "take and part_size must be at least 1"),
        (0, 7, 50, 0, "take and part_size must be at least 1"),
    ],
)
def test_an_endpoint_has_one_window_length_and_positive_sizes(
    months: int, days: int, take: int, part_size: int, message: str
) -> None:
    with pytest.raises(ValueError, match=rf"endpoint /api/v1/ghosts: {message}"):
        Endpoint("/api/v1/ghosts", "seenAt", "from", "to", take=take, part_size=part_size, months=months, days=days)


def test_an_endpoint_with_one_window_length_is_accepted() -> None:
    weekly = Endpoint("/api/v1/ghosts", "seenAt", "from", "to", take=50, part_size=100, days=7)
    assert (weekly.months, weekly.days, weekly.prefix, weekly.params) == (0, 7, "%Y-%m_", ())
