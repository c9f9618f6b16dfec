"""Discovery of entity modules: every module of the ``transforms`` package that defines ``ENTITY``.

The engine never imports a transform by name; it asks the registry, which imports the package
given (``$EVO_FRAMES_TRANSFORMS``, else ``transforms``), collects each module's
:class:`~evo_frames.spec.Entity` and refuses two modules that declare the same entity or the same
table. A module that defines ``SAMPLE`` (a :class:`~evo_frames.spec.Sample`, by convention
``<entity>_sample.py``) gives its entity the sample generator of ``evo-frames synth``. Modules
with neither are helpers and are left alone.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
from collections.abc import Mapping

from .errors import ConfigError, TransformError
from .spec import Entity, Sample

DEFAULT_PACKAGE = "transforms"
#: environment variable naming another package of entity modules (importable, e.g. on PYTHONPATH)
PACKAGE_ENV = "EVO_FRAMES_TRANSFORMS"


def discover(package: str | None = None) -> dict[str, Entity]:
    """Entities by name, in load order (``Entity.order``, then name), each with its sample if any.

    Args:
        package: the package of entity modules; default ``$EVO_FRAMES_TRANSFORMS``, else ``transforms``.

    Raises:
        TransformError: the package is missing, two modules declare the same entity, table or
            sample, or a sample names no entity of the package.
    """
    package = package or os.environ.get(PACKAGE_ENV) or DEFAULT_PACKAGE
    try:
        pkg = importlib.import_module(package)
    except ImportError as e:
        raise TransformError(f"transform package {package!r} cannot be imported: {e}") from e
    found: dict[str, tuple[str, Entity]] = {}
    tables: dict[str, str] = {}
    samples: dict[str, tuple[str, Sample]] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module_name = f"{package}.{info.name}"
        module = importlib.import_module(module_name)
        sample = getattr(module, "SAMPLE", None)
        if sample is not None:
            if not isinstance(sample, Sample):
                raise TransformError(
                    f"{module_name}.SAMPLE is a {type(sample).__name__}, not an evo_frames.spec.Sample"
                )
            if sample.entity in samples:
                raise TransformError(
                    f"the sample of entity {sample.entity!r} is declared by both {samples[sample.entity][0]} "
                    f"and {module_name}; remove one"
                )
            samples[sample.entity] = (module_name, sample)
        entity = getattr(module, "ENTITY", None)
        if entity is None:
            continue
        if not isinstance(entity, Entity):
            raise TransformError(f"{module_name}.ENTITY is a {type(entity).__name__}, not an evo_frames.spec.Entity")
        if entity.name in found:
            raise TransformError(
                f"entity {entity.name!r} is declared by both {found[entity.name][0]} and {module_name}; rename one"
            )
        for table in entity.tables:
            if table.qualified in tables:
                raise TransformError(
                    f"table {table.qualified} is declared by both {tables[table.qualified]} and {module_name}"
                )
            tables[table.qualified] = module_name
        found[entity.name] = (module_name, entity)
    for name, (module_name, sample) in samples.items():
        if name not in found:
            raise TransformError(
                f"{module_name}.SAMPLE is for entity {name!r}, which no module of {package} declares; "
                f"valid: {', '.join(sorted(found))}"
            )
        found[name] = (found[name][0], dataclasses.replace(found[name][1], sample=sample))
    ordered = sorted((e for _, e in found.values()), key=lambda e: (e.order, e.name))
    return {e.name: e for e in ordered}


def select(entities: Mapping[str, Entity], name: str) -> list[Entity]:
    """The entities ``--entity name`` means: one, or all in load order for ``all``."""
    if name == "all":
        return list(entities.values())
    if name not in entities:
        raise ConfigError(f"unknown entity {name!r}; valid: {', '.join([*entities, 'all'])}")
    return [entities[name]]
