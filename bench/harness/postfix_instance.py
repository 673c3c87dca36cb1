"""A throwaway Postfix instance on loopback (``postfix -c DIR``, never the system one).

The one builder of the benchmark harness (bench.py) and of the end-to-end tier
(tests/e2e/stack.py): its directories, writing main.cf and master.cf, start,
stop, reload and flush, its queue and its log.  What the instance is for, its
main.cf and its smtpd listeners, stays with each user: the benchmark's figures
stay comparable because its main.cf does not change with the tests'.

Standard library only: bench.py runs under the system python3, outside the
project's virtualenv.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

HOST = "127.0.0.1"

# Every instance's daemons besides its smtpd listeners (master.cf, no chroot).
SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
# Messages Postfix is still working on (deferred and held ones excluded).
BUSY_QUEUES = ("maildrop", "incoming", "active")
POLL_SECONDS = 0.05


class PostfixError(RuntimeError):
    """A postfix(1) command failed, or the instance did not come up."""


def port_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


class PostfixInstance:
    """One instance under ``base``: etc/ (main.cf, master.cf), the queue, data/, maillog.

    ``base`` must be reachable by Postfix's unprivileged processes (mode 0755
    all the way up), so not under a private temporary directory.
    """

    def __init__(self, base: Path | str, queue_name: str = "queue") -> None:
        self.base = Path(base)
        self.etc = self.base / "etc"
        self.queue = self.base / queue_name
        self.data = self.base / "data"
        self.maillog = self.base / "maillog"
        self.running = False

    def create(self) -> None:
        """The directories and an empty maillog; data/ belongs to the postfix user."""
        for path in (self.etc, self.queue, self.data):
            path.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o755)
        entry = pwd.getpwnam("postfix")
        os.chown(self.data, entry.pw_uid, entry.pw_gid)
        self.maillog.touch()

    def write_config(self, main_cf: str | None = None, master_cf: str | None = None) -> None:
        if main_cf is not None:
            self.etc.joinpath("main.cf").write_text(main_cf)
        if master_cf is not None:
            self.etc.joinpath("master.cf").write_text(master_cf)

    def postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``postfix -c ETC ARGS``; a failure raises with the maillog's tail (where
        postfix(1) writes its fatal errors)."""
        run = subprocess.run(["postfix", "-c", str(self.etc), *args], capture_output=True, text=True,
                             timeout=60, check=False)
        if check and run.returncode != 0:
            raise PostfixError(f"postfix {' '.join(args)} failed (rc={run.returncode}): {run.stdout}{run.stderr}"
                               f"\nmaillog tail:\n{self.log_tail()}")
        return run

    def start(self, listeners: Mapping[str, int], timeout: float = 30.0) -> int | None:
        """Check the configuration, start, and wait until every listener (name →
        port) accepts connections; returns the master's pid."""
        self.postfix("check")
        self.postfix("start")
        self.running = True
        for name, port in listeners.items():
            deadline = time.monotonic() + timeout
            while not port_open(port):
                if time.monotonic() > deadline:
                    raise PostfixError(f"timed out after {timeout:.0f} s waiting for Postfix {name} smtpd "
                                       f"on port {port}\n{self.log_tail()}")
                time.sleep(POLL_SECONDS)
        return self.master_pid()

    def stop(self, timeout: float = 30.0) -> None:
        """``postfix stop``, then wait until the master has gone."""
        if not self.running:
            return
        pid = self.master_pid()
        self.postfix("stop", check=False)
        deadline = time.monotonic() + timeout
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(POLL_SECONDS)
        self.running = False

    def reload(self) -> None:
        self.postfix("reload")

    def flush(self) -> None:
        """Deliver what is deferred now (``postqueue -f``)."""
        subprocess.run(["postqueue", "-c", str(self.etc), "-f"], capture_output=True, timeout=60, check=True)

    def master_pid(self) -> int | None:
        try:
            pid = int(self.queue.joinpath("pid", "master.pid").read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    # -- the queue

    def count(self, queues: Iterable[str] = QUEUES) -> int:
        """Messages in these queues (every queue by default)."""
        return sum(len(files) for q in queues for _root, _dirs, files in os.walk(self.queue / q))

    def busy(self) -> int:
        return self.count(BUSY_QUEUES)

    def deferred(self) -> int:
        return self.count(("deferred",))

    def wait_empty(self, timeout: float = 60.0) -> bool:
        """Wait until every queue is empty; False if it is not after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() == 0:
                return True
            time.sleep(0.1)
        return False

    # -- the log

    def log_size(self) -> int:
        """An offset for :meth:`log_since`."""
        try:
            return self.maillog.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        with open(self.maillog, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.maillog.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return f"({self.maillog} not written)"
