"""Password reset by 認証コード (パスワードをお忘れの方, seed 000, SPEC §1).

/reset takes the address.  When it is an active mailbox with a confirmed
contact address, a code goes to that contact address — never a link, and
never to the mailbox itself, which a subscriber locked out can't read and a
hijacker can.  The next screen takes the code, the new password and the
new password again; a right code sets the password, ends every session of
the mailbox and records the change for its notice.

No enumeration: both screens answer with the same status and the same page
whether the address exists, has a contact address or neither, and spend the
same work (a code is hashed, or a throwaway one; a code is verified, or a
dummy hash).  One message covers every failed code entry.  Requests are
counted per typed address and per client IP whatever the address, so the
throttle itself tells nothing either.  These pages are public (no login).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from aiohttp import web
from sqlalchemy.orm import Session

from mailadmin.errors import NotFound, Problem
from mailadmin.mailtext.addresses import canonical_address, is_valid_address
from mailadmin.mailtext.entries import new_password_problems
from mailadmin.passwords import dummy_hash, hash_password, verify_password
from mailadmin.store import claims, contact, mailboxes, web_sessions
from mailadmin.store.contact import CodeResult
from mailadmin.webapp.page import Page, client_ip, new_pre_csrf, page_of
from mailadmin.webapp.flow import form_text
from mailadmin.webapp.notices import record_change
from mailadmin.webapp.views.contact import count_request, over_request_limit, policy_for, send_code


def _render(page: Page, template: str, *, address: str = "", problems: Sequence[str] = (),
            status: int = 200) -> web.Response:
    new_pre_csrf(page)
    return page.render(template, address=address, problems=list(problems), status=status)


def _entry_keys(address: str, ip: str) -> tuple[str, str]:
    return f"reset_code:address:{canonical_address(address)}", f"reset_code:ip:{ip}"


async def request_form(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    return _render(page, "reset/request.html")


async def request_submit(request: web.Request) -> web.StreamResponse:
    """The address typed: a code to its contact address if it has one; the same
    answer in every case."""
    page = page_of(request)
    form = await request.post()
    address = form_text(form, "address").strip()
    if not address:
        problem = Problem("reset.address_empty", "Enter the mail address.")
        return _render(page, "reset/request.html", problems=page.problems([problem]), status=400)
    policy = policy_for(page, address).contact
    ip = client_ip(request)
    now = page.state.clock()

    def run(session: Session) -> bool:
        if over_request_limit(session, policy, [address], ip, now):
            return False
        count_request(session, [address], ip, now)
        target: str | None = None
        found: contact.ContactInfo | None = None
        try:
            box = mailboxes.get_mailbox(session, address) if is_valid_address(address) else None
            found = contact.get_contact(session, address) if box is not None and box.status == "active" else None
            if box is not None and found is not None:
                target = box.address
        except NotFound:
            pass
        if target is not None and found is not None:
            send_code(session, page, target, "reset", found.address)
        else:
            hash_password(contact.new_code())  # the time issuing a code takes
        return True

    if not await page.state.db(run):
        return _render(page, "reset/request.html", address=address,
                       problems=[page.t("reset.throttled")], status=429)
    return _render(page, "reset/code.html", address=address)


async def code_submit(request: web.Request) -> web.StreamResponse:
    """Code, new password, again: a right code sets the password (完了)."""
    page = page_of(request)
    form = await request.post()
    address = form_text(form, "address").strip()
    entered = form_text(form, "code").strip()
    new = form_text(form, "new_password")
    again = form_text(form, "new_password_again")
    policy = policy_for(page, address)
    problems = new_password_problems(new, again, policy.password)
    if not contact.is_code_syntax(entered):
        problems.append(Problem("reset.code_syntax", "The code is the 6 digits in the mail."))
    if problems:
        return _render(page, "reset/code.html", address=address, problems=page.problems(problems), status=400)
    ip = client_ip(request)
    now = page.state.clock()
    window = dt.timedelta(minutes=policy.contact.request_window_minutes)
    by_address, by_ip = _entry_keys(address, ip)
    limit_address = policy.contact.max_code_requests_per_address * policy.contact.code_max_attempts
    limit_ip = policy.contact.max_code_requests_per_ip

    def run(session: Session) -> str:
        if (claims.count_login_failures(session, by_address, now, window) >= limit_address
                or claims.count_login_failures(session, by_ip, now, window) >= limit_ip):
            return "throttled"
        box: mailboxes.MailboxInfo | None = None
        try:
            box = mailboxes.get_mailbox(session, address) if is_valid_address(address) else None
        except NotFound:
            box = None
        if box is None or box.status != "active":
            verify_password(dummy_hash(), entered)  # the time checking a code takes
            result = CodeResult.NONE
        else:
            result = contact.check_code(session, box.address, "reset", entered, now, policy.contact).result
        if result is not CodeResult.OK or box is None:
            # Committed with the failure: the try counts.
            claims.record_login_failure(session, by_address, now)
            claims.record_login_failure(session, by_ip, now)
            return "failed"
        mailboxes.set_password(session, box.address, new, policy, must_change=False)
        web_sessions.delete_mailbox_sessions(session, box.address)
        claims.clear_login_failures(session, f"address:{box.address}")
        record_change(session, page, title="reset.title", target=box.address, login=box.address,
                      describe=lambda seen: [(seen.t("reset.notice_label"), [seen.t("reset.notice_value")])])
        return "ok"

    outcome = await page.state.db(run)
    if outcome == "throttled":
        return _render(page, "reset/code.html", address=address, problems=[page.t("reset.throttled")],
                       status=429)
    if outcome == "failed":
        return _render(page, "reset/code.html", address=address, problems=[page.t("reset.code_failed")],
                       status=400)
    return _render(page, "reset/done.html", address=address)


def routes(p: str) -> list[web.RouteDef]:
    return [
        web.get(p + "/reset", request_form),
        web.post(p + "/reset", request_submit),
        web.post(p + "/reset/code", code_submit),
    ]
