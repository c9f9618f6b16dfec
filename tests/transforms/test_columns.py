"""Each column is declared once: a column with a ``source`` is derived from its declaration by the
engine unless its transform writes it by hand, and its cast failures are counted either way."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from evo_frames import expr as E
from evo_frames.pipeline import new_load_id, run_entity
from evo_frames.registry import discover
from evo_frames.spec import Column, Entity, Table, TransformContext
from tests.helpers import R1, rows, settings, sink_for, write_bronze
from tests.transforms import CTX, decode

ENTITIES = discover()


@pytest.mark.parametrize("name", sorted(ENTITIES))
def test_every_sourced_column_is_derived_or_hand_written(name: str) -> None:
    entity = ENTITIES[name]
    keyed = entity.keys(decode(entity, []), CTX)
    frames = entity.transform(keyed, CTX)
    for table in entity.core:
        plan = E.column_plan(frames[table.qualified])
        assert plan is not None, f"{table.qualified}: not built by expr.parent_table or expr.child_table"
        assert plan.table == table.qualified
        assert not set(plan.derived) & set(plan.hand), table.qualified
        unmapped = [c.name for c in table.sourced if c.name not in (*plan.derived, *plan.hand)]
        assert unmapped == [], f"{table.qualified}: columns with a source neither derived nor hand-written"
        assert set(plan.derived) == {c.name for c in table.derived(plan.hand)}


# an entity whose transform writes no column by hand: every value comes from the declarations
KEY = (Column("visit_id", "bigint", nullable=False),)
KEY_NAMES = ("visit_id",)
RUN = Column("_source_run_id", "text")
VISITS = Table(
    "core",
    "evo_visits",
    (
        *KEY,
        Column("branch_id", "bigint", source="idBranch"),
        Column("visit_date", "timestamptz", source="visitDate"),
        Column("note", "text", source="note"),
        RUN,
    ),
    primary_key=("visit_id",),
)
STEPS = Table(
    "core",
    "evo_visit_steps",
    (
        Column("visit_id", "bigint", nullable=False),
        Column("step_id", "bigint", nullable=False, source="steps[].id"),
        Column("weight", "decimal", source="steps[].weight"),
        Column("done", "bool", source="steps[].done"),
        Column("kind_id", "int", source="steps[].kind.id"),
        RUN,
    ),
    primary_key=("visit_id", "step_id"),
    parent_key=("visit_id",),
)
_S = pl.String
STEP = pl.Struct({"id": _S, "weight": _S, "done": _S, "kind": pl.Struct({"id": _S})})
RECORD = pl.Struct({"idVisit": _S, "idBranch": _S, "visitDate": _S, "note": _S, "steps": pl.List(STEP)})


def _keys(records: pl.LazyFrame, ctx: TransformContext) -> pl.LazyFrame:
    return records.with_columns(visit_id=E.bigint("idVisit"), _key_error=pl.lit(None, pl.String))


def _transform(records: pl.LazyFrame, ctx: TransformContext) -> dict[str, pl.LazyFrame]:
    tz = ctx.source_timezone
    return {
        VISITS.qualified: E.parent_table(records, VISITS, tz),
        STEPS.qualified: E.child_table(E.elements_of(records, STEPS), STEPS, tz),
    }


VISITS_ENTITY = Entity(name="visits", record=RECORD, key=KEY, keys=_keys, core=(VISITS, STEPS), transform=_transform)


def test_a_column_declared_only_in_its_table_is_loaded_and_its_cast_failures_counted(tmp_path: Path) -> None:
    target = f"duckdb:{tmp_path / 'evo.duckdb'}"
    steps = [
        {"id": 1, "weight": "12.5", "done": "true", "kind": {"id": "2"}},
        {"id": "x", "weight": "1"},  # no integer key: not a row, its id still counted
        {"id": 2, "weight": "heavy", "done": "maybe", "kind": {"id": "k"}},
    ]
    write_bronze(
        str(tmp_path),
        "visits",
        R1,
        [
            {"idVisit": 1, "idBranch": 7, "visitDate": "2025-03-10T08:00:00", "note": " hi ", "steps": steps},
            {"idVisit": 2, "idBranch": "abc", "visitDate": "garbage", "note": "", "steps": []},
        ],
    )
    with sink_for(target) as sink:
        s = run_entity(sink, VISITS_ENTITY, settings(tmp_path, target), load_id=new_load_id())
    assert s.cast_failures == {
        "core.evo_visits.branch_id": 1,
        "core.evo_visits.visit_date": 1,
        "core.evo_visit_steps.step_id": 1,
        "core.evo_visit_steps.weight": 1,
        "core.evo_visit_steps.done": 1,
        "core.evo_visit_steps.kind_id": 1,
    }
    assert rows(
        target, "SELECT visit_id, branch_id, visit_date, note, _source_run_id FROM core.evo_visits ORDER BY 1"
    ) == [
        {
            "visit_id": 1,
            "branch_id": 7,
            "visit_date": dt.datetime(2025, 3, 10, 11, tzinfo=dt.UTC),
            "note": "hi",
            "_source_run_id": R1,
        },
        {"visit_id": 2, "branch_id": None, "visit_date": None, "note": None, "_source_run_id": R1},
    ]
    assert rows(target, "SELECT step_id, weight, done, kind_id FROM core.evo_visit_steps ORDER BY 1") == [
        {"step_id": 1, "weight": Decimal("12.50"), "done": True, "kind_id": 2},
        {"step_id": 2, "weight": None, "done": None, "kind_id": None},
    ]


def test_a_source_or_hand_written_column_that_cannot_be_placed_is_refused() -> None:
    with pytest.raises(ValueError, match=r"source 'steps\[\]\.a\[\]\.b' is neither a bronze key nor `list\[\]\.field`"):
        Column("b", "text", source="steps[].a[].b")
    with pytest.raises(ValueError, match="a child table's sources are fields of one list"):
        Table("core", "t", (*KEY, Column("a", "int", source="steps[].a"), Column("b", "int", source="b")), KEY_NAMES,
              parent_key=KEY_NAMES)  # fmt: skip
    with pytest.raises(ValueError, match="a parent table's sources are top-level bronze keys; got"):
        Table("core", "t", (*KEY, Column("a", "int", source="steps[].a")), KEY_NAMES)
    with pytest.raises(ValueError, match=r"hand-written columns \['nope'\] are not among its columns"):
        E.parent_table(pl.LazyFrame(), VISITS, "UTC", nope=pl.lit(1))
