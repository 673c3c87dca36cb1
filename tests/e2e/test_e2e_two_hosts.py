"""Two MTA hosts on one PostgreSQL store (SPEC §6, §10, §11): two throwaway
Postfix instances, each with its own ``mailadmin serve`` (milter, policy
delegation, content filter, jobs; host A also the admin page), both on one
database of a real PostgreSQL cluster.

- simultaneous messages from one sender reaching both hosts get exactly one
  auto-reply between them;
- outbox items are sent once, whichever host's jobs lease them;
- quarantined mail is released from either host;
- a change saved on host A's page governs the next message on both hosts
  within one second (no cache between the page and the MTA hook).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import html
import http.cookiejar
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailadmin.store import outbox, quarantine
from tests.e2e import mail
from tests.e2e.stack import REPO_ROOT, Delivered, Stack, free_port, send, start_stack, wait_for
from tests.fixtures.databases import PostgresCluster
from tests.fixtures.scanners import SpamdInstance

PASSWORD = "Two-hosts-1"


@pytest.fixture(scope="module")
def hosts(postgres_cluster: PostgresCluster, spamd_instance: SpamdInstance,
          test_mmdb_path: Path) -> Iterator[tuple[Stack, Stack, int]]:
    url = postgres_cluster.create_database(f"two_hosts_{os.getpid()}")
    web_port = free_port()
    bases = [Path(tempfile.mkdtemp(prefix=f"mailadmin-host{n}-")) for n in "ab"]
    started: list[Stack] = []
    try:
        for base, extra in zip(bases, ({"MAILADMIN_WEB_ENABLED": "true",
                                        "MAILADMIN_WEB_LISTEN": f"inet:127.0.0.1:{web_port}",
                                        "MAILADMIN_WEB_BASE_URL": f"http://127.0.0.1:{web_port}/"}, {})):
            base.chmod(0o755)
            started.append(start_stack(base, spamd_instance, test_mmdb_path, database_url=url, **extra))
        yield started[0], started[1], web_port
    finally:
        for stack in started:
            stack.stop()
        for base in bases:
            shutil.rmtree(base, ignore_errors=True)
        postgres_cluster.drop_database(url.rsplit("/", 1)[1])


def sinks_to(a: Stack, b: Stack, rcpt: str) -> list[Delivered]:
    """What reached ``rcpt`` through either host."""
    return a.sink.to(rcpt) + b.sink.to(rcpt)


def test_simultaneous_messages_on_both_hosts_get_one_auto_reply(hosts: tuple[Stack, Stack, int]) -> None:
    a, b, _ = hosts
    rcpt = a.store.mailbox("away", auto_reply={"enabled": True, "subject": "不在のお知らせ", "body": "休暇中です。"})
    person = mail.sender("both")
    ports = [a.main_port, b.main_port] * 10
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(ports)) as pool:
        results = list(pool.map(lambda p: send(p[1], person, [rcpt], mail.clean(rcpt, person, f"n{p[0]}")),
                                enumerate(ports)))
    assert all(r.accepted for r in results), [r for r in results if not r.accepted]
    wait_for(lambda: len(sinks_to(a, b, rcpt)) == len(ports), "every message in the mailbox")
    wait_for(lambda: len(sinks_to(a, b, person)) >= 1, "the auto-reply")
    a.settle()
    b.settle()
    replies = sinks_to(a, b, person)
    assert len(replies) == 1, [r.subject for r in replies]
    assert len(a.store.outbox_to(person, "auto_reply")) == 1


def test_outbox_items_are_sent_once_whichever_host_leases_them(hosts: tuple[Stack, Stack, int]) -> None:
    a, b, _ = hosts
    now = dt.datetime.now(dt.timezone.utc)
    rcpts = [mail.outside("lease") for _ in range(40)]
    with a.store.sessions.begin() as session:
        for n, rcpt in enumerate(rcpts):
            body = (f"From: postmaster@example.jp\r\nTo: {rcpt}\r\nSubject: lease {n}\r\n"
                    f"Message-ID: <lease-{n}-{os.getpid()}@example.jp>\r\n\r\nhello\r\n").encode()
            outbox.enqueue(session, purpose="notice", mail_from="", rcpt_tos=[rcpt], message=body, now=now)
    wait_for(lambda: all(sinks_to(a, b, r) for r in rcpts), "every outbox item delivered", 60)
    a.settle()
    b.settle()
    counts = {r: len(sinks_to(a, b, r)) for r in rcpts}
    assert set(counts.values()) == {1}, counts
    by_host = (sum(1 for r in rcpts if a.sink.to(r)), sum(1 for r in rcpts if b.sink.to(r)))
    assert sum(by_host) == len(rcpts)


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailadmin", "--config", str(REPO_ROOT / "conf" / "mailadmin.toml"),
                           *args], env={**os.environ, **stack.daemon.environ}, capture_output=True, text=True,
                          timeout=60)


def test_quarantined_mail_is_released_from_either_host(hosts: tuple[Stack, Stack, int]) -> None:
    a, b, _ = hosts
    rcpt = a.store.mailbox("careful", reject_sender=["spam.example"])
    for stack, subject in ((a, "held at a"), (b, "held at b")):
        result = send(stack.main_port, "x@spam.example", [rcpt], mail.clean(rcpt, "x@spam.example", subject))
        assert result.accepted
    wait_for(lambda: len(a.store.quarantine(rcpt)) == 2, "both messages quarantined")
    held = {item.subject: item.id for item in a.store.quarantine(rcpt)}
    # Each is released by the other host's CLI configuration.
    for stack, subject in ((b, "held at a"), (a, "held at b")):
        run = cli(stack, "quarantine", "release", str(held[subject]))
        assert run.returncode == 0, run.stderr
    wait_for(lambda: len(sinks_to(a, b, rcpt)) == 2, "both released messages in the mailbox")
    a.settle()
    b.settle()
    assert sorted(d.subject for d in sinks_to(a, b, rcpt)) == ["held at a", "held at b"]
    with a.store.sessions() as session:
        assert quarantine.list_items(session, rcpt) == []


class Browser:
    """Just enough of a browser for the admin page: cookies, CSRF fields, forms."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.page = ""

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as response:
            self.page = response.read().decode()
        return self.page

    def post(self, path: str, fields: dict[str, str]) -> str:
        token = re.search(r'name="csrf" value="([^"]*)"', self.page)
        assert token, self.page[:500]
        data = urllib.parse.urlencode({**fields, "csrf": html.unescape(token.group(1))}).encode()
        with self.opener.open(self.base + path, data=data, timeout=30) as response:
            self.page = response.read().decode()
        return self.page

    def press_confirm(self, path: str) -> str:
        fields = dict(re.findall(r'name="(pending|signature|step)" value="([^"]*)"', self.page))
        return self.post(path + "/done", {k: html.unescape(v) for k, v in fields.items()})


def test_a_change_on_the_page_governs_the_next_message_on_both_hosts(hosts: tuple[Stack, Stack, int]) -> None:
    a, b, web_port = hosts
    rcpt = a.store.mailbox("paged")
    a.store.set_password(rcpt, PASSWORD)
    page = Browser(f"http://127.0.0.1:{web_port}")
    page.get("/login")
    assert rcpt in page.post("/login", {"address": rcpt, "password": PASSWORD})
    page.get("/reject/sender/add")
    page.post("/reject/sender/add/confirm", {"entries": "blocked-now.example"})
    done = page.press_confirm("/reject/sender/add")
    assert "blocked-now.example" in done
    # The very next message on each host, sent as soon as the page answered:
    # both hosts read the rules from the shared store for every message.
    results = [send(stack.main_port, "x@blocked-now.example", [rcpt],
                    mail.clean(rcpt, "x@blocked-now.example", f"right after, via {name}"))
               for stack, name in ((a, "a"), (b, "b"))]
    assert all(r.accepted for r in results)
    wait_for(lambda: len(a.store.quarantine(rcpt)) == 2, "both messages quarantined")
    a.settle()
    b.settle()
    assert sinks_to(a, b, rcpt) == []
