"""Session fixtures of the end-to-end tier: one mail stack for every e2e test.

The stack (tests/e2e/stack.py): a throwaway Postfix built from conf/postfix/,
an aiosmtpd sink, a clamd of its own (unix socket, so it can be stopped and
started again at the same address), the session spamd, the test GeoIP file
(8.8.8.8 is US, 133.0.0.1 is JP, 1.1.1.1 is AU) and ``mailadmin serve`` as a
subprocess.  Tests create their own mailboxes (unique addresses), so they
share the stack without seeing each other's mail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailadmin.config import load_all
from tests.e2e.stack import (
    REPO_ROOT,
    Daemon,
    Postfix,
    Sink,
    StoreAccess,
    free_port,
    tail,
    wait_for,
)
from tests.fixtures.scanners import ClamdInstance, SpamdInstance, _stop_group, start_clamd

# A network listed in the test policies' overseas.exempt_networks (an AU range
# of the test GeoIP file, so only the exemption lets it through).
EXEMPT_NETWORK = "1.1.1.0/24"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


class Clamd:
    """A clamd of the e2e tier's own, stoppable: its unix socket path never changes."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.process: subprocess.Popen[bytes] | None = None
        self.instance: ClamdInstance | None = None

    @property
    def socket_path(self) -> str:
        return str(self.base / "clamd.sock")

    def start(self) -> None:
        self.instance, self.process = start_clamd(self.base)
        assert self.instance.unix_address == self.socket_path

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)
            self.process = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)


@dataclass
class Stack:
    base: Path
    postfix: Postfix
    sink: Sink
    daemon: Daemon
    store: StoreAccess
    clamd: Clamd
    spamd: SpamdInstance
    filters_dir: Path

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until nothing is in flight: Postfix has no message in hand and the
        outbox nothing unsent that has not failed yet (checked queue, outbox, queue,
        so a message moving between them is always seen)."""
        def idle() -> bool:
            return (self.postfix.busy() == 0 and self.store.outbox_busy() == 0
                    and self.postfix.busy() == 0)

        wait_for(idle, "the mail stack to settle", timeout, self.diagnostics)

    def diagnostics(self) -> str:
        return (f"--- mailadmin log\n{self.daemon.log()}\n--- Postfix maillog\n"
                f"{tail(self.postfix.maillog, 80)}")

    @property
    def main_port(self) -> int:
        return self.postfix.ports["main"]


@pytest.fixture(scope="session")
def stack(spamd_instance: SpamdInstance, test_mmdb_path: Path) -> Iterator[Stack]:
    # Not under pytest's basetemp: Postfix's unprivileged processes must reach
    # the queue, and that directory is private to root.
    base = Path(tempfile.mkdtemp(prefix="mailadmin-e2e-"))
    base.chmod(0o755)
    started: list[str] = []
    sink = Sink()
    clamd = Clamd(base / "clamd")
    clamd.base.mkdir()
    (base / "run").mkdir(mode=0o755)
    policies = shutil.copytree(REPO_ROOT / "policies", base / "policies")
    filters = shutil.copytree(REPO_ROOT / "filters", base / "filters")
    default_policy = policies / "default.toml"
    default_policy.write_text(default_policy.read_text().replace(
        "exempt_networks = []", f'exempt_networks = ["{EXEMPT_NETWORK}"]'))
    postfix = Postfix(
        base=base / "postfix",
        sink_port=sink.port,
        milter_socket=base / "run" / "milter.sock",
        policy_port=free_port(),
        filter_port=free_port(),
        sasl_port=free_port(),
    )
    database_url = f"sqlite:///{base / 'mailadmin.db'}"
    environ = {
        "MAILADMIN_DATABASE_URL": database_url,
        "MAILADMIN_CLAMD_ADDRESS": clamd.socket_path,
        "MAILADMIN_SPAMD_ADDRESS": spamd_instance.unix_address,
        "MAILADMIN_RELAY_HOST": "127.0.0.1",
        "MAILADMIN_GEOIP_DATABASE_PATH": str(test_mmdb_path),
        "MAILADMIN_MILTER_LISTEN": f"unix:{postfix.milter_socket}",
        "MAILADMIN_MILTER_ENABLED": "true",
        "MAILADMIN_POSTFIX_POLICY_LISTEN": f"inet:127.0.0.1:{postfix.policy_port}",
        "MAILADMIN_POSTFIX_POLICY_ENABLED": "true",
        "MAILADMIN_CONTENT_FILTER_LISTEN": f"inet:127.0.0.1:{postfix.filter_port}",
        "MAILADMIN_CONTENT_FILTER_ENABLED": "true",
        "MAILADMIN_WEB_ENABLED": "false",
        "MAILADMIN_WEB_BASE_URL": "http://127.0.0.1:8080/",
        "MAILADMIN_PATHS_POLICIES_DIR": str(policies),
        "MAILADMIN_PATHS_FILTERS_DIR": str(filters),
        "MAILADMIN_LOGGING_LEVEL": "INFO",
    }
    daemon = Daemon(base, environ)
    try:
        sink.start()
        started.append("sink")
        clamd.start()
        started.append("clamd")
        postfix.start()
        started.append("postfix")
        environ["MAILADMIN_RELAY_PORT"] = str(postfix.ports["relay"])
        config = load_all(REPO_ROOT / "conf" / "mailadmin.toml", {**os.environ, **environ})
        store = StoreAccess(database_url, config.policies.default)
        daemon.start()
        started.append("daemon")
        yield Stack(base, postfix, sink, daemon, store, clamd, spamd_instance, filters)
    finally:
        # Postfix first: it closes its milter and policy connections, so the
        # daemon's SIGTERM finds nothing left to drain.
        if "postfix" in started:
            postfix.stop()
        if "daemon" in started and daemon.process is not None and daemon.process.poll() is None:
            daemon.stop()
        if "clamd" in started:
            clamd.stop()
        if "sink" in started:
            sink.stop()
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
