"""The quarantine notice's one-click release through the real Postfix (SPEC §8):
a message is quarantined by the milter, ``mailadmin serve --once`` sends the
notice through the relay to the sink, its release link is opened on the admin
page (a confirm page; the POST releases) and the released message reaches the
sink; the same link then refuses."""

from __future__ import annotations

import html as html_lib
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from mailadmin.config import load_all
from mailadmin.webapp.app import make_app
from tests.e2e import mail
from tests.e2e.stack import REPO_ROOT, Stack, send

CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def serve_once(stack: Stack) -> None:
    """Every job once, as cron would run it: the notice, then the outbox."""
    run = subprocess.run(
        [sys.executable, "-m", "mailadmin", "--config", str(REPO_ROOT / "conf" / "mailadmin.toml"),
         "serve", "--once"],
        env={**os.environ, **stack.daemon.environ}, capture_output=True, text=True, timeout=120,
        cwd=stack.base,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def config_base_url(stack: Stack) -> str:
    return load_all(REPO_ROOT / "conf" / "mailadmin.toml", {**os.environ, **stack.daemon.environ}).conf.web.base_url


@pytest.fixture
async def client(mailstack: Stack) -> AsyncIterator[TestClient[Any, Any]]:
    config = load_all(REPO_ROOT / "conf" / "mailadmin.toml", {**os.environ, **mailstack.daemon.environ})
    app = make_app(lambda: config, mailstack.store.sessions)
    test_client: TestClient[Any, Any] = TestClient(TestServer(app))
    await test_client.start_server()
    try:
        yield test_client
    finally:
        await test_client.close()


async def test_release_link_from_the_notice_delivers_the_message(mailstack: Stack,
                                                                 client: TestClient[Any, Any]) -> None:
    frm = mail.sender("offers")
    rcpt = mailstack.store.mailbox("qlink", reject_sender=["sender.example"], quarantine_notice=True)
    result = send(mailstack.main_port, frm, [rcpt], mail.clean(rcpt, frm, subject="Quarterly offer"))
    assert result.accepted, f"{result}\n{mailstack.diagnostics()}"
    mailstack.settle()
    [item] = mailstack.store.quarantine(rcpt)
    assert mailstack.sink.to(rcpt) == []

    serve_once(mailstack)
    [notice] = mailstack.sink.wait_to(rcpt, details=mailstack.diagnostics)
    assert notice.mail_from == "" and "隔離" in notice.subject
    body = notice.message.get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    assert "Quarterly offer" in text
    base = re.escape(config_base_url(mailstack))
    links = re.findall(base + r"(q/(?:release|delete)/\d+/\d+/[0-9a-f]{64})", text)
    release = next((link for link in links if link.startswith(f"q/release/{item.id}/")), None)
    assert release is not None, text
    assert any(link.startswith(f"q/delete/{item.id}/") for link in links)

    # Opening it (as a link scanner would) changes nothing.
    response = await client.get("/" + release)
    page = await response.text()
    assert response.status == 200 and "Quarterly offer" in html_lib.unescape(page)
    assert [i.id for i in mailstack.store.quarantine(rcpt)] == [item.id]

    match = CSRF.search(page)
    assert match
    response = await client.post("/" + release, data={"csrf": match.group(1)})
    assert response.status == 200 and "受信箱へ戻す完了" in await response.text()
    assert mailstack.store.quarantine(rcpt) == []

    serve_once(mailstack)  # the outbox, through the relay
    delivered = mailstack.sink.wait_to(rcpt, count=2, details=mailstack.diagnostics)
    released = [d for d in delivered if d.subject == "Quarterly offer"]
    assert len(released) == 1 and released[0].mail_from == frm

    response = await client.post("/" + release, data={"csrf": match.group(1)})
    assert response.status == 410
