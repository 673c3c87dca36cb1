"""The contract page in real headless Chromium, in Japanese and in English: an
admin creates a second mailbox of its contract (the temporary password read
off the done page), changes that mailbox's settings by acting on it, and the
new mailbox's first login sets its own password.  Screenshots of each step go
to test-artifacts/screenshots/contract-<lang>-*.png."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from mailadmin import paths
from mailadmin.config.model import Policy
from mailadmin.store import mailboxes, rules
from mailadmin.webapp.i18n import Translator, load_catalogs

from .conftest import WebServer, open_page, screenshot

CATALOGS = load_catalogs(paths.shipped("web") / "locale")
ADMINS = {"ja": "kanri@example.jp", "en": "admin.en@example.jp"}
NEW_LOCAL = {"ja": "yamada.h", "en": "smith_j"}
ADMIN_PASSWORD = "Kanri-pass-1"


@pytest.fixture(params=["ja", "en"])
def admin(request: pytest.FixtureRequest, browser: Browser,
          web_server: WebServer) -> Iterator[tuple[Page, Translator, str]]:
    lang: str = request.param
    address = ADMINS[lang]
    with web_server.factory.begin() as session:
        mailboxes.add_mailbox(session, address, Policy())
        mailboxes.set_password(session, address, ADMIN_PASSWORD, Policy())
    context, page = open_page(browser, lang)
    try:
        yield page, Translator(lang, CATALOGS), address
    finally:
        context.close()


def heading(page: Page) -> str:
    return page.locator("h1").inner_text().strip()


def login(page: Page, t: Translator, base: str, address: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label(t("login.address")).fill(address)
    page.get_by_label(t("login.password"), exact=True).fill(password)
    page.get_by_role("button", name=t("button.login"), exact=True).click()


def test_an_admin_creates_a_mailbox_that_logs_in(admin: tuple[Page, Translator, str],
                                                 web_server: WebServer) -> None:
    page, t, address = admin
    lang = t.lang
    base = web_server.base_url

    def shot(name: str) -> None:
        screenshot(page, f"contract-{lang}-{name}")

    login(page, t, base, address, ADMIN_PASSWORD)
    assert heading(page) == t("account.title")
    page.get_by_role("link", name=t("contract.title"), exact=True).click()
    assert heading(page) == t("contract.title")
    assert t("contract.count", count=1, limit=5) in page.content()
    shot("1-list")

    page.get_by_role("link", name=t("contract.add_title"), exact=True).click()
    page.get_by_label(t("contract.address")).fill("Bad..Name")
    page.get_by_role("button", name=t("button.next"), exact=True).click()
    errors = page.locator("#errors").inner_text()
    assert t("problem.local_part_chars") in errors and t("problem.local_part_symbol_repeat") in errors
    shot("2-add-errors")
    page.get_by_label(t("contract.address")).fill(NEW_LOCAL[lang])
    page.get_by_label(t("contract.role_user"), exact=True).check()
    shot("3-add-input")
    page.get_by_role("button", name=t("button.next"), exact=True).click()
    new_address = f"{NEW_LOCAL[lang]}@example.jp"
    assert new_address in page.content() and t("contract.temporary_password") not in page.content()
    shot("4-add-confirm")
    page.get_by_role("button", name=t("button.register"), exact=True).click()
    assert t("title.done", name=t("contract.add_title")) == heading(page)
    dd = page.locator("dl.summary dd").nth(2).inner_text().strip()
    temporary = dd
    assert 6 <= len(temporary) <= 32
    shot("5-add-done")
    with web_server.session() as s:
        created = mailboxes.get_mailbox(s, new_address)
        assert (created.role, created.must_change_password) == ("user", True)
        assert created.contract == mailboxes.get_mailbox(s, address).contract

    # Act on the new mailbox: its account page, the admin named in the header.
    page.goto(f"{base}/contract")
    assert t("contract.count", count=2, limit=5) in page.content()
    row = page.locator("tr", has_text=new_address)
    row.get_by_role("button", name=t("contract.act"), exact=True).click()
    assert heading(page) == t("account.title")
    assert page.locator("header .acting").inner_text().strip().endswith(new_address)
    assert address in page.locator("header .who").inner_text()
    shot("6-acting")
    page.get_by_role("link", name=t("reject.title"), exact=True).first.click()
    page.goto(f"{base}/reject/sender/add")
    page.locator("textarea").fill("spam.example")
    page.get_by_role("button", name=t("button.next"), exact=True).click()
    page.get_by_role("button", name=t("button.register"), exact=True).click()
    with web_server.session() as s:
        assert rules.load_rules(s, new_address).reject_sender == ("spam.example",)  # type: ignore[union-attr]
        assert rules.load_rules(s, address).reject_sender == ()  # type: ignore[union-attr]
    page.get_by_role("button", name=t("site.act_end"), exact=True).click()
    assert heading(page) == t("contract.title")
    page.get_by_role("button", name=t("button.logout"), exact=True).click()

    # The new mailbox's first login: the password change before anything else.
    login(page, t, base, new_address, temporary)
    assert heading(page) == t("password.title")
    shot("7-first-login")
    page.get_by_label(t("password.current"), exact=True).fill(temporary)
    page.get_by_label(t("password.new"), exact=True).fill("Own-pass-42")
    page.get_by_label(t("password.again"), exact=True).fill("Own-pass-42")
    page.get_by_role("button", name=re.compile(t("button.change"))).first.click()
    page.goto(f"{base}/")
    assert heading(page) == t("account.title")
    assert t("contract.role_user") in page.content()
    assert t("contract.title") not in page.locator("main").inner_text()  # a user has no contract page
    shot("8-new-mailbox-account")
    with web_server.session() as s:
        assert not mailboxes.get_mailbox(s, new_address).must_change_password
