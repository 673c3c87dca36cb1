"""Session fixtures of the end-to-end tier: one mail stack for every e2e test.

The stack (tests/e2e/stack.py): a throwaway Postfix built from conf/postfix/,
an aiosmtpd sink, a clamd of its own (unix socket, so it can be stopped and
started again at the same address), the session spamd, the test GeoIP file
(8.8.8.8 is US, 133.0.0.1 is JP, 1.1.1.1 is AU) and ``mailadmin serve`` as a
subprocess.  Tests create their own mailboxes (unique addresses), so they
share the stack without seeing each other's mail.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, start_stack
from tests.fixtures.scanners import SpamdInstance


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def stack(spamd_instance: SpamdInstance, test_mmdb_path: Path) -> Iterator[Stack]:
    # Not under pytest's basetemp: Postfix's unprivileged processes must reach
    # the queue, and that directory is private to root.
    base = Path(tempfile.mkdtemp(prefix="mailadmin-e2e-"))
    base.chmod(0o755)
    try:
        running = start_stack(base, spamd_instance, test_mmdb_path)
        try:
            yield running
        finally:
            running.stop()
    finally:
        if os.environ.get("MAILADMIN_TEST_KEEP_E2E") is None:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def mailstack(stack: Stack) -> Iterator[Stack]:
    """The session stack, checked healthy before and restored after a test that
    stopped parts of it (daemon restarted with other settings, clamd, relay)."""
    yield stack
    if stack.clamd.process is None:
        stack.clamd.start()
    if not stack.postfix.relay_enabled:
        stack.postfix.set_relay(True)
    process = stack.daemon.process
    if process is None or process.poll() is not None or stack.daemon.runs_with_overrides:
        stack.daemon.restart()
