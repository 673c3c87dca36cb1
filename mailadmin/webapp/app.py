"""The admin page's aiohttp application (SPEC §1, §2): state, rendering,
security headers, language, sessions, CSRF and the forced password change.

Every request passes these middlewares, outermost first:

1. security headers on every answer, errors included (CSP without inline
   script or style, no framing, nosniff, no referrer leaving the site);
2. language: the ``lang`` cookie, else Accept-Language;
3. session: the cookie's token is looked up in the store (a worker thread);
   a page other than login needs a live session of an active mailbox;
4. CSRF: every POST carries the session's token (before login: the
   double-submit cookie of the login form);
5. a mailbox with a temporary password reaches only the password page.

The mailbox a request acts on is always the session's; no route takes one.
A session's own mailbox is ``Page.login``; ``Page.mailbox`` is the one the
rule screens act on: the login's own, or, for an admin (seed 002), the
mailbox of its contract it chose on the contract page, re-authorised on
every request (same contract, the login still an admin).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from mailadmin import paths
from mailadmin.config.model import Config
from mailadmin.errors import NotFound
from mailadmin.listeners import create_protocol_server
from mailadmin.store import contracts, mailboxes, web_sessions
from mailadmin.store.mailboxes import MailboxInfo
from mailadmin.webapp import i18n
from mailadmin.webapp.page import (
    IDLE_TIMEOUT_SECONDS,
    MAX_SESSION_AGE_SECONDS,
    PAGE,
    PRE_CSRF_COOKIE,
    SESSION_COOKIE,
    STATE,
    Page,
    WebState,
    set_cookie,
    utcnow,
)
from mailadmin.webapp.routes import add_routes
from mailadmin.wiring import Runtime

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_FORM_BYTES = 256 * 1024

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}

# Paths a visitor reaches without logging in, and those a mailbox with a
# temporary password may still reach (relative to the prefix).
PUBLIC_PATHS = ("/login", "/reset", "/reset/code", "/lang/")
# The password reset by code (seed 000) is for those who can't log in.
PUBLIC_EXACT_PATHS = ("/login", "/reset", "/reset/code")
# The quarantine notice's signed release/delete links: the signature is the
# permission, for one item (webapp/views/quarantine.py).
PUBLIC_LINK_PREFIX = "/q/"
FORCED_CHANGE_PATHS = ("/password", "/logout", "/lang/")


def _relative(state: WebState, request: web.Request) -> str:
    path = request.path
    if state.prefix and path.startswith(state.prefix):
        return path[len(state.prefix):] or "/"
    return path


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    response.headers.update(SECURITY_HEADERS)
    if "Cache-Control" not in response.headers:
        # Pages show a mailbox's settings and mail: never kept by a shared cache.
        response.headers["Cache-Control"] = "no-store"
    return response


@web.middleware
async def session_and_language(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    relative = _relative(state, request)
    if relative.startswith("/static/"):
        return await handler(request)
    lang = i18n.choose_language(request.cookies.get(i18n.LANG_COOKIE),
                                request.headers.get("Accept-Language"))
    page = Page(request, state, i18n.Translator(lang, state.catalogs))
    request[PAGE] = page

    token = request.cookies.get(SESSION_COOKIE)
    if token:
        now = state.clock()

        def load(session: Session) -> tuple[web_sessions.SessionInfo, MailboxInfo, MailboxInfo] | None:
            info = web_sessions.touch_session(session, token, now, idle_seconds=IDLE_TIMEOUT_SECONDS,
                                              max_age_seconds=MAX_SESSION_AGE_SECONDS)
            if info is None:
                return None
            try:
                box = mailboxes.get_mailbox(session, info.mailbox)
            except NotFound:
                return None
            if box.status != "active":
                # A suspended mailbox is logged out at its next request.
                web_sessions.delete_session(session, token)
                return None
            target = box
            if info.acting_as is not None:
                chosen = contracts.managed_mailbox(session, box, info.acting_as)
                if chosen is None:
                    # No longer an admin, or the mailbox left the contract.
                    web_sessions.set_acting(session, token, None)
                else:
                    target = chosen
            return info, box, target

        found = await state.db(load)
        if found is not None:
            page.session_token = token
            page.csrf = found[0].csrf_token
            page.login = found[1]
            page.mailbox = found[2]

    public = (relative in PUBLIC_EXACT_PATHS or relative.startswith("/lang/")
              or relative.startswith(PUBLIC_LINK_PREFIX))
    if page.mailbox is None:
        page.csrf = request.cookies.get(PRE_CSRF_COOKIE, "")
        if not public:
            if request.method == "POST":
                raise web.HTTPForbidden(text="session expired")
            raise page.redirect("/login")

    if request.method == "POST":
        form = await request.post()
        sent = form.get("csrf")
        if not page.csrf or not isinstance(sent, str) or not hmac.compare_digest(sent, page.csrf):
            return page.render("error.html", status=403, message=page.t("error.csrf"))

    if (page.login is not None and page.login.must_change_password
            and not any(relative == p or relative.startswith(p) for p in FORCED_CHANGE_PATHS)
            and relative != "/login"):
        raise page.redirect("/password")

    response = await handler(request)
    if page.mailbox is None and not request.cookies.get(PRE_CSRF_COOKIE) and page.csrf:
        set_cookie(state, response, PRE_CSRF_COOKIE, page.csrf)
    return response


@web.middleware
async def not_found_page(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        page = request.get(PAGE)
        if isinstance(page, Page):
            return page.render("error.html", status=404, message=page.t("error.not_found"))
        raise


def make_templates(template_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        autoescape=True,  # every template: senders and subjects are attacker-controlled
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def make_app(
    config: Callable[[], Config],
    session_factory: sessionmaker[Session],
    *,
    clock: Callable[[], dt.datetime] = utcnow,
    web_dir: Path | None = None,
) -> web.Application:
    """The admin page for ``config().conf.web.base_url``, on the store of ``session_factory``."""
    root = web_dir or paths.shipped("web")
    base = urlsplit(config().conf.web.base_url)
    state = WebState(
        config=config,
        session_factory=session_factory,
        templates=make_templates(root / "templates"),
        catalogs=i18n.load_catalogs(root / "locale"),
        prefix=base.path.rstrip("/"),
        secure_cookies=base.scheme == "https",
        clock=clock,
    )
    app = web.Application(
        middlewares=[security_headers, session_and_language, not_found_page],
        client_max_size=MAX_FORM_BYTES,
    )
    app[STATE] = state
    add_routes(app, state.prefix, root / "static")
    return app


async def start_web(listen: str, runtime: Runtime) -> asyncio.base_events.Server:
    """The ``web`` role: the admin page on ``listen`` (``inet:host:port`` or
    ``unix:/path``), on ``runtime``'s store and configuration; returns the
    listening asyncio server (closing it stops accepting)."""
    app = make_app(runtime.config, runtime.store.session_factory, clock=runtime.clock)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    assert runner.server is not None  # set by setup()
    server = await create_protocol_server(listen, runner.server)
    log.info("web listening on %s", listen)
    return server
