"""Browser tier of the admin page: the real ``web`` role (start_web) on a free
loopback port, a temporary SQLite store, and Debian's Chromium driven
headless by Playwright (never ``playwright install``: no downloads).

The server runs in its own thread with its own event loop, so the tests use
Playwright's synchronous API.  Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.config.model import Policy, WebConf
from mailadmin.store import db, mailboxes, quarantine
from tests.fixtures.config import make_config
from mailadmin.wiring import Runtime, Store, utcnow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--headless",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
DOMAIN = "example.jp"
# One mailbox per language walk, each starting with a temporary password.
WALKERS = {"ja": "ichiro@example.jp", "en": "emily@example.jp"}

QUARANTINED = (
    b"From: =?UTF-8?B?5a6J5aOy44KK44K744O844Or?= <news@shop.spam.example>\r\n"
    b"To: someone@example.jp\r\n"
    b"Subject: =?UTF-8?B?44CQ5pyq5om/6Ku+5bqD5ZGK44CR5LuK44Gg44GRIDxiPuWNiumhjTwvYj4=?=\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p>Hello <script>document.title='pwned'</script><img src=\"https://tracker.example/p.gif\"></p>\r\n"
    b"--b1\r\nContent-Type: application/pdf\r\n"
    b"Content-Disposition: attachment; filename=\"price-list.pdf\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
)


@dataclass
class WebServer:
    base_url: str
    factory: sessionmaker[Session]
    passwords: dict[str, str]
    quarantine_ids: dict[str, int]

    def session(self) -> Session:
        return self.factory()


class _ServerThread(threading.Thread):
    def __init__(self, runtime: Runtime) -> None:
        super().__init__(name="web-under-test", daemon=True)
        self.runtime = runtime
        self.ready = threading.Event()
        self.port = 0
        self.error: BaseException | None = None
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None

    def run(self) -> None:
        from mailadmin.listeners import bound_address
        from mailadmin.webapp.app import start_web

        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(start_web("inet:127.0.0.1:0", self.runtime))
            self.port = int(bound_address(self.server).rsplit(":", 1)[1])
        except BaseException as exc:  # reported to the fixture below
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()
        self.server.close()
        pending = asyncio.all_tasks(self.loop)
        for task in pending:  # keep-alive connections of the browser
            task.cancel()
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.join(timeout=10)


@pytest.fixture(scope="session")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    url = f"sqlite:///{tmp_path_factory.mktemp('browser-store') / 'store.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    factory = db.make_session_factory(engine)
    policy = Policy()
    passwords: dict[str, str] = {}
    items: dict[str, int] = {}
    with factory.begin() as session:
        mailboxes.add_domain(session, DOMAIN, smtp_server="smtp.example.jp", pop_server="pop.example.jp")
        for lang, address in WALKERS.items():
            passwords[address] = mailboxes.add_mailbox(session, address, policy)
            items[address] = quarantine.add_item(
                session, address, QUARANTINED, sender="news@shop.spam.example",
                subject="【未承諾広告】今だけ <b>半額</b>", rule="spam", entry="9.5/5.0", queue_id=None,
                now=utcnow(), retention_days=7)
    config = make_config(database_url=url, web=WebConf(listen="inet:127.0.0.1:0"))
    runtime = Runtime(config=lambda: config, store=Store(url, factory), engine=None)  # type: ignore[arg-type]
    thread = _ServerThread(runtime)
    thread.start()
    if not thread.ready.wait(timeout=30):
        raise RuntimeError("the web server did not start within 30 s")
    if thread.error is not None:
        raise thread.error
    try:
        yield WebServer(f"http://127.0.0.1:{thread.port}", factory, passwords, items)
    finally:
        thread.stop()
        engine.dispose()


# Module scope: while Playwright's sync API is open it keeps an event loop
# running in the main thread, and every later asyncio test would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Browser, lang: str) -> tuple[BrowserContext, Page]:
    """A fresh context in ``lang`` (locale and Accept-Language), desktop size,
    and its page with a 10 s default timeout."""
    context = browser.new_context(
        locale="ja-JP" if lang == "ja" else "en-US",
        extra_http_headers={"Accept-Language": "ja" if lang == "ja" else "en-US,en;q=0.9"},
        viewport={"width": 1000, "height": 800},
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    return context, page


def screenshot(page: Any, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
