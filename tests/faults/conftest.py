"""The fault tier's stack (tests/faults/): the e2e stack of tests/e2e/stack.py
(a throwaway Postfix, the sink, ``mailadmin serve``, its own clamd) with a
spamd of its own too, so both scanners can be stopped and started again at
the same unix socket while mail flows (SPEC §7, §8, §10)."""

from __future__ import annotations

import os
import subprocess
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, StoreAccess, start_stack
from tests.fixtures.databases import PostgresCluster, start_postgres, stop_postgres
from tests.fixtures.scanners import SpamdInstance, _stop_group, start_spamd


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


class Spamd:
    """A real spamd that can be stopped and started again at the same socket path."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.instance: SpamdInstance | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> SpamdInstance:
        for leftover in ("etc", "home"):
            shutil.rmtree(self.base / leftover, ignore_errors=True)
        (self.base / "spamd.sock").unlink(missing_ok=True)
        self.instance, self._process = start_spamd(self.base)
        return self.instance

    def stop(self) -> None:
        if self._process is not None:
            _stop_group(self._process)
            self._process = None
        (self.base / "spamd.sock").unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        return self._process is not None


@pytest.fixture(scope="session")
def fault_stack(test_mmdb_path: Path) -> Iterator[tuple[Stack, Spamd]]:
    base = Path(tempfile.mkdtemp(prefix="mailadmin-faults-"))
    base.chmod(0o755)
    (base / "spamd").mkdir(mode=0o755)
    spamd = Spamd(base / "spamd")
    try:
        instance = spamd.start()
        stack = start_stack(base / "stack", instance, test_mmdb_path)
        try:
            yield stack, spamd
        finally:
            stack.stop()
    finally:
        spamd.stop()
        if os.environ.get("MAILADMIN_TEST_KEEP_E2E") is None:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_fault_stack(fault_stack: tuple[Stack, Spamd]) -> Iterator[tuple[Stack, PostgresCluster]]:
    """The fault stack on a PostgreSQL store of its own: a throwaway cluster
    (its own, so stopping it touches no other test's database), the daemon
    restarted on it and the test's view of the store switched to it; both
    are switched back to the SQLite store afterwards."""
    stack, _spamd = fault_stack
    cluster = start_postgres()
    sqlite_store = stack.store
    sqlite_url = stack.daemon.environ["MAILADMIN_DATABASE_URL"]
    try:
        url = cluster.create_database("faults")
        stack.store = StoreAccess(url, sqlite_store.policy)
        stack.daemon.environ["MAILADMIN_DATABASE_URL"] = url
        stack.daemon.restart()
        yield stack, cluster
    finally:
        stack.daemon.environ["MAILADMIN_DATABASE_URL"] = sqlite_url
        stack.store = sqlite_store
        try:
            stack.daemon.restart()
        finally:
            stop_postgres(cluster)
