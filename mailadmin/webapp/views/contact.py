"""The contact address screens (連絡先メールアドレス, seeds 001 and 003, SPEC §1).

State → input (the address twice and the current password) → 確認 → the
認証コード goes to the address → the code is entered → 完了.  Removing takes the
password too: input → 確認 → 完了.  Both are the mailbox that logged in
(``Page.login``), never a mailbox an admin acts on: a contact address is
where that mailbox's own notices and password-reset codes go.

The code mail itself, and the per-address / per-IP throttle of code
requests, are shared with the password reset (views/reset.py).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.orm import Session

from mailadmin.config.model import ContactPolicy, Policy
from mailadmin.errors import Problem
from mailadmin.mailtext.account_mail import compose_code_mail, format_moment
from mailadmin.mailtext.addresses import canonical_address, domain_of
from mailadmin.store import claims, contact, outbox
from mailadmin.store.contact import CodeResult
from mailadmin.webapp import auth
from mailadmin.webapp.page import Page, client_ip, page_of
from mailadmin.webapp.flow import form_text, sign
from mailadmin.webapp.notices import record_change

CODE_PURPOSE = "verification_code"
SIGN_EDIT = "/contact/edit"
SIGN_REMOVE = "/contact/remove"

Row = tuple[str, Sequence[str]]


# ---------------------------------------------------------------- shared with the reset page


def policy_for(page: Page, address: str) -> Policy:
    return page.config.policies.for_domain(domain_of(address))


def request_keys(addresses: Sequence[str], ip: str) -> tuple[list[str], str]:
    """Counter keys of code requests (kept with the login failures, own prefix)."""
    return [f"code_request:address:{canonical_address(a)}" for a in addresses], f"code_request:ip:{ip}"


def over_request_limit(session: Session, policy: ContactPolicy, addresses: Sequence[str], ip: str,
                       now: dt.datetime) -> bool:
    window = dt.timedelta(minutes=policy.request_window_minutes)
    by_address, by_ip = request_keys(addresses, ip)
    return (any(claims.count_login_failures(session, key, now, window) >= policy.max_code_requests_per_address
                for key in by_address)
            or claims.count_login_failures(session, by_ip, now, window) >= policy.max_code_requests_per_ip)


def count_request(session: Session, addresses: Sequence[str], ip: str, now: dt.datetime) -> None:
    by_address, by_ip = request_keys(addresses, ip)
    for key in [*by_address, by_ip]:
        claims.record_login_failure(session, key, now)


def send_code(session: Session, page: Page, mailbox: str, purpose: str, to: str) -> None:
    """Issue a code of ``mailbox`` for ``purpose`` and queue its mail to ``to``."""
    policy = policy_for(page, mailbox)
    now = page.state.clock()
    code = contact.issue_code(session, mailbox, purpose, to, now, policy.contact)
    zone = policy.auto_reply.timezone
    expires_ja, expires_en = format_moment(now + dt.timedelta(hours=policy.contact.code_ttl_hours),
                                           ZoneInfo(zone), zone)
    message = compose_code_mail(to, mailbox, code, purpose=purpose, expires_ja=expires_ja,
                                expires_en=expires_en, postmaster=f"postmaster@{domain_of(mailbox)}", now=now)
    # A null envelope sender: a mistyped outside address must not bounce back here.
    outbox.enqueue(session, purpose=CODE_PURPOSE, mail_from="", rcpt_tos=[to], message=message, now=now)


def _signed(page: Page, name: str, pending: dict[str, Any]) -> tuple[str, str]:
    data = json.dumps(pending, ensure_ascii=False, sort_keys=True)
    return data, sign(page, name, 1, data)


def _verified(page: Page, name: str, form: Any) -> dict[str, Any] | None:
    data = form_text(form, "pending")
    if not hmac.compare_digest(form_text(form, "signature"), sign(page, name, 1, data)):
        return None
    try:
        pending = json.loads(data)
    except ValueError:
        return None
    return pending if isinstance(pending, dict) else None


# ---------------------------------------------------------------- state


async def state(request: web.Request) -> web.StreamResponse:
    """連絡先メールアドレスの参照: the confirmed address, and a code waiting to be entered."""
    page = page_of(request)
    address = page.login_address
    policy = policy_for(page, address).contact
    now = page.state.clock()

    def load(session: Session) -> tuple[contact.ContactInfo | None, contact.PendingCode | None]:
        return (contact.get_contact(session, address),
                contact.pending_code(session, address, "contact", now, policy))

    current, waiting = await page.state.db(load)
    return page.render("contact/index.html", current=current, waiting=waiting)


# ---------------------------------------------------------------- register / change


def _edit_input(page: Page, values: dict[str, str], problems: Sequence[str]) -> web.Response:
    return page.render("contact/input.html", values=values, problems=list(problems),
                       status=400 if problems else 200)


async def edit_form(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    return _edit_input(page, {"address": "", "address_again": ""}, ())


async def edit_confirm(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    form = await request.post()
    values = {"address": form_text(form, "address").strip(),
              "address_again": form_text(form, "address_again").strip()}
    password = form_text(form, "password")
    mailbox = page.login_address

    def check(session: Session) -> list[Problem]:
        current = contact.get_contact(session, mailbox)
        problems = contact.contact_problems(mailbox, values["address"], current.address if current else None)
        if not problems and values["address"] != values["address_again"]:
            problems.append(Problem("contact.mismatch", "The address and its repetition differ."))
        if not auth.verify_current_password(session, mailbox, password):
            problems.append(Problem("password_current_wrong", "The current password is not right."))
        return problems

    problems = await page.state.db_dry(check)
    if problems:
        return _edit_input(page, values, page.problems(problems))
    data, signature = _signed(page, SIGN_EDIT, {"address": values["address"]})
    return page.render("contact/confirm.html", address=values["address"], pending=data, signature=signature)


async def edit_send(request: web.Request) -> web.StreamResponse:
    """確認 pressed: the code goes to the new address."""
    page = page_of(request)
    form = await request.post()
    pending = _verified(page, SIGN_EDIT, form)
    if pending is None or not isinstance(pending.get("address"), str):
        return page.render("error.html", status=400, message=page.t("error.stale_form"))
    mailbox = page.login_address
    to: str = pending["address"]
    policy = policy_for(page, mailbox).contact
    ip = client_ip(request)
    now = page.state.clock()

    def run(session: Session) -> list[Problem] | None:
        current = contact.get_contact(session, mailbox)
        problems = contact.contact_problems(mailbox, to, current.address if current else None)
        if problems:
            return problems
        if over_request_limit(session, policy, [mailbox, to], ip, now):
            return None
        count_request(session, [mailbox, to], ip, now)
        send_code(session, page, mailbox, "contact", to)
        return []

    outcome = await page.state.db(run)
    if outcome is None:
        return page.render("error.html", status=429, message=page.t("contact.throttled"))
    if outcome:
        return _edit_input(page, {"address": to, "address_again": to}, page.problems(outcome))
    raise page.redirect("/contact/code")


def _code_page(page: Page, waiting: contact.PendingCode | None, problems: Sequence[str] = (),
               status: int = 200) -> web.Response:
    until = ""
    if waiting is not None:
        zone = page.policy.auto_reply.timezone
        ja, en = format_moment(waiting.expires_at, ZoneInfo(zone), zone)
        until = ja if page.lang == "ja" else en
    return page.render("contact/code.html", waiting=waiting, until=until, problems=list(problems),
                       status=status)


async def code_form(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    mailbox = page.login_address
    policy = policy_for(page, mailbox).contact
    now = page.state.clock()
    waiting = await page.state.db(lambda s: contact.pending_code(s, mailbox, "contact", now, policy))
    return _code_page(page, waiting)


_CODE_PROBLEMS = {
    CodeResult.WRONG: "contact.code_wrong",
    CodeResult.EXHAUSTED: "contact.code_exhausted",
    CodeResult.EXPIRED: "contact.code_expired",
    CodeResult.NONE: "contact.code_none",
}


async def code_submit(request: web.Request) -> web.StreamResponse:
    """認証コード入力: a right code makes the address the contact address (完了)."""
    page = page_of(request)
    form = await request.post()
    entered = form_text(form, "code").strip()
    mailbox = page.login_address
    policy = policy_for(page, mailbox).contact
    now = page.state.clock()

    def run(session: Session) -> tuple[contact.CodeCheck, str | None, contact.PendingCode | None]:
        check = contact.check_code(session, mailbox, "contact", entered, now, policy)
        if check.result is not CodeResult.OK:
            # Committed: a wrong try must count even though the request fails.
            return check, None, contact.pending_code(session, mailbox, "contact", now, policy)
        old = contact.set_contact(session, mailbox, check.address, now)

        def describe(seen: Page) -> list[Row]:
            rows: list[Row] = [(seen.t("contact.new_label"), [check.address])]
            if old is not None:
                rows.insert(0, (seen.t("contact.old_label"), [old]))
            return rows

        record_change(session, page, title="contact.title", describe=describe, target=mailbox,
                      also_notify=[old] if old and canonical_address(old) != canonical_address(check.address)
                      else [])
        return check, old, None

    check, old, waiting = await page.state.db(run)
    if check.result is not CodeResult.OK:
        problem = Problem(_CODE_PROBLEMS[check.result], "The code is not right.",
                          {"attempts_left": check.attempts_left})
        return _code_page(page, waiting, page.problems([problem]), status=400)
    return page.render("contact/done.html", title_key="contact.done_title", rows=[
        *([(page.t("contact.old_label"), [old])] if old else []),
        (page.t("contact.new_label"), [check.address]),
    ])


# ---------------------------------------------------------------- remove


async def remove_form(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    current = await page.state.db(lambda s: contact.get_contact(s, page.login_address))
    if current is None:
        raise page.redirect("/contact")
    return page.render("contact/remove.html", current=current, problems=[])


async def remove_confirm(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    form = await request.post()
    password = form_text(form, "password")
    mailbox = page.login_address

    def check(session: Session) -> tuple[contact.ContactInfo | None, bool]:
        return contact.get_contact(session, mailbox), auth.verify_current_password(session, mailbox, password)

    current, right = await page.state.db_dry(check)
    if current is None:
        raise page.redirect("/contact")
    if not right:
        problem = Problem("password_current_wrong", "The current password is not right.")
        return page.render("contact/remove.html", current=current, problems=page.problems([problem]),
                           status=400)
    data, signature = _signed(page, SIGN_REMOVE, {"address": current.address})
    return page.render("contact/remove_confirm.html", current=current, pending=data, signature=signature)


async def remove_done(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    form = await request.post()
    pending = _verified(page, SIGN_REMOVE, form)
    if pending is None or not isinstance(pending.get("address"), str):
        return page.render("error.html", status=400, message=page.t("error.stale_form"))
    mailbox = page.login_address
    now = page.state.clock()
    confirmed: str = pending["address"]

    def run(session: Session) -> str | None:
        current = contact.get_contact(session, mailbox)
        # Only the address the subscriber confirmed removing (not one set since).
        if current is None or canonical_address(current.address) != canonical_address(confirmed):
            return None
        old = contact.remove_contact(session, mailbox)
        contact.void_codes(session, mailbox, "contact", now)
        record_change(session, page, title="contact.title",
                      describe=lambda seen: [(seen.t("contact.removed_label"), [confirmed])],
                      target=mailbox, also_notify=[confirmed])
        return old

    old = await page.state.db(run)
    if old is None:
        problem = Problem("not_found", "It no longer exists.")
        return page.render("contact/failed.html", problems=page.problems([problem]))
    return page.render("contact/done.html", title_key="contact.remove_done_title",
                       rows=[(page.t("contact.removed_label"), [old])])


def routes(p: str) -> list[web.RouteDef]:
    return [
        web.get(p + "/contact", state),
        web.get(p + "/contact/edit", edit_form),
        web.post(p + "/contact/edit/confirm", edit_confirm),
        web.post(p + "/contact/edit/send", edit_send),
        web.get(p + "/contact/code", code_form),
        web.post(p + "/contact/code", code_submit),
        web.get(p + "/contact/remove", remove_form),
        web.post(p + "/contact/remove/confirm", remove_confirm),
        web.post(p + "/contact/remove/done", remove_done),
    ]
