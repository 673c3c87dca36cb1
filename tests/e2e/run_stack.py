"""Run the e2e mail stack by hand, for experiments: ``python -m tests.e2e.run_stack DIR``.

Starts what the e2e tier uses (tests/e2e/stack.py) under DIR, which must not
exist yet: spamd, clamd, a throwaway Postfix built from conf/postfix/, the
sink and ``mailadmin serve``; prints the ports and the environment the CLI
needs to reach the same store; stops everything on SIGTERM or Ctrl-C.
scripts/e2e-stack.sh wraps it.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from tests.e2e.stack import start_stack
from tests.fixtures.geo import build_test_mmdb
from tests.fixtures.scanners import _stop_group, start_spamd


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.e2e.run_stack DIR", file=sys.stderr)
        return 2
    base = Path(argv[0]).resolve()
    base.mkdir(parents=True)
    base.chmod(0o755)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    (base / "spamd").mkdir()
    spamd, spamd_process = start_spamd(base / "spamd")
    try:
        stack = start_stack(base / "stack", spamd, build_test_mmdb(base / "test-country.mmdb"))
    except BaseException:
        _stop_group(spamd_process)
        raise
    try:
        for name, port in sorted(stack.postfix.ports.items()):
            print(f"postfix {name:<10} 127.0.0.1:{port}")
        print(f"sink              127.0.0.1:{stack.sink.port}")
        print(f"maillog           {stack.postfix.maillog}")
        print(f"mailadmin log     {stack.daemon.log_path}")
        print("environment for the mailadmin CLI:")
        for key, value in sorted(stack.daemon.environ.items()):
            print(f"  export {key}='{value}'")
        print("ready", flush=True)
        stop.wait()
    finally:
        stack.stop()
        _stop_group(spamd_process)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
