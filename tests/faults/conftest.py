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

from tests.e2e.stack import Stack, start_stack
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
