"""The registry joins each entity to its sample and refuses samples it cannot place."""

from __future__ import annotations

from pathlib import Path

import pytest

from evo_frames.errors import TransformError
from evo_frames.registry import discover
from tests.helpers import python_package

SAMPLE = """
from evo_frames.spec import Sample

SAMPLE = Sample(entity={entity!r}, build=lambda f, populations: f.lf, part_size=1, batch_rows=1, page_size=1)
"""


def test_every_entity_of_the_transforms_package_has_its_sample() -> None:
    entities = discover()
    assert {name: e.sample.entity for name, e in entities.items() if e.sample} == {n: n for n in entities}


def test_the_package_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVO_FRAMES_TRANSFORMS", python_package(tmp_path, monkeypatch, {}))
    assert discover() == {}


def test_a_sample_of_no_entity_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = python_package(tmp_path, monkeypatch, {"ghosts_sample": SAMPLE.format(entity="ghosts")})
    with pytest.raises(TransformError, match=r"ghosts_sample\.SAMPLE is for entity 'ghosts', which no module"):
        discover(package)


def test_two_samples_of_one_entity_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = SAMPLE.format(entity="ghosts")
    package = python_package(tmp_path, monkeypatch, {"a_sample": text, "b_sample": text})
    with pytest.raises(TransformError, match=r"declared by both .*a_sample and .*b_sample"):
        discover(package)
