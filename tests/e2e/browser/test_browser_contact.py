"""The contact address and the password reset in real headless Chromium, in
Japanese and in English, on the end-to-end mail stack: the admin page runs on
the stack's store, ``mailadmin serve`` sends what it queues to the Postfix
relay listener, and the 認証コード is read from the mail the sink received.
Screenshots of each step go to test-artifacts/screenshots/contact-<lang>-*.png."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from mailadmin import paths
from mailadmin.config import load_all
from mailadmin.store import contact, mailboxes
from mailadmin.webapp.i18n import Translator, load_catalogs
from mailadmin.wiring import Runtime, Store
from tests.e2e.stack import REPO_ROOT, Delivered, Stack
from tests.e2e.test_e2e_contact_notices import make_due

from .conftest import _ServerThread, open_page, screenshot

CATALOGS = load_catalogs(paths.shipped("web") / "locale")
PASSWORD = "Contact-walk-1"
NEW_PASSWORD = "Reset-walk-22"


@pytest.fixture(scope="module")
def stack_web(stack: Stack) -> Iterator[str]:
    """The admin page on the stack's store (the stack's own daemon runs no web role)."""
    config = load_all(REPO_ROOT / "conf" / "mailadmin.toml", {**os.environ, **stack.daemon.environ})
    runtime = Runtime(config=lambda: config, store=Store(stack.store.url, stack.store.sessions),
                      engine=None)  # type: ignore[arg-type]
    thread = _ServerThread(runtime)
    thread.start()
    assert thread.ready.wait(timeout=30), "the web server did not start"
    if thread.error is not None:
        raise thread.error
    try:
        yield f"http://127.0.0.1:{thread.port}"
    finally:
        thread.stop()


@pytest.fixture(params=["ja", "en"])
def walker(request: pytest.FixtureRequest, browser: Browser) -> Iterator[tuple[Page, Translator]]:
    lang: str = request.param
    context, page = open_page(browser, lang)
    try:
        yield page, Translator(lang, CATALOGS)
    finally:
        context.close()


def heading(page: Page) -> str:
    return page.locator("h1").inner_text().strip()


def code_in(mail: Delivered) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    match = re.search(r"認証コード: (\d{6})", body.get_content())
    assert match
    return match.group(1)


def test_contact_address_by_code_then_reset_by_code(walker: tuple[Page, Translator], stack_web: str,
                                                    mailstack: Stack) -> None:
    page, t = walker
    lang = t.lang
    base = stack_web
    box = mailstack.store.mailbox(f"walk{lang}")
    mailstack.store.set_password(box, PASSWORD)
    outside = f"{box.split('@')[0]}.phone@outside.example"

    def shot(name: str) -> None:
        screenshot(page, f"contact-{lang}-{name}")

    page.goto(f"{base}/login")
    page.get_by_label(t("login.address")).fill(box)
    page.get_by_label(t("login.password"), exact=True).fill(PASSWORD)
    page.get_by_role("button", name=t("button.login"), exact=True).click()
    assert heading(page) == t("account.title")
    assert t("contact.not_registered") in page.locator("table.info").inner_text()
    page.get_by_role("link", name=t("contact.title"), exact=True).click()
    assert heading(page) == t("contact.title")
    shot("1-state")

    page.get_by_role("link", name=t("contact.register_button"), exact=True).click()
    page.get_by_label(t("contact.new_label"), exact=True).fill(box)
    page.get_by_label(t("contact.again_label"), exact=True).fill(box)
    page.get_by_label(t("password.current"), exact=True).fill("not-it-1")
    page.get_by_role("button", name=t("contact.confirm_button"), exact=True).click()
    errors = page.locator("#errors").inner_text()
    assert t("problem.contact.self") in errors and t("problem.password_current_wrong") in errors
    shot("2-input-errors")
    page.get_by_label(t("contact.new_label"), exact=True).fill(outside)
    page.get_by_label(t("contact.again_label"), exact=True).fill(outside)
    page.get_by_label(t("password.current"), exact=True).fill(PASSWORD)
    shot("3-input")
    page.get_by_role("button", name=t("contact.confirm_button"), exact=True).click()
    assert heading(page) == t("title.confirm", name=t("contact.edit_title"))
    assert outside in page.locator("dl.summary").inner_text()
    shot("4-confirm")
    page.get_by_role("button", name=t("contact.send_code_button"), exact=True).click()
    assert heading(page) == t("contact.code_title")
    shot("5-code")
    [mail] = mailstack.sink.wait_to(outside, details=mailstack.diagnostics)
    page.get_by_label(t("contact.code_label")).fill(code_in(mail))
    page.get_by_role("button", name=t("button.next"), exact=True).click()
    assert heading(page) == t("contact.done_title")
    shot("6-done")
    with mailstack.store.sessions() as s:
        found = contact.get_contact(s, box)
        assert found is not None and found.address == outside
    page.goto(f"{base}/")
    assert outside in page.locator("table.info").inner_text()
    shot("7-account")
    make_due(mailstack, box)
    notice = mailstack.sink.wait_to(outside, count=2, details=mailstack.diagnostics)[1]
    assert "設定変更のお知らせ" in notice.subject

    # Locked out: the reset by a code sent to the contact address.
    page.get_by_role("button", name=t("button.logout"), exact=True).click()
    page.get_by_role("link", name=t("reset.link"), exact=True).click()
    assert heading(page) == t("reset.title")
    page.get_by_label(t("login.address")).fill(box)
    shot("8-reset-request")
    page.get_by_role("button", name=t("button.next"), exact=True).click()
    assert heading(page) == t("reset.code_title")
    reset_mail = mailstack.sink.wait_to(outside, count=3, details=mailstack.diagnostics)[2]
    page.get_by_label(t("contact.code_label")).fill(code_in(reset_mail))
    page.get_by_label(t("password.new"), exact=True).fill(NEW_PASSWORD)
    page.get_by_label(t("password.again"), exact=True).fill("mismatch-22")
    page.get_by_role("button", name=t("button.change"), exact=True).click()
    assert t("problem.password_mismatch") in page.locator("#errors").inner_text()
    shot("9-reset-errors")
    page.get_by_label(t("contact.code_label")).fill(code_in(reset_mail))
    page.get_by_label(t("password.new"), exact=True).fill(NEW_PASSWORD)
    page.get_by_label(t("password.again"), exact=True).fill(NEW_PASSWORD)
    shot("10-reset-code")
    page.get_by_role("button", name=t("button.change"), exact=True).click()
    assert heading(page) == t("reset.done_title")
    shot("11-reset-done")
    page.get_by_role("link", name=t("reset.back_to_login"), exact=True).click()
    page.get_by_label(t("login.address")).fill(box)
    page.get_by_label(t("login.password"), exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name=t("button.login"), exact=True).click()
    assert heading(page) == t("account.title")
    with mailstack.store.sessions() as s:
        assert not mailboxes.get_mailbox(s, box).must_change_password
