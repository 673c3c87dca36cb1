"""The 認証コード and change-notice mails (seeds 000, 001) leave through the real
path: the admin page (in this process, on the stack's store) queues them in
the outbox, the running ``mailadmin serve`` sends them to the Postfix relay
listener, and Postfix delivers them to the sink.  Nothing is faked: the code
is read from the mail the sink received, and the notice batch is made due by
moving its first change a batch length back, as the passing minute would."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from mailadmin.config import load_all
from mailadmin.store.models import ChangeEvent
from mailadmin.webapp.app import make_app
from tests.e2e.stack import REPO_ROOT, Delivered, Stack

PASSWORD = "Contact-e2e-1"
CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def code_in(mail: Delivered) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    match = re.search(r"認証コード: (\d{6})", body.get_content())
    assert match, body.get_content()
    return match.group(1)


def notice_text(mail: Delivered) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None and body.get_content_charset() == "utf-8"
    return str(body.get_content())


def make_due(stack: Stack, mailbox: str) -> None:
    """What the batch length passing would do: the mailbox's changes are a minute old."""
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=61)
    with stack.store.sessions.begin() as session:
        session.execute(update(ChangeEvent).where(ChangeEvent.mailbox_address == mailbox,
                                                  ChangeEvent.notified_at.is_(None))
                        .values(changed_at=past))


class Browser:
    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.html = ""

    async def get(self, path: str) -> str:
        response = await self.client.get(path)
        self.html = await response.text()
        return self.html

    async def post(self, path: str, data: dict[str, str]) -> tuple[int, str]:
        match = CSRF.search(self.html)
        assert match, self.html
        response = await self.client.post(path, data={**data, "csrf": match.group(1)})
        self.html = await response.text()
        return response.status, self.html

    def signed(self) -> dict[str, str]:
        return {k: html_lib.unescape(v)
                for k, v in re.findall(r'name="(pending|signature)" value="([^"]*)"', self.html)}


@pytest.fixture
async def page(mailstack: Stack) -> AsyncIterator[Browser]:
    config = load_all(REPO_ROOT / "conf" / "mailadmin.toml", {**os.environ, **mailstack.daemon.environ})
    app = make_app(lambda: config, mailstack.store.sessions)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Browser(client)
    finally:
        await client.close()


async def test_code_and_notice_mails_reach_the_sink_through_postfix(mailstack: Stack, page: Browser) -> None:
    box = mailstack.store.mailbox("contact")
    mailstack.store.set_password(box, PASSWORD)
    contact = f"{box.split('@')[0]}.home@outside.example"
    await page.get("/login")
    status, _ = await page.post("/login", {"address": box, "password": PASSWORD})
    assert status == 200

    # The code to confirm the contact address.
    await page.get("/contact/edit")
    status, _ = await page.post("/contact/edit/confirm",
                                {"address": contact, "address_again": contact, "password": PASSWORD})
    assert status == 200
    status, _ = await page.post("/contact/edit/send", page.signed())
    assert status == 200
    [code_mail] = mailstack.sink.wait_to(contact, details=mailstack.diagnostics)
    assert code_mail.mail_from == "" and "認証コード" in code_mail.subject
    status, html = await page.post("/contact/code", {"code": code_in(code_mail)})
    assert status == 200 and "完了" in html

    # A hijacker's forward, a minute's burst with the contact change: one notice.
    await page.get("/forwarding/add")
    status, _ = await page.post("/forwarding/add/confirm",
                                {"address": "thief@hijack.example", "keep_copy": "no"})
    assert status == 200, page.html
    status, _ = await page.post("/forwarding/add/done", {**page.signed(), "step": "1"})
    assert status == 200
    make_due(mailstack, box)
    notices = mailstack.sink.wait_to(contact, count=2, details=mailstack.diagnostics)
    notice = notices[1]
    assert "設定変更のお知らせ" in notice.subject and notice.rcpt_tos == (contact,)
    text = notice_text(notice)
    assert "thief@hijack.example" in text and contact in text
    assert "[2]" in text and "[3]" not in text  # two changes, one mail
    assert "127.0.0.1" in text and "お心当たりのない" in text and "If you did not make these changes" in text
    assert notice.header("Auto-Submitted") == "auto-generated"
    # Postfix handed it on: its queue ID is in the sink's copy.
    assert "Received:" in notice.data.decode("ascii", "replace")
    assert mailstack.sink.to(box) == []  # the mailbox itself is not told: it has a contact address

    # The reset code goes to the contact address, never to the mailbox.
    response = await page.client.post("/logout", data={"csrf": CSRF.search(page.html).group(1)})  # type: ignore[union-attr]
    assert response.status == 200
    await page.get("/reset")
    status, _ = await page.post("/reset", {"address": box})
    assert status == 200
    reset_mail = mailstack.sink.wait_to(contact, count=3, details=mailstack.diagnostics)[2]
    assert "パスワードの再設定" in reset_mail.subject
    status, html = await page.post("/reset/code", {"address": box, "code": code_in(reset_mail),
                                                   "new_password": "Reset-e2e-2", "new_password_again": "Reset-e2e-2"})
    assert status == 200 and "パスワードの再設定 完了" in html
    make_due(mailstack, box)
    reset_notice = mailstack.sink.wait_to(contact, count=4, details=mailstack.diagnostics)[3]
    assert "認証コードによるパスワードの再設定" in notice_text(reset_notice)
    assert mailstack.sink.to(box) == []
