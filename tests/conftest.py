"""Shared fixtures: real PostgreSQL, real Azurite, and sink parametrisation.

Fixtures
--------
``pg_server`` (session)
    A :class:`tests.services.PostgresAdmin`: the server named by ``EVO_FRAMES_TEST_PG_URL``
    (an admin URL allowed to create databases), else a throwaway :class:`PostgresServer`
    stopped at session end.
``pg_url`` (function)
    URL of a fresh, empty database ``test_<uuid8>``, dropped after the test.
``target_url`` (function)
    Parametrised over ``--sinks`` (default ``duckdb,postgres``), ids ``duckdb`` / ``postgres``:
    ``duckdb:///<tmp_path>/t.duckdb`` or a fresh ``pg_url``.
``azurite`` (session)
    A running :class:`tests.services.Azurite`.
``az_lake`` (function)
    ``(lake_url, storage_options)`` for a fresh, empty container: ``("az://lake-<uuid8>", {...})``.

A service that cannot be had fails its tests, with what is missing and how to get it: never a
skip, locally or in CI, so a green run always includes PostgreSQL and Azure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.services import (
    PG_URL_ENV,
    Azurite,
    LakeLocation,
    PostgresAdmin,
    PostgresServer,
    ServiceError,
)

SINKS = ("duckdb", "postgres")

S = TypeVar("S")


def in_ci() -> bool:
    """True when running under CI (``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _start_or_fail(start: Callable[[], S], what: str) -> S:
    """Return ``start()``; on :class:`ServiceError` fail the test, naming ``what`` is missing and why."""
    try:
        return start()
    except ServiceError as exc:
        reason = f"{what}: {exc}"
    # outside the except block, so the report shows the reason without a chained traceback
    pytest.fail(reason, pytrace=False)


def _start_postgres() -> PostgresAdmin:
    """The server named by ``EVO_FRAMES_TEST_PG_URL`` after checking it answers, else a throwaway one."""
    url = os.environ.get(PG_URL_ENV)
    if url:
        server = PostgresAdmin(url)
        server.check()
        return server
    return PostgresServer.start()


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--sinks``: which targets ``target_url`` tests run against."""
    parser.addoption(
        "--sinks",
        default=",".join(SINKS),
        help="comma-separated sinks for target_url tests: duckdb, postgres (default: %(default)s)",
    )


def selected_sinks(config: pytest.Config) -> list[str]:
    """Parse and check ``--sinks``; PostgreSQL is mandatory under CI."""
    sinks = [s.strip() for s in str(config.getoption("--sinks")).split(",") if s.strip()]
    unknown = sorted(set(sinks) - set(SINKS))
    if unknown or not sinks:
        raise pytest.UsageError(f"--sinks: unknown or empty {unknown or sinks}; choose from {'/'.join(SINKS)}")
    if in_ci() and "postgres" not in sinks:
        raise pytest.UsageError("--sinks must include postgres under CI=true (the production target)")
    return list(dict.fromkeys(sinks))


def pytest_configure(config: pytest.Config) -> None:
    """Register markers and validate ``--sinks`` before collection."""
    config.addinivalue_line("markers", "slow: takes more than about 10 s")
    config.addinivalue_line("markers", "postgres: needs a PostgreSQL server (set automatically)")
    config.addinivalue_line("markers", "azure: needs the Azurite blob emulator (set automatically)")
    selected_sinks(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test that asks for ``target_url`` over the selected sinks."""
    if "target_url" in metafunc.fixturenames:
        metafunc.parametrize(
            "target_url",
            [
                pytest.param(sink, id=sink, marks=[pytest.mark.postgres] if sink == "postgres" else [])
                for sink in selected_sinks(metafunc.config)
            ],
            indirect=True,
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the services their fixtures need, so ``-m "not postgres"`` works."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "pg_server" in names and not item.get_closest_marker("postgres"):
            item.add_marker(pytest.mark.postgres)
        if "azurite" in names:
            item.add_marker(pytest.mark.azure)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresAdmin]:
    """A PostgreSQL server we may create databases on: ``EVO_FRAMES_TEST_PG_URL`` or a throwaway one."""
    server = _start_or_fail(_start_postgres, "no PostgreSQL for tests")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresAdmin) -> Iterator[str]:
    """URL of a fresh empty database, dropped (open sessions and all) after the test."""
    name = f"test_{uuid.uuid4().hex[:8]}"
    url = pg_server.create_database(name)
    try:
        yield url
    finally:
        pg_server.drop_database(name)


@pytest.fixture
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A target URL for the sink this test instance runs against (see ``pytest_generate_tests``)."""
    if request.param == "duckdb":
        # tmp_path is absolute, so this gives the three slashes of duckdb:///abs/path
        return f"duckdb://{tmp_path / 't.duckdb'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A running in-memory Azurite blob service for the whole session."""
    server = _start_or_fail(Azurite.start, "no Azurite for tests")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def az_lake(azurite: Azurite) -> Iterator[LakeLocation]:
    """``(lake_url, storage_options)`` of a fresh empty container; deleted after the test."""
    name = f"lake-{uuid.uuid4().hex[:8]}"
    lake = azurite.create_container(name)
    try:
        yield lake
    finally:
        azurite.delete_container(name)
