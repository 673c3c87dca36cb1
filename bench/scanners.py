"""Both scanners on: mailadmin's throughput against spamd's own limit, and one
spamd call per message however many recipients.  (Issue 9 goal: within 10 %
of spamd driven directly by ``spamc``, in the same run.)

Real daemons, started as the test fixtures start them (tests/fixtures/scanners.py,
COMPONENTS.md): Debian's clamd with a small signature database, Debian's
spamd with its shipped rules, no network tests, no Bayes, ``--max-children=2``
(this machine has 2 cores), both on loopback TCP.

Rounds alternate, so both sides see the same machine:

- **spamc**: each message piped to ``spamc -R`` (REPORT, the request mailadmin
  sends) as its own process, ``--concurrency`` at a time: spamd's own limit;
- **mailadmin**: ``Engine.decide()`` in this process, the engine built as
  every daemon role builds it (``config.load_all`` of conf/mailadmin.toml,
  ``wiring.open_store`` on a real SQLite store, ``wiring.make_engine`` with its
  clamd and spamd clients), ``--concurrency`` decisions in flight at a time,
  each message to one mailbox with virus and spam scanning on.  This is the
  engine and content path every adapter (milter, content filter) calls; the
  adapters' own protocol work is not in it.

Then for 1, 3 and 10 recipients (mailboxes that all scan for spam) it counts
the spamd calls per message twice: ``Decision.scans`` and the ``result:``
lines in spamd's own log.

    .venv/bin/python bench/scanners.py [--messages 200] [--rounds 3] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailadmin import wiring  # noqa: E402
from mailadmin.config import load_all  # noqa: E402
from mailadmin.config.model import Policy  # noqa: E402
from mailadmin.message import Envelope, Message  # noqa: E402
from mailadmin.store import db, mailboxes, rules  # noqa: E402
from tests.fixtures.scanners import _stop_group, make_message, start_clamd, start_spamd  # noqa: E402

DOMAIN = "example.jp"
BODY = ("Hello Taro,\n\nthe minutes of Tuesday's meeting are below; the next one is on Friday at"
        " ten in room 3.\n\n" + "- item: the budget for next quarter, as discussed, stays as it is.\n" * 40
        + "\nRegards,\nAlice\n")


def populate(url: str, count: int) -> list[str]:
    db.upgrade(url)
    factory = db.make_session_factory(db.make_engine(url))
    addresses = [f"user{i:02d}@{DOMAIN}" for i in range(count)]
    with factory.begin() as s:
        mailboxes.add_domain(s, DOMAIN, smtp_server="smtp.example.jp", pop_server="pop.example.jp")
        for address in addresses:
            mailboxes.add_mailbox(s, address, Policy())
            rules.set_virus_scan(s, address, True)
            rules.set_spam_settings(s, address, scan=True, quarantine=False, notice=False)
    return addresses


def messages(n: int, to: str) -> list[bytes]:
    # Each message differs (Message-ID, a number in the subject), as real mail does.
    return [make_message(BODY, subject=f"Meeting minutes {i}", to=to) for i in range(n)]


async def spamc_round(port: int, corpus: list[bytes], concurrency: int) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(raw: bytes) -> None:
        async with gate:
            process = await asyncio.create_subprocess_exec(
                "spamc", "-d", "127.0.0.1", "-p", str(port), "-R", "-x",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            out, err = await process.communicate(raw)
            if process.returncode not in (0, 1) or not out:
                raise RuntimeError(f"spamc: {process.returncode} {err.decode(errors='replace')}")

    started = time.perf_counter()
    await asyncio.gather(*(one(raw) for raw in corpus))
    return len(corpus) / (time.perf_counter() - started)


async def engine_round(engine: Any, corpus: list[bytes], recipients: tuple[str, ...],
                       concurrency: int) -> tuple[float, list[dict[str, int]]]:
    gate = asyncio.Semaphore(concurrency)
    scans: list[dict[str, int]] = []
    envelope = Envelope("alice@example.org", recipients, "192.0.2.10", "mx.example.org", "mx.example.org")

    async def one(raw: bytes) -> None:
        async with gate:
            decision = await engine.decide(envelope, Message(raw))
            for o in decision.outcomes:
                if not o.reason.startswith("no_rule_matched") and "spam" not in o.reason:
                    raise RuntimeError(f"unexpected outcome {o.reason}")
            scans.append(decision.scans)

    started = time.perf_counter()
    await asyncio.gather(*(one(raw) for raw in corpus))
    return len(corpus) / (time.perf_counter() - started), scans


def spamd_results(log_path: Path) -> int:
    try:
        return sum(1 for line in log_path.read_text(errors="replace").splitlines() if "spamd: result:" in line)
    except FileNotFoundError:
        return 0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def run(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="mailadmin-bench-scanners-"))
    base.chmod(0o755)  # spamd's children (debian-spamd) read their config below it
    (base / "clamd").mkdir()
    (base / "spamd").mkdir()
    clamd, clamd_process = start_clamd(base / "clamd")
    spamd, spamd_process = start_spamd(base / "spamd")
    try:
        url = f"sqlite:///{base}/store.db"
        addresses = populate(url, 10)
        environ = {**os.environ, "MAILADMIN_DATABASE_URL": url,
                   "MAILADMIN_CLAMD_ADDRESS": clamd.tcp_address, "MAILADMIN_SPAMD_ADDRESS": spamd.tcp_address,
                   "MAILADMIN_GEOIP_DATABASE_PATH": str(ROOT / "var/geoip/dbip-country.mmdb")}
        config = load_all(ROOT / "conf/mailadmin.toml", environ)
        store = wiring.open_store(config)
        engine = wiring.make_engine(lambda: config, store)
        spamd_port = int(spamd.tcp_address.rsplit(":", 1)[1])
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpu, "
              f"Python {platform.python_version()}; clamd {clamd.tcp_address}, spamd {spamd.tcp_address} "
              f"(max-children 2); load average before: {load()}")
        corpus = messages(args.messages, addresses[0])
        print(f"{args.messages} messages of {statistics.median(len(m) for m in corpus)} bytes, "
              f"concurrency {args.concurrency}, {args.rounds} rounds")
        # Warm both paths (spamd children compile their rules on first use).
        await spamc_round(spamd_port, corpus[:8], args.concurrency)
        await engine_round(engine, corpus[:8], (addresses[0],), args.concurrency)

        spamc_rates: list[float] = []
        engine_rates: list[float] = []
        for n in range(args.rounds):
            spamc_rates.append(await spamc_round(spamd_port, corpus, args.concurrency))
            rate, scans = await engine_round(engine, corpus, (addresses[0],), args.concurrency)
            engine_rates.append(rate)
            assert all(s == {"virus": 1, "spam": 1} for s in scans), scans[:3]
            print(f"round {n + 1}: spamc {spamc_rates[-1]:.1f} msg/s, mailadmin {rate:.1f} msg/s "
                  f"(load {load()})")
        print()
        print("| path | msg/s median (min–max) |")
        print("|---|---|")
        print(f"| spamc → spamd (spamd's own limit) | {statistics.median(spamc_rates):.1f} "
              f"({min(spamc_rates):.1f}–{max(spamc_rates):.1f}) |")
        print(f"| mailadmin decide(), clamd + spamd | {statistics.median(engine_rates):.1f} "
              f"({min(engine_rates):.1f}–{max(engine_rates):.1f}) |")
        ratios = [e / s for e, s in zip(engine_rates, spamc_rates)]
        ratio = statistics.median(engine_rates) / statistics.median(spamc_rates)
        print(f"\nratio mailadmin / spamc: {ratio:.3f} of medians; per round "
              f"{', '.join(f'{r:.3f}' for r in ratios)} (goal ≥ 0.90: {'met' if ratio >= 0.9 else 'NOT met'})")

        print()
        print("| recipients | messages | spamd calls (Decision.scans) | spamd calls (spamd log) | per message |")
        print("|---|---|---|---|---|")
        for count in (1, 3, 10):
            sample = messages(20, ", ".join(addresses[:count]))
            before = spamd_results(spamd.log_path)
            _, scans = await engine_round(engine, sample, tuple(addresses[:count]), args.concurrency)
            await asyncio.sleep(0.5)  # spamd writes its log line after answering
            logged = spamd_results(spamd.log_path) - before
            counted = sum(s["spam"] for s in scans)
            print(f"| {count} | {len(sample)} | {counted} | {logged} | {logged / len(sample):.2f} |")
        print(f"\nload average after: {load()}")
    finally:
        _stop_group(spamd_process)
        _stop_group(clamd_process)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=200, help="messages per round and path")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4, help="messages in flight (spamd has 2 children)")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
