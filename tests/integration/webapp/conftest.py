"""Admin page fixtures: a migrated store with mailboxes (SQLite and PostgreSQL), the app on
aiohttp's test server (a free loopback port), and a logged-in client.

Hashing passwords (Argon2id) is slow, so one template store is built per
session and copied for each test.
"""

from __future__ import annotations

import datetime as dt
from contextlib import asynccontextmanager
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.config.model import Config, Policy, WebConf
from mailadmin.store import db, mailboxes
from tests.fixtures.databases import Backend
from tests.fixtures.config import make_config
from mailadmin.webapp.app import make_app

START = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.timezone.utc)
DOMAIN = "example.jp"
TARO = "taro@example.jp"      # mailbox A
HANAKO = "hanako@example.jp"  # mailbox B
NEWBIE = "new@example.jp"     # still has its temporary password
SUSPENDED = "gone@example.jp"
JIRO = "jiro@example.jp"      # a user mailbox in taro's contract (taro is its admin)
PASSWORD = "Passw0rd.1"
HANAKO_PASSWORD = "Hanak0-pass"
JIRO_PASSWORD = "Jir0-pass"

CSRF_RE = re.compile(r'name="csrf" value="([^"]*)"')


@dataclass(frozen=True)
class Template:
    url: str
    newbie_password: str


@pytest.fixture(scope="session")
def web_template(backend: Backend) -> Template:
    newbie: list[str] = []

    def build(url: str) -> None:
        db.upgrade(url)
        engine = db.make_engine(url)
        policy = Policy()
        with db.make_session_factory(engine).begin() as session:
            mailboxes.add_domain(session, DOMAIN, smtp_server="smtp.example.jp", pop_server="pop.example.jp")
            for address, password in ((TARO, PASSWORD), (HANAKO, HANAKO_PASSWORD), (SUSPENDED, PASSWORD)):
                mailboxes.add_mailbox(session, address, policy)
                mailboxes.set_password(session, address, password, policy)
            mailboxes.set_status(session, SUSPENDED, "suspended")
            newbie.append(mailboxes.add_mailbox(session, NEWBIE, policy))
            contract = mailboxes.get_mailbox(session, TARO).contract
            mailboxes.add_mailbox(session, JIRO, policy, contract=contract, role="user")
            mailboxes.set_password(session, JIRO, JIRO_PASSWORD, policy)
        engine.dispose()

    url = backend.template("web", build)  # session scope: built once per backend
    return Template(url, newbie[0])


@dataclass
class Clock:
    now: dt.datetime = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class Web:
    """The app under test and its store."""

    client: TestClient[Any, Any]
    factory: sessionmaker[Session]
    clock: Clock
    template: Template
    last_html: str = field(default="")

    def csrf(self, html: str | None = None) -> str:
        match = CSRF_RE.search(html if html is not None else self.last_html)
        assert match, "no CSRF field on the page"
        return match.group(1)

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        response = await self.client.get(path, **kw)
        text = await response.text()
        if response.content_type == "text/html":
            self.last_html = text
        return response.status, text

    async def post(self, path: str, data: dict[str, Any] | list[tuple[str, str]] | None = None,
                   *, csrf: str | None = None, **kw: Any) -> tuple[int, str]:
        items: list[tuple[str, str]] = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf is None and self.last_html:
            csrf = self.csrf()
        if csrf is not None:
            items.append(("csrf", csrf))
        response = await self.client.post(path, data=items, **kw)
        text = await response.text()
        self.last_html = text
        return response.status, text

    async def login(self, address: str = TARO, password: str = PASSWORD) -> tuple[int, str]:
        await self.get("/login")
        return await self.post("/login", {"address": address, "password": password})

    async def confirm_and_done(self, path: str, data: dict[str, Any] | list[tuple[str, str]]) -> str:
        """Input → confirm → done; returns the done page."""
        status, html = await self.post(path + "/confirm", data)
        assert status == 200, html
        return await self.press_confirm(path)

    async def press_confirm(self, path: str) -> str:
        fields = dict(re.findall(r'name="(pending|signature|step)" value="([^"]*)"', self.last_html))
        import html as html_lib
        fields = {k: html_lib.unescape(v) for k, v in fields.items()}
        status, html = await self.post(path + "/done", fields)
        assert status == 200, html
        return html

    def session(self) -> Session:
        return self.factory()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store_url(web_template: Template, backend: Backend, tmp_path: Path) -> str:
    return backend.clone(web_template.url, tmp_path)


@pytest.fixture
def factory(store_url: str) -> Iterator[sessionmaker[Session]]:
    engine = db.make_engine(store_url)
    yield db.make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def config(store_url: str) -> Config:
    return make_config(database_url=store_url, web=WebConf())


@asynccontextmanager
async def browser_on(config: Config, factory: sessionmaker[Session], clock: Clock,
                     web_template: Template) -> AsyncIterator[Web]:
    """The app on aiohttp's test server, and a client of it (not logged in)."""
    app = make_app(lambda: config, factory, clock=clock)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Web(client, factory, clock, web_template)
    finally:
        await client.close()


@pytest.fixture
async def web(config: Config, factory: sessionmaker[Session], clock: Clock,
              web_template: Template) -> AsyncIterator[Web]:
    async with browser_on(config, factory, clock, web_template) as browser:
        yield browser


@pytest.fixture
async def second_browser(config: Config, factory: sessionmaker[Session], clock: Clock,
                         web_template: Template) -> AsyncIterator[Web]:
    """Another browser on the same store (not logged in)."""
    async with browser_on(config, factory, clock, web_template) as browser:
        yield browser


@pytest.fixture
async def taro(web: Web) -> Web:
    status, html = await web.login()
    assert status == 200 and "taro@example.jp" in html
    return web
