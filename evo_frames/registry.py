"""Discovery of entity modules: every module of the ``transforms`` package that defines ``ENTITY``.

The engine never imports a transform by name; it asks the registry, which imports the package
given (``transforms`` by default), collects each module's :class:`~evo_frames.spec.Entity` and
refuses two modules that declare the same entity or the same table.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping

from .errors import ConfigError, TransformError
from .spec import Entity

DEFAULT_PACKAGE = "transforms"


def discover(package: str = DEFAULT_PACKAGE) -> dict[str, Entity]:
    """Entities by name, in load order (``Entity.order``, then name).

    Raises:
        TransformError: the package is missing, or two modules declare the same entity or table.
    """
    try:
        pkg = importlib.import_module(package)
    except ImportError as e:
        raise TransformError(f"transform package {package!r} cannot be imported: {e}") from e
    found: dict[str, tuple[str, Entity]] = {}
    tables: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module_name = f"{package}.{info.name}"
        entity = getattr(importlib.import_module(module_name), "ENTITY", None)
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
    ordered = sorted((e for _, e in found.values()), key=lambda e: (e.order, e.name))
    return {e.name: e for e in ordered}


def select(entities: Mapping[str, Entity], name: str) -> list[Entity]:
    """The entities ``--entity name`` means: one, or all in load order for ``all``."""
    if name == "all":
        return list(entities.values())
    if name not in entities:
        raise ConfigError(f"unknown entity {name!r}; valid: {', '.join([*entities, 'all'])}")
    return [entities[name]]
