"""The admin page in real headless Chromium, in Japanese and in English: a
subscriber logs in with the temporary password, must set a new one, then
walks every screen's input → confirm → done; the store is checked after
each change and every screen is saved as a screenshot."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from mailadmin import paths
from mailadmin.store import quarantine, rules
from mailadmin.store.snapshots import MailboxRules
from mailadmin.webapp.i18n import Translator, load_catalogs

from .conftest import WALKERS, WebServer, open_page, screenshot

CATALOGS = load_catalogs(paths.shipped("web") / "locale")
NEW_PASSWORD = "Brand-new-9"


def snapshot(server: WebServer, address: str) -> MailboxRules:
    with server.session() as s:
        found = rules.load_rules(s, address)
    assert found is not None
    return found


@pytest.fixture(params=["ja", "en"])
def walk(request: pytest.FixtureRequest, browser: Browser,
         web_server: WebServer) -> Iterator[tuple[Page, Translator, str, list[str]]]:
    lang: str = request.param
    context, page = open_page(browser, lang)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A form shown again with its errors answers 400: Chromium logs that
        # status, which is intended; anything else (a script error, a
        # Content-Security-Policy violation) is a problem.
        if message.type == "error" and "the server responded with a status of 400" not in message.text:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    try:
        yield page, Translator(lang, CATALOGS), WALKERS[lang], problems
    finally:
        context.close()


def heading(page: Page) -> str:
    return page.locator("h1").inner_text().strip()


def click(page: Page, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).first.click()


def link(page: Page, name: str) -> None:
    page.get_by_role("link", name=name, exact=True).first.click()


def test_walk_every_screen(walk: tuple[Page, Translator, str, list[str]], web_server: WebServer) -> None:
    page, t, address, console = walk
    lang = t.lang
    base = web_server.base_url

    def shot(name: str) -> None:
        screenshot(page, f"{lang}-{name}")

    # ------------------------------------------------ login with the temporary password
    page.goto(base + "/")
    assert heading(page) == t("login.title")
    shot("01-login")
    page.get_by_label(t("login.address"), exact=True).fill(address)
    page.get_by_label(t("login.password"), exact=True).fill(web_server.passwords[address])
    click(page, t("button.login"))

    # ------------------------------------------------ forced password change
    assert heading(page) == t("password.title")
    expect(page.locator(".notice")).to_contain_text(t("password.must_change"))
    page.goto(base + "/forwarding")  # nothing else is reachable yet
    assert heading(page) == t("password.title")
    page.get_by_label(t("password.current"), exact=True).fill(web_server.passwords[address])
    new = page.get_by_label(t("password.new"), exact=True)
    new.fill("short")
    page.get_by_label(t("password.again"), exact=True).fill("short!")
    # The show-password checkbox (external script) reveals what is typed.
    assert new.get_attribute("type") == "password"
    page.get_by_label(t("password.show"), exact=True).check()
    assert new.get_attribute("type") == "text"
    shot("02-password-input")
    click(page, t("button.change"))
    errors = page.locator("#errors li")
    assert errors.count() == 3  # too short, no digit, the two differ
    shot("03-password-errors")
    page.get_by_label(t("password.current"), exact=True).fill(web_server.passwords[address])
    page.get_by_label(t("password.new"), exact=True).fill(NEW_PASSWORD)
    page.get_by_label(t("password.again"), exact=True).fill(NEW_PASSWORD)
    click(page, t("button.change"))
    assert heading(page) == t("title.done", name=t("password.title"))
    shot("04-password-done")

    # ------------------------------------------------ account page
    link(page, t("nav.account"))
    assert heading(page) == t("account.title")
    expect(page.locator("table.info")).to_contain_text("smtp.example.jp")
    expect(page.locator("table.info")).to_contain_text(t("overseas.restricted"))
    shot("05-account")

    # ------------------------------------------------ forwarding: add, delete
    link(page, t("forwarding.title"))
    assert heading(page) == t("forwarding.list_title")
    click_link_button(page, t("button.set"))
    assert heading(page) == t("forwarding.add_title")
    page.get_by_label(t("forwarding.address_label"), exact=True).fill(f"{lang}.backup@example.org")
    page.get_by_label(t("forwarding.no_keep"), exact=True).check()
    shot("06-forwarding-input")
    click(page, t("button.next"))
    assert heading(page) == t("title.confirm", name=t("forwarding.add_title"))
    shot("07-forwarding-confirm")
    assert snapshot(web_server, address).forwarding == ()
    click(page, t("button.register"))
    assert heading(page) == t("title.done", name=t("forwarding.add_title"))
    shot("08-forwarding-done")
    forwards = snapshot(web_server, address).forwarding
    assert [(f.address, f.keep_copy) for f in forwards] == [(f"{lang}.backup@example.org", False)]
    click_link_button(page, t("button.back"))
    shot("09-forwarding-list")
    page.get_by_role("button", name=f"{t('button.delete')} {lang}.backup@example.org").click()
    assert heading(page) == t("title.confirm", name=t("forwarding.delete_title"))
    click(page, t("button.ok"))
    assert heading(page) == t("title.done", name=t("forwarding.delete_title"))
    assert snapshot(web_server, address).forwarding == ()

    # ------------------------------------------------ reject by From: errors, add, delete, delete all
    page.goto(base + "/reject")
    assert heading(page) == t("reject.menu_title")
    shot("10-reject-menu")
    link(page, t("reject_sender.title"))
    assert heading(page) == t("reject_sender.list_title")
    click_link_button(page, t("button.set"))
    entries = page.get_by_label(t("reject_sender.entry_label"), exact=True)
    entries.fill("spam.example\nfoo\n*.bad.example\nspam.example")
    click(page, t("button.next"))
    assert page.locator("#errors li").count() == 3
    shot("11-reject-sender-errors")
    assert snapshot(web_server, address).reject_sender == ()
    page.get_by_label(t("reject_sender.entry_label"), exact=True).fill("spam.example\n@bad.example\nboss@corp.example")
    click(page, t("button.next"))
    assert heading(page) == t("title.confirm", name=t("reject_sender.add_title"))
    shot("12-reject-sender-confirm")
    click(page, t("button.register"))
    assert heading(page) == t("title.done", name=t("reject_sender.add_title"))
    assert snapshot(web_server, address).reject_sender == ("spam.example", "@bad.example", "boss@corp.example")
    click_link_button(page, t("button.back"))
    page.get_by_label("@bad.example", exact=True).check()
    shot("13-reject-sender-list")
    click(page, t("button.delete"))
    assert heading(page) == t("title.confirm", name=t("reject_sender.delete_title"))
    click(page, t("button.ok"))
    assert snapshot(web_server, address).reject_sender == ("spam.example", "boss@corp.example")
    click_link_button(page, t("button.back"))
    click(page, t("button.delete_all"))
    assert heading(page) == t("title.confirm", name=t("reject_sender.delete_all_title"))
    click(page, t("button.ok"))
    assert heading(page) == t("title.final_confirm", name=t("reject_sender.delete_all_title"))
    shot("14-reject-sender-delete-all-final")
    click(page, t("button.ok"))
    assert heading(page) == t("title.done", name=t("reject_sender.delete_all_title"))
    assert snapshot(web_server, address).reject_sender == ()

    # ------------------------------------------------ reject by Subject
    page.goto(base + "/reject/subject/add")
    page.get_by_label(t("reject_subject.entry_label"), exact=True).fill("未承諾広告\nｾｰﾙ")
    click(page, t("button.next"))
    assert page.locator("#errors li").count() == 1
    page.get_by_label(t("reject_subject.entry_label"), exact=True).fill("未承諾広告\nセール")
    click(page, t("button.next"))
    click(page, t("button.register"))
    assert heading(page) == t("title.done", name=t("reject_subject.add_title"))
    assert snapshot(web_server, address).reject_subject == ("未承諾広告", "セール")
    click_link_button(page, t("button.back"))
    shot("15-reject-subject-list")

    # ------------------------------------------------ header conditions
    page.goto(base + "/reject/header")
    assert heading(page) == t("header_conditions.list_title")
    click_link_button(page, t("button.set"))
    page.get_by_label(t("header_conditions.from_missing"), exact=True).check()
    page.get_by_label(t("header_conditions.subject_missing"), exact=True).check()
    shot("16-header-input")
    click(page, t("button.next"))
    assert heading(page) == t("title.confirm", name=t("header_conditions.title"))
    click(page, t("button.register"))
    assert snapshot(web_server, address).header_conditions == frozenset({"from_missing", "subject_missing"})

    # ------------------------------------------------ allow list
    page.goto(base + "/allow")
    assert heading(page) == t("allow_list.list_title")
    click_link_button(page, t("button.set"))
    page.get_by_label(t("allow_list.entry_label"), exact=True).fill("friend@example.org")
    click(page, t("button.next"))
    click(page, t("button.register"))
    assert heading(page) == t("title.done", name=t("allow_list.add_title"))
    assert snapshot(web_server, address).allow_list == ("friend@example.org",)

    # ------------------------------------------------ auto-reply
    page.goto(base + "/auto_reply")
    assert heading(page) == t("auto_reply.list_title")
    click_link_button(page, t("button.set"))
    page.locator("#enabled-on").check()
    page.locator("#subject").fill("不在のお知らせ / Out of office")
    page.locator("#body").fill("12月1日まで不在です。\nBack on 1 December.")
    page.locator("#pattern_0").fill("boss@corp.example")
    page.locator("#subject_0").fill("出張中")
    page.locator("#body_0").fill("至急の件は携帯へ")
    shot("17-auto-reply-input")
    click(page, t("button.next"))
    assert heading(page) == t("title.confirm", name=t("auto_reply.title"))
    shot("18-auto-reply-confirm")
    click(page, t("button.register"))
    ar = snapshot(web_server, address).auto_reply
    assert ar.enabled and ar.subject == "不在のお知らせ / Out of office"
    assert [r.pattern for r in ar.per_sender] == ["boss@corp.example"]

    # ------------------------------------------------ virus scan
    page.goto(base + "/")
    link(page, t("virus_scan.title"))
    assert heading(page) == t("title.confirm", name=t("virus_scan.title"))
    shot("19-virus-confirm")
    click(page, t("button.ok"))
    assert heading(page) == t("title.done", name=t("virus_scan.title"))
    assert snapshot(web_server, address).virus_scan is False

    # ------------------------------------------------ spam scan: state → notice → input → confirm → done
    page.goto(base + "/")
    link(page, t("spam_scan.title"))
    assert heading(page) == t("spam_scan.list_title")
    click_link_button(page, t("button.set"))
    assert heading(page) == t("spam_scan.notice_title")
    shot("20-spam-notice")
    click_link_button(page, t("button.ok"))
    assert heading(page) == t("spam_scan.title")
    page.locator("#quarantine-on").check()
    page.locator("#notice-on").check()
    click(page, t("button.next"))
    assert heading(page) == t("title.confirm", name=t("spam_scan.title"))
    click(page, t("button.register"))
    current = snapshot(web_server, address)
    assert current.spam_scan and current.spam_quarantine and current.quarantine_notice

    # ------------------------------------------------ overseas sending
    page.goto(base + "/")
    link(page, t("overseas.title"))
    assert heading(page) == t("overseas.title")
    expect(page.get_by_role("link", name="IP Geolocation by DB-IP")).to_have_attribute("href", "https://db-ip.com")
    shot("21-overseas-restricted")
    click(page, t("overseas.unlock", days=7))
    assert heading(page) == t("title.confirm", name=t("overseas.title"))
    click(page, t("button.ok"))
    assert heading(page) == t("title.done", name=t("overseas.title"))
    assert snapshot(web_server, address).overseas_unlocked_until is not None
    page.goto(base + "/")
    expect(page.locator("table.info")).to_contain_text(t("overseas.unlocked"))
    shot("22-account-unlocked")
    page.goto(base + "/overseas")
    shot("23-overseas-unlocked")
    click(page, t("overseas.restrict_now"))
    click(page, t("button.ok"))
    assert snapshot(web_server, address).overseas_unlocked_until is None

    # ------------------------------------------------ quarantine: list, safe view, release
    page.goto(base + "/")
    link(page, t("quarantine.title"))
    assert heading(page) == t("quarantine.title")
    expect(page.locator("table.list")).to_contain_text("<b>半額</b>")  # shown as text, not markup
    shot("24-quarantine-list")
    page.locator("table.list a").first.click()
    assert heading(page) == t("quarantine.item_title")
    assert page.title() != "pwned"
    expect(page.locator("pre.mail")).to_contain_text("Hello")
    expect(page.locator("main")).to_contain_text("price-list.pdf")
    assert page.locator("main img").count() == 0
    shot("25-quarantine-item")
    click(page, t("quarantine.release"))
    assert heading(page) == t("title.confirm", name=t("quarantine.release_title"))
    click(page, t("button.ok"))
    assert heading(page) == t("title.done", name=t("quarantine.release_title"))
    with web_server.session() as s:
        assert quarantine.list_items(s, address) == []

    # ------------------------------------------------ language switch, phone width, logout
    other = "English" if lang == "ja" else "日本語"
    page.goto(base + "/")
    page.get_by_role("link", name=other, exact=True).click()
    assert page.locator("html").get_attribute("lang") == ("en" if lang == "ja" else "ja")
    page.get_by_role("link", name="日本語" if lang == "ja" else "English", exact=True).click()
    page.set_viewport_size({"width": 375, "height": 740})
    page.goto(base + "/")
    shot("26-account-phone")
    page.goto(base + "/reject/sender/add")
    shot("27-reject-add-phone")
    page.set_viewport_size({"width": 1000, "height": 800})
    page.goto(base + "/")
    click(page, t("button.logout"))
    assert heading(page) == t("login.title")
    page.goto(base + "/")
    assert heading(page) == t("login.title")

    # No script error and no Content-Security-Policy violation on any page.
    assert console == [], console


def click_link_button(page: Page, name: str) -> None:
    page.locator("main").get_by_role("link", name=name, exact=True).first.click()


def test_keyboard_focus_is_visible(browser: Browser, web_server: WebServer) -> None:
    page = browser.new_page()
    try:
        page.goto(web_server.base_url + "/login")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("none", "")
        assert re.search(r"\d", page.evaluate("getComputedStyle(document.activeElement).outlineWidth"))
    finally:
        page.close()
