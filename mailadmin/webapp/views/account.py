"""Login, logout, the account page (メールアカウント情報参照, SPEC §2), the POP account
password change (SPEC §1) and the language switch."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
import dataclasses
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.orm import Session

from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.mailtext.entries import new_password_problems
from mailadmin.store import contact, mailboxes, quarantine, rules, web_sessions
from mailadmin.store.snapshots import MailboxRules
from mailadmin.webapp import auth, i18n
from mailadmin.webapp.page import (
    IDLE_TIMEOUT_SECONDS,
    MAX_SESSION_AGE_SECONDS,
    SESSION_COOKIE,
    Page,
    client_ip,
    new_pre_csrf,
    page_of,
    set_cookie,
    clear_cookie,
)
from mailadmin.webapp.flow import form_text
from mailadmin.webapp.notices import record_change

LANG_COOKIE_SECONDS = 365 * 24 * 3600


# ---------------------------------------------------------------- dates


def local_time(page: Page, when: dt.datetime) -> str:
    """A moment as the subscriber reads it: Japan time (the zone named) in both
    languages, UTC added in English."""
    zone = ZoneInfo(page.policy.auto_reply.timezone)
    local = when.astimezone(zone)
    if page.lang == "ja":
        return page.t("time.format", local=local.strftime("%Y年%m月%d日 %H時%M分"),
                      zone=zone.key, utc=when.astimezone(dt.timezone.utc).strftime("%H:%M"))
    return page.t("time.format", local=local.strftime("%Y-%m-%d %H:%M"), zone=zone.key,
                  utc=when.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"))


# ---------------------------------------------------------------- login / logout


def _login_page(page: Page, address: str = "", error: str = "", status: int = 200) -> web.Response:
    new_pre_csrf(page)
    return page.render("login.html", status=status, address=address, error=error)


async def login_form(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    if page.mailbox is not None:
        raise page.redirect("/")
    return _login_page(page)


async def login_submit(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    form = await request.post()
    address = form_text(form, "address")
    password = form_text(form, "password")
    outcome = await auth.login(page.state, address, password, client_ip(request), page.session_token)
    if outcome.result is auth.LoginResult.THROTTLED:
        return _login_page(page, address, page.t("login.throttled"), status=429)
    if outcome.result is auth.LoginResult.FAILED or outcome.token is None:
        return _login_page(page, address, page.t("login.failed"), status=401)
    response = page.redirect("/")
    set_cookie(page.state, response, SESSION_COOKIE, outcome.token, max_age=MAX_SESSION_AGE_SECONDS)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    if page.session_token:
        await auth.logout(page.state, page.session_token)
    response = page.redirect("/login")
    clear_cookie(page.state, response, SESSION_COOKIE)
    raise response


async def switch_language(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    lang = request.match_info["lang"]
    target = request.query.get("next", "/")
    # Only a path of this site: never an open redirect.
    if (not target.startswith(page.state.prefix + "/") or target.startswith("//")
            or "\\" in target):
        target = page.state.url("/")
    response = web.HTTPSeeOther(target)
    if lang in i18n.LANGUAGES:
        set_cookie(page.state, response, i18n.LANG_COOKIE, lang, max_age=LANG_COOKIE_SECONDS)
    raise response


# ---------------------------------------------------------------- account page


@dataclass(frozen=True)
class AccountView:
    address: str
    smtp_server: str
    pop_server: str
    status: str
    rules: MailboxRules
    quarantine_count: int
    # The confirmed 連絡先メールアドレス (seed 001), None: 未登録.
    contact_address: str | None = None


async def account(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    address = page.address
    domain_defaults = page.config.conf.domains

    def load(session: Session) -> AccountView:
        box = mailboxes.get_mailbox(session, address)
        try:
            domain = mailboxes.get_domain(session, box.domain)
            smtp, pop = domain.smtp_server, domain.pop_server
        except NotFound:
            smtp = domain_defaults.smtp_server.format(domain=box.domain)
            pop = domain_defaults.pop_server.format(domain=box.domain)
        snapshot = rules.load_rules(session, address)
        if snapshot is None:
            raise NotFound(address)
        count = len(quarantine.list_items(session, address))
        found = contact.get_contact(session, address)
        return AccountView(box.address, smtp, pop, box.status, snapshot, count,
                           found.address if found is not None else None)

    view = await page.state.db(load)
    now = page.state.clock()
    unlocked = view.rules.is_overseas_unlocked(now)
    until = view.rules.overseas_unlocked_until
    return page.render(
        "account/index.html", view=view, unlocked=unlocked,
        until=local_time(page, until) if unlocked and until else "",
    )


# ---------------------------------------------------------------- password


async def password_form(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    return page.render("password/input.html", problems=[])


async def password_submit(request: web.Request) -> web.StreamResponse:
    page = page_of(request)
    form = await request.post()
    current = form_text(form, "current_password")
    new = form_text(form, "new_password")
    again = form_text(form, "new_password_again")
    # Always the mailbox that logged in, even while an admin acts on another.
    address = page.login_address
    policy = page.policy
    now = page.state.clock()

    def change(session: Session) -> tuple[str, str]:
        problems: list[Problem] = []
        if not auth.verify_current_password(session, address, current):
            problems.append(Problem("password_current_wrong", "The current password is not right."))
        problems.extend(new_password_problems(new, again, policy.password))
        if new == again and new and new == current:
            problems.append(Problem("password_unchanged",
                                    "The new password must differ from the current one."))
        if problems:
            raise EntryError(problems)
        mailboxes.set_password(session, address, new, policy, must_change=False)
        # Its change notice (seed 001), in the same transaction; never the password itself.
        record_change(session, page, title="password.title", target=address,
                      describe=lambda seen: [(seen.t("contact.password_notice_label"),
                                              [seen.t("contact.password_notice_value")])])
        # Every other browser logged in with the old password is logged out;
        # this one gets a fresh session.
        web_sessions.delete_mailbox_sessions(session, address)
        token = web_sessions.create_session(session, address, now)
        info = web_sessions.touch_session(session, token, now, idle_seconds=IDLE_TIMEOUT_SECONDS,
                                          max_age_seconds=MAX_SESSION_AGE_SECONDS)
        assert info is not None
        return token, info.csrf_token

    try:
        token, csrf = await page.state.db(change)
    except EntryError as exc:
        return page.render("password/input.html", problems=page.problems(exc.problems), status=400)
    page.csrf = csrf
    if page.login is not None:
        page.login = dataclasses.replace(page.login, must_change_password=False)
        if page.mailbox is not None and page.mailbox.address == page.login.address:
            page.mailbox = page.login
    response = page.render("password/done.html")
    set_cookie(page.state, response, SESSION_COOKIE, token, max_age=MAX_SESSION_AGE_SECONDS)
    return response

