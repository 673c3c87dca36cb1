"""The admin page under 50 concurrent logged-in sessions browsing and saving.
(Issue 9 goal: p95 ≤ 50 ms.)

The server is the real thing: ``mailadmin serve web`` (conf/mailadmin.toml,
logging at its INFO default) on a loopback port, on a real SQLite store
migrated with ``db.upgrade``, with N mailboxes that have a password and 20
From, 20 Subject and 5 allow entries each (one Argon2id hash shared by all).  The clients run in this process
(aiohttp, one cookie jar per session), each as a browser would:

- log in through the real form: GET /login (the form's CSRF token), POST /login;
- then, until the run ends, with a think time between clicks (exponential,
  mean ``--think`` seconds; 0 = as fast as the server answers): a page view
  (the account page, the menus, the lists, forwarding, auto-reply, spam,
  quarantine) or a save through input → 確認 → 完了, adding a From or
  Subject entry or deleting one it added before.

Each request is timed from sending to the last byte of the answer.  Each
session comes from its own address, as the reverse proxy in front of the page
reports it (X-Forwarded-For), like subscribers do.  It reports p50/p95/p99
per request type and overall, requests/s, the server's CPU per request and
the load average.

    .venv/bin/python bench/web_load.py [--sessions 50] [--seconds 60] [--think 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import html as html_lib
import os
import platform
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import aiohttp
from sqlalchemy import select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailadmin.config.model import Policy  # noqa: E402
from mailadmin.store import db, mailboxes, rules  # noqa: E402
from mailadmin.store.models import Mailbox  # noqa: E402
from mailadmin.config.model import LimitsPolicy  # noqa: E402

DOMAIN = "example.jp"
PASSWORD = "Bench-passw0rd"
CSRF_RE = re.compile(r'name="csrf" value="([^"]*)"')
PRESS_RE = re.compile(r'name="(pending|signature|step)" value="([^"]*)"')
VIEWS = ["/", "/reject", "/reject/sender", "/reject/subject", "/reject/header", "/allow",
         "/forwarding", "/auto_reply", "/spam_scan", "/quarantine", "/password"]


def populate(url: str, sessions: int) -> list[str]:
    db.upgrade(url)
    factory = db.make_session_factory(db.make_engine(url))
    policy = Policy()
    addresses = [f"user{i:03d}@{DOMAIN}" for i in range(sessions)]
    with factory.begin() as s:
        mailboxes.add_domain(s, DOMAIN, smtp_server="smtp.example.jp", pop_server="pop.example.jp")
    limits = LimitsPolicy()
    for address in addresses:
        with factory.begin() as s:
            mailboxes.add_mailbox(s, address, policy)
            if address == addresses[0]:
                mailboxes.set_password(s, address, PASSWORD, policy)
            else:
                # One Argon2id hash for all (hashing is what the login measures,
                # not the set-up): the first mailbox's, salt and all.
                s.execute(update(Mailbox).where(Mailbox.address == address).values(
                    password_hash=select(Mailbox.password_hash).where(Mailbox.address == addresses[0])
                    .scalar_subquery(), must_change_password=False))
            rules.add_entries(s, address, "reject_sender", [f"spam{k}.example" for k in range(20)], limits)
            rules.add_entries(s, address, "reject_subject", [f"未承諾広告{k}" for k in range(20)], limits)
            rules.add_entries(s, address, "allow_list", [f"friend{k}@partner.example" for k in range(5)], limits)
    return addresses


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Session:
    def __init__(self, base: str, address: str, number: int, record: dict[str, list[float]]) -> None:
        self.base = base
        self.address = address
        self.ip = f"198.51.100.{number % 250 + 1}"
        self.record = record
        self.html = ""
        self.client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.added: list[tuple[str, str]] = []  # (list path, entry)
        self.counter = 0

    async def request(self, kind: str, method: str, path: str,
                      data: list[tuple[str, str]] | None = None) -> str:
        headers = {"X-Forwarded-For": self.ip, "Accept-Language": "ja"}
        if data is not None:
            data = [*data, ("csrf", self.csrf())]
        started = time.perf_counter()
        async with self.client.request(method, self.base + path, data=data, headers=headers,
                                       allow_redirects=True) as response:
            text = await response.text()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                raise RuntimeError(f"{method} {path}: {response.status} {text[:300]}")
        self.record[kind].append(elapsed)
        self.html = text
        return text

    def csrf(self) -> str:
        match = CSRF_RE.search(self.html)
        if match is None:
            raise RuntimeError("no CSRF field on the page")
        return match.group(1)

    async def login(self) -> None:
        await self.request("login: form", "GET", "/login")
        page = await self.request("login: submit (argon2id)", "POST", "/login",
                                  [("address", self.address), ("password", PASSWORD)])
        assert self.address in page, page[:500]

    async def save(self, rng: random.Random) -> None:
        if self.added and rng.random() < 0.5:
            base, entry = self.added.pop(rng.randrange(len(self.added)))
            await self.request("view", "GET", base)
            await self.request("save: 確認 (delete)", "POST", base + "/delete/confirm", [("entry", entry)])
            await self.press(base + "/delete", "save: 完了 (delete)")
            return
        self.counter += 1
        if rng.random() < 0.5:
            base, entry = "/reject/sender", f"s{self.counter}.{self.address.split('@')[0]}.example"
        else:
            base, entry = "/reject/subject", f"件名{self.counter}-{self.address.split('@')[0]}"
        await self.request("save: input", "GET", base + "/add")
        await self.request("save: 確認 (add)", "POST", base + "/add/confirm", [("entries", entry)])
        await self.press(base + "/add", "save: 完了 (add)")
        self.added.append((base, entry))

    async def press(self, path: str, kind: str) -> None:
        fields = [(k, html_lib.unescape(v)) for k, v in PRESS_RE.findall(self.html)]
        await self.request(kind, "POST", path + "/done", fields)

    async def browse(self, until: float, think: float, save_share: float, rng: random.Random) -> None:
        while time.monotonic() < until:
            if think:
                await asyncio.sleep(rng.expovariate(1 / think))
            if rng.random() < save_share:
                await self.save(rng)
            else:
                await self.request("view", "GET", rng.choice(VIEWS))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def report_row(name: str, values: list[float]) -> str:
    return (f"| {name} | {len(values)} | {statistics.median(values):.1f} | {pct(values, 0.95):.1f} "
            f"| {pct(values, 0.99):.1f} |")


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="mailadmin-bench-web-"))
    url = f"sqlite:///{work}/web.db"
    started = time.perf_counter()
    addresses = populate(url, args.sessions)
    print(f"store: {url}, {len(addresses)} mailboxes (populated in {time.perf_counter() - started:.1f} s)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ,
           "MAILADMIN_DATABASE_URL": url,
           "MAILADMIN_WEB_ENABLED": "true",
           "MAILADMIN_WEB_LISTEN": f"inet:127.0.0.1:{port}",
           "MAILADMIN_WEB_BASE_URL": base + "/",
           "MAILADMIN_METRICS_ENABLED": "false",
           "MAILADMIN_GEOIP_DATABASE_PATH": str(ROOT / "var/geoip/dbip-country.mmdb"),
           "MAILADMIN_QUARANTINE_LINKS_SECRET_FILE": str(work / "quarantine-link.key")}
    log = open(work / "serve.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [str(ROOT / ".venv/bin/mailadmin"), "--config", str(ROOT / "conf/mailadmin.toml"), "serve", "web"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"mailadmin serve web exited: {(work / 'serve.log').read_text()}") from None
                await asyncio.sleep(0.1)
        record: dict[str, list[float]] = defaultdict(list)
        sessions = [Session(base, a, n, record) for n, a in enumerate(addresses)]
        print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cpu, "
              f"Python {platform.python_version()}; load average before: "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        login_started = time.perf_counter()
        await asyncio.gather(*(s.login() for s in sessions))
        print(f"{len(sessions)} sessions logged in at once in {time.perf_counter() - login_started:.1f} s")
        logins = {k: record.pop(k) for k in list(record)}

        spy = None
        if args.py_spy:
            # Sampling profile of the server for the whole run (pip install py-spy).
            fmt = {".json": "speedscope", ".txt": "raw"}.get(Path(args.py_spy).suffix, "flamegraph")
            exe = Path(sys.executable).parent / "py-spy"
            spy = subprocess.Popen([str(exe) if exe.exists() else "py-spy", "record", "--threads",
                                    *args.py_spy_args.split(),
                                    "-f", fmt, "-o", args.py_spy,
                                    "-d", str(int(args.seconds)), "-p", str(server.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu_before = cpu_seconds(server.pid)
        run_started = time.monotonic()
        until = run_started + args.seconds
        await asyncio.gather(*(s.browse(until, args.think, args.save_share, random.Random(n))
                               for n, s in enumerate(sessions)))
        wall = time.monotonic() - run_started
        cpu = cpu_seconds(server.pid) - cpu_before
        load = os.getloadavg()
        for s in sessions:
            await s.client.close()
        if spy is not None:
            spy.wait(60)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        log.close()

    everything = [v for values in record.values() for v in values]
    print()
    print(f"{args.sessions} sessions, {args.seconds:.0f} s, think time mean {args.think} s, "
          f"saves {args.save_share:.0%} of clicks")
    print()
    print("| request | n | p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name in sorted(record):
        print(report_row(name, record[name]))
    print(report_row("**all (logged in)**", everything))
    for name, values in logins.items():
        print(report_row(name, values))
    print()
    print(f"{len(everything) / wall:.0f} requests/s; server CPU {cpu / len(everything) * 1000:.2f} ms per request "
          f"({cpu / wall:.0%} of one core); load average after: {' '.join(f'{x:.2f}' for x in load)}")
    worst = pct(everything, 0.95)
    print(f"p95 of every logged-in request: {worst:.1f} ms (goal ≤ 50 ms: {'met' if worst <= 50 else 'NOT met'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--think", type=float, default=1.0, help="mean think time between clicks, s (0: none)")
    ap.add_argument("--py-spy", metavar="FILE", help="record a py-spy profile of the server (.svg, .json or collapsed stacks .txt)")
    ap.add_argument("--py-spy-args", default="", help='more py-spy options, e.g. "--gil" (CPU only)')
    ap.add_argument("--save-share", type=float, default=0.3, help="share of clicks that save (3 requests each)")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
