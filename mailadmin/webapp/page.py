"""What every view of the admin page shares: :class:`WebState` (built once per
application), :class:`Page` (one request as a view sees it), the session and
CSRF cookies, and the client's address (SPEC §1, §2).

The views, the flow and the middlewares of :mod:`mailadmin.webapp.app` all
import this module; it imports none of them, so no view reaches back up to
the application that routes to it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jinja2
from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.config.model import Config, Policy
from mailadmin.errors import Problem
from mailadmin.store.mailboxes import MailboxInfo
from mailadmin.webapp import i18n

T = TypeVar("T")

SESSION_COOKIE = "mailadmin_session"
PRE_CSRF_COOKIE = "mailadmin_csrf"
IDLE_TIMEOUT_SECONDS = 30 * 60
MAX_SESSION_AGE_SECONDS = 12 * 60 * 60


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _utcnow_default() -> Callable[[], dt.datetime]:
    return utcnow


@dataclass
class WebState:
    """What every handler shares; built once by :func:`make_app`."""

    config: Callable[[], Config]
    session_factory: sessionmaker[Session]
    templates: jinja2.Environment
    catalogs: dict[str, dict[str, str]]
    prefix: str  # "" or "/admin": the path of web.base_url, without the final "/"
    secure_cookies: bool
    clock: Callable[[], dt.datetime] = field(default_factory=_utcnow_default)

    async def db(self, fn: Callable[[Session], T]) -> T:
        """``fn`` in one committed transaction, in a worker thread (hashing is slow)."""
        def run() -> T:
            with self.session_factory.begin() as session:
                return fn(session)
        return await asyncio.to_thread(run)

    async def db_dry(self, fn: Callable[[Session], T]) -> T:
        """``fn`` in a transaction that is rolled back: the store's own validation,
        without saving (the confirm step)."""
        def run() -> T:
            with self.session_factory() as session:
                try:
                    return fn(session)
                finally:
                    session.rollback()
        return await asyncio.to_thread(run)

    def url(self, path: str) -> str:
        return f"{self.prefix}{path}"


STATE: web.AppKey[WebState] = web.AppKey("mailadmin_web_state", WebState)


@dataclass
class Page:
    """One request as the views see it."""

    request: web.Request
    state: WebState
    t: i18n.Translator
    # the mailbox the rule screens act on (the login's own unless an admin chose another)
    mailbox: MailboxInfo | None = None
    # the mailbox that logged in
    login: MailboxInfo | None = None
    session_token: str | None = None
    csrf: str = ""

    @property
    def lang(self) -> str:
        return self.t.lang

    @property
    def address(self) -> str:
        """The session's mailbox: the only mailbox any handler acts on."""
        if self.mailbox is None:
            raise web.HTTPForbidden()
        return self.mailbox.address

    @property
    def login_address(self) -> str:
        """The mailbox that logged in (password, contact address: always its own)."""
        if self.login is None:
            raise web.HTTPForbidden()
        return self.login.address

    @property
    def acting_for_other(self) -> bool:
        """An admin acting on another mailbox of its contract."""
        return (self.login is not None and self.mailbox is not None
                and self.login.address != self.mailbox.address)

    @property
    def config(self) -> Config:
        return self.state.config()

    @property
    def policy(self) -> Policy:
        domain = self.mailbox.domain if self.mailbox else ""
        return self.config.policies.for_domain(domain)

    def problems(self, problems: tuple[Problem, ...] | list[Problem]) -> list[str]:
        return [self.t.problem(p) for p in problems]

    def render(self, template: str, status: int = 200, **context: Any) -> web.Response:
        body = self.state.templates.get_template(template).render(
            t=self.t, lang=self.lang, csrf=self.csrf, url=self.state.url, mailbox=self.mailbox,
            login=self.login, acting_for_other=self.acting_for_other, path=self.request.path, **context,
        )
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    def redirect(self, path: str) -> web.HTTPSeeOther:
        return web.HTTPSeeOther(self.state.url(path))


PAGE: web.RequestKey[Page] = web.RequestKey("mailadmin_page", Page)


def page_of(request: web.Request) -> Page:
    return request[PAGE]


def client_ip(request: web.Request) -> str:
    """The client's address.  Behind the local reverse proxy (a loopback peer) it is
    the last X-Forwarded-For hop, the one the proxy itself added."""
    peer = request.remote or ""
    if peer in ("127.0.0.1", "::1"):
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1]
    return peer


def set_cookie(state: WebState, response: web.StreamResponse, name: str, value: str,
               *, max_age: int | None = None, http_only: bool = True) -> None:
    response.set_cookie(name, value, path=state.prefix or "/", max_age=max_age,
                        httponly=http_only, secure=state.secure_cookies, samesite="Lax")


def clear_cookie(state: WebState, response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path=state.prefix or "/", secure=state.secure_cookies,
                        samesite="Lax")


def new_pre_csrf(page: Page) -> str:
    """The double-submit token of the login form (there is no session yet)."""
    if not page.csrf:
        page.csrf = secrets.token_urlsafe(32)
    return page.csrf
