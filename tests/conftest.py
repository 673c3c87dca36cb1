"""Fixtures shared by every test tier: real scanners, failure fakes, test GeoIP
data, and the two stores (SQLite and a real PostgreSQL cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.databases import BACKENDS, Backend, PostgresCluster, start_postgres, stop_postgres

pytest_plugins = ["tests.fixtures.scanners", "tests.fixtures.geo", "tests.fixtures.dns_server",
                  "tests.fixtures.relay"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: about SQLite itself (its file, its pragmas); "
                                       "not run on PostgreSQL")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("backend") == "postgresql"
        (dropped if on_postgres and item.get_closest_marker("sqlite_only") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the whole run, started on first use."""
    cluster = start_postgres()
    try:
        yield cluster
    finally:
        stop_postgres(cluster)


@pytest.fixture(scope="session")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """SQLite files only, for a test about one store whatever its kind; the same
    Backend (and templates) as the SQLite side of ``backend``."""
    return Backend("sqlite", tmp_path_factory.mktemp("db-sqlite"))


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """Every test that takes this runs on SQLite and on PostgreSQL."""
    if request.param == "postgresql":
        scratch: Path = tmp_path_factory.mktemp("db-postgresql")
        return Backend("postgresql", scratch, request.getfixturevalue("postgres_cluster"))
    sqlite: Backend = request.getfixturevalue("sqlite_backend")
    return sqlite
