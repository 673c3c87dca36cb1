"""Every route, old and new, authorised against the contract (seed 002; SPEC §1):
a user mailbox reaches only itself, an admin reaches the mailboxes of its own
contract and nothing of another contract.

For three logins — a user (jiro, in taro's contract), the admin of another
contract (hanako), and an admin acting on a mailbox of its contract (taro on
jiro) — every GET page is read and every POST route is sent fields naming a
mailbox it must not reach (address, entry, quarantine id…), with each confirm
page it gets pressed through to 完了.  No page shows anything of those
mailboxes, and none of them changes."""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from typing import Any

import pytest

from mailadmin.config.model import LimitsPolicy
from mailadmin.store import mailboxes, quarantine, rules, rules_document
from mailadmin.store.mailboxes import mailbox_row

from .conftest import HANAKO, HANAKO_PASSWORD, JIRO, JIRO_PASSWORD, PASSWORD, TARO, Web
from .test_webapp_access import app_routes

ALL = (TARO, JIRO, HANAKO)
SKIPPED_POSTS = ("/login", "/logout")


def marker(address: str) -> str:
    return f"marker-{address.split('@')[0]}.example"


def subject(address: str) -> str:
    return f"quarantined-for-{address.split('@')[0]}"


@dataclass
class Seeded:
    items: dict[str, int]


def seed(web: Web) -> Seeded:
    items = {}
    with web.session() as s, s.begin():
        for address in ALL:
            rules.add_entries(s, address, "reject_sender", [marker(address)], LimitsPolicy())
            rules.add_forward(s, address, f"fwd-{address.split('@')[0]}@example.org", True, LimitsPolicy())
            items[address] = quarantine.add_item(
                s, address, b"From: a@b.example\r\nSubject: x\r\n\r\nbody\r\n", sender="a@b.example",
                subject=subject(address), rule="reject_sender", entry="b.example", queue_id="Q",
                now=web.clock.now, retention_days=7)
    return Seeded(items)


def state_of(web: Web, address: str) -> tuple[Any, ...]:
    with web.session() as s:
        info = mailboxes.get_mailbox(s, address)
        return (rules_document.export_rules(s, address), [i.id for i in quarantine.list_items(s, address)],
                info.role, info.status, info.must_change_password, info.contract,
                mailbox_row(s, address).password_hash)


async def log_in_as(web: Web, who: str) -> tuple[set[str], set[str]]:
    """Log in for scenario ``who``; returns (mailboxes it may see, mailboxes it must not)."""
    if who == "user":
        status, _ = await web.login(JIRO, JIRO_PASSWORD)
        allowed = {JIRO}
    elif who == "other_contract_admin":
        status, _ = await web.login(HANAKO, HANAKO_PASSWORD)
        allowed = {HANAKO}
    else:
        status, _ = await web.login(TARO, PASSWORD)
        await web.get("/contract")
        status, html = await web.post("/contract/act", {"address": JIRO})
        assert f"<td>{JIRO}</td>" in html
        allowed = {TARO, JIRO}
    assert status == 200
    return allowed, set(ALL) - allowed


def hostile_fields(victim: str, seeded: Seeded) -> list[tuple[str, str]]:
    return [("address", victim), ("mailbox", victim), ("user", victim), ("entry", marker(victim)),
            ("entries", "new-entry.example"), ("id", str(seeded.items[victim])), ("local", "newbox"),
            ("role", "user"), ("action", "unlock"), ("choice", "off"), ("scan", "off"),
            ("quarantine", "on"), ("notice", "on"), ("keep_copy", "no"), ("conditions", "from_missing"),
            ("enabled", "on"), ("subject", "s"), ("body", "b"), ("current_password", PASSWORD),
            ("new_password", "Hostile-123"), ("new_password_again", "Hostile-123")]


async def press_through(web: Web, path: str) -> None:
    """Press every confirm page the route answers with, up to its done page."""
    for _ in range(3):
        fields = dict(re.findall(r'name="(pending|signature|step)" value="([^"]*)"', web.last_html))
        if "pending" not in fields:
            return
        action = re.search(r'<form method="post" action="([^"]+/done)"', web.last_html)
        if action is None:
            return
        await web.post(html_lib.unescape(action.group(1)), {k: html_lib.unescape(v) for k, v in fields.items()})


@pytest.mark.parametrize("who", ["user", "other_contract_admin", "admin_acting_on_a_contract_mailbox"])
async def test_every_page_shows_only_what_the_login_may_reach(web: Web, who: str) -> None:
    seeded = seed(web)
    allowed, forbidden = await log_in_as(web, who)
    own_item = seeded.items[JIRO if who != "other_contract_admin" else HANAKO]
    for method, path in app_routes(web):
        if method != "GET" or path.startswith("/lang/") or path == "/login":
            continue
        status, html = await web.get(path.replace("{item_id}", str(own_item)))
        assert status in (200, 404), (who, path, status)
        for address in forbidden:
            for secret in (address, marker(address), subject(address)):
                assert secret not in html, (who, path, secret)
    for address in forbidden:
        status, html = await web.get(f"/quarantine/item/{seeded.items[address]}")
        assert status == 404 and subject(address) not in html, (who, address)


@pytest.mark.parametrize("who", ["user", "other_contract_admin", "admin_acting_on_a_contract_mailbox"])
async def test_no_post_changes_a_mailbox_out_of_reach(web: Web, who: str) -> None:
    seeded = seed(web)
    allowed, forbidden = await log_in_as(web, who)
    before = {address: state_of(web, address) for address in forbidden}
    posts = [path for method, path in app_routes(web) if method == "POST" and path not in SKIPPED_POSTS]
    assert any(p.startswith("/contract/") for p in posts) and len(posts) > 30
    for victim in sorted(forbidden):
        for path in posts:
            await web.get("/")  # a page with this session's CSRF token
            status, html = await web.post(path, hostile_fields(victim, seeded))
            assert status < 500, (who, path, status)
            await press_through(web, path)
            for secret in (marker(victim), subject(victim)):
                assert secret not in web.last_html, (who, path, secret)
    for address in forbidden:
        assert state_of(web, address) == before[address], (who, address)
