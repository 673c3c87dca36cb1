"""Soak: steady load on the real stack for a long time (issue 10; SPEC §10).

    .venv/bin/python bench/soak.py [--seconds 600] [--measure-seconds 30] [--clients 8] [--report PATH]

Starts the e2e stack of tests/e2e/stack.py (a throwaway Postfix, a sink,
real clamd and spamd, ``mailadmin serve`` with every role), measures the
maximum rate the milter path sustains with ``--clients`` concurrent SMTP
clients for ``--measure-seconds`` (the same mix of messages as the fault
tier: reject list, forward, auto-reply, spam tag and quarantine, virus,
three disagreeing recipients), then sends at half that rate for
``--seconds`` (default 10 minutes).  Reported, also as JSON in ``--report``
(default test-artifacts/soak.json): the rates, the RSS and open file
descriptors of every mailadmin process at the start and the end of the
steady load, every WARNING and ERROR line the daemon logged, and the
accounting of every message sent during the steady load (sent = delivered
+ quarantined + dropped_infected, lost, duplicates).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.stack import Stack, send, start_stack  # noqa: E402
from tests.faults.conftest import Spamd  # noqa: E402
from tests.faults.load import account, drain, make_mailboxes, plan_one, run_jobs_once  # noqa: E402
from tests.fixtures.geo import build_test_mmdb  # noqa: E402


def processes(stack: Stack) -> dict[int, dict[str, int]]:
    """RSS (KiB) and open fds of the daemon and every process under it."""
    assert stack.daemon.process is not None
    root = stack.daemon.process.pid
    pids = [root]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == root:
                pids.append(int(entry))
    out = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            out[pid] = {"rss_kib": rss, "open_fds": len(os.listdir(f"/proc/{pid}/fd"))}
        except (OSError, StopIteration):
            continue
    return out


def blast(stack: Stack, seconds: float, clients: int, prefix: str, rate: float | None = None) -> tuple[int, list]:
    """Send the fault tier's mix for ``seconds``: as fast as ``clients`` allow, or at ``rate`` msg/s."""
    boxes = make_mailboxes(stack, prefix)
    port = stack.postfix.ports["main"]
    lock = threading.Lock()
    sent: list = []
    index = [0]
    started = time.monotonic()
    deadline = started + seconds
    refused = [0]

    def worker() -> None:
        while True:
            with lock:
                n = index[0]
                index[0] += 1
            if rate is not None:
                due = started + n / rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing the steady load
            if time.monotonic() >= deadline:
                return
            meta, rcpts, data = plan_one(boxes, prefix, n)
            result = send(port, meta.sender, rcpts, data)
            with lock:
                if result.accepted:
                    sent.append(meta)
                else:
                    refused[0] += 1

    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(worker)
    return refused[0], [sent, boxes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--measure-seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--report", type=Path, default=REPO / "test-artifacts" / "soak.json")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mailadmin-soak-"))
    base.chmod(0o755)
    (base / "spamd").mkdir(mode=0o755)
    spamd = Spamd(base / "spamd")
    report: dict[str, object] = {"seconds": args.seconds, "clients": args.clients}
    try:
        instance = spamd.start()
        mmdb = build_test_mmdb(base / "test-country.mmdb")
        stack = start_stack(base / "stack", instance, mmdb)
        try:
            t0 = time.monotonic()
            refused, (sent, _boxes) = blast(stack, args.measure_seconds, args.clients, "max")
            drain(stack)
            maximum = len(sent) / (time.monotonic() - t0)
            report["maximum_msgs_per_second"] = round(maximum, 2)
            report["maximum_refused"] = refused
            rate = maximum / 2
            report["steady_msgs_per_second"] = round(rate, 2)
            print(f"maximum {maximum:.1f} msg/s (drained); steady load at {rate:.1f} msg/s for {args.seconds:.0f} s",
                  flush=True)
            log_start = sum(1 for _ in open(stack.daemon.log_path, "rb"))
            report["processes_start"] = processes(stack)
            refused, (sent, boxes) = blast(stack, args.seconds, args.clients, "soak", rate)
            report["processes_end_of_load"] = processes(stack)
            drain(stack)
            run_jobs_once(stack)  # the quarantine notices due, as cron would
            drain(stack)
            report["processes_end"] = processes(stack)
            report["steady_sent"] = len(sent)
            report["steady_refused"] = refused
            acc = account(stack, "milter", "soak", sent, boxes)
            report["accounting"] = asdict(acc)
            lines = open(stack.daemon.log_path, "rb").read().decode(errors="replace").splitlines()
            report["warnings_and_errors"] = [line for line in lines[log_start:]
                                             if " WARNING " in line or " ERROR " in line]
            report["daemon_runs"] = stack.daemon.runs
        finally:
            stack.stop()
    finally:
        spamd.stop()
        shutil.rmtree(base, ignore_errors=True)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "accounting"}, indent=2, default=str))
    print(acc.line())
    return 0 if not acc.problems else 1


if __name__ == "__main__":
    sys.exit(main())
