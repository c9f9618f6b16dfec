"""The registry's entities: load order, refused duplicates and wrong declarations, ``--entity`` selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from evo_frames.errors import ConfigError, TransformError
from evo_frames.registry import discover, select
from tests.helpers import python_package

ENTITY = """
import polars as pl

from evo_frames.spec import Column, Entity, Table

KEY = (Column("id", "bigint", nullable=False),)
ENTITY = Entity(
    name={name!r},
    record=pl.Struct({{"id": pl.String}}),
    key=KEY,
    keys=lambda records, ctx: records,
    core=(Table("core", {table!r}, KEY, primary_key=("id",)),),
    transform=lambda records, ctx: {{}},
    order={order},
)
"""


def entity(name: str, order: int = 100, table: str | None = None) -> str:
    return ENTITY.format(name=name, order=order, table=table or f"evo_{name}")


def test_entities_come_in_load_order_then_by_name_and_helpers_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules = {
        "a": entity("spirits", order=20),
        "b": entity("ghosts", order=10),
        "c": entity("banshees", order=20),
        "d": entity("wraiths"),
        "shared": "PAIRS = 2\n",
    }
    entities = discover(python_package(tmp_path, monkeypatch, modules))
    assert list(entities) == ["ghosts", "banshees", "spirits", "wraiths"]
    assert [e.name for e in select(entities, "all")] == ["ghosts", "banshees", "spirits", "wraiths"]
    assert [e.name for e in select(entities, "spirits")] == ["spirits"]


def test_an_unknown_entity_is_refused_with_the_valid_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entities = discover(python_package(tmp_path, monkeypatch, {"a": entity("ghosts"), "b": entity("spirits")}))
    with pytest.raises(ConfigError, match=r"unknown entity 'poltergeists'; valid: ghosts, spirits, all"):
        select(entities, "poltergeists")


def test_two_modules_declaring_one_entity_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = python_package(
        tmp_path, monkeypatch, {"a": entity("ghosts", table="t1"), "b": entity("ghosts", table="t2")}
    )
    with pytest.raises(TransformError, match=rf"entity 'ghosts' is declared by both {package}\.a and {package}\.b"):
        discover(package)


def test_two_entities_declaring_one_table_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = python_package(
        tmp_path, monkeypatch, {"a": entity("ghosts", table="t"), "b": entity("spirits", table="t")}
    )
    with pytest.raises(TransformError, match=rf"table core\.t is declared by both {package}\.a and {package}\.b"):
        discover(package)


def test_an_entity_or_sample_of_the_wrong_type_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = python_package(tmp_path, monkeypatch, {"a": "ENTITY = {'name': 'ghosts'}\n"})
    with pytest.raises(TransformError, match=rf"{package}\.a\.ENTITY is a dict, not an evo_frames\.spec\.Entity"):
        discover(package)
    package = python_package(tmp_path, monkeypatch, {"a_sample": "SAMPLE = 'ghosts'\n"})
    with pytest.raises(TransformError, match=rf"{package}\.a_sample\.SAMPLE is a str, not an evo_frames\.spec\.Sample"):
        discover(package)


def test_a_package_that_cannot_be_imported_is_named() -> None:
    with pytest.raises(TransformError, match=r"transform package 'no_such_package_here' cannot be imported"):
        discover("no_such_package_here")
