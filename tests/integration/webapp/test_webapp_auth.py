"""Login, sessions, CSRF, throttling, forced password change, password rule,
language choice and security headers of the admin page (SPEC §1, §2)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from mailadmin.config.model import Policy, WebConf
from mailadmin.store import mailboxes
from mailadmin.store.models import Mailbox
from mailadmin.store.models import WebSession
from mailadmin.passwords import verify_password
from mailadmin.webapp.page import IDLE_TIMEOUT_SECONDS, SESSION_COOKIE
from tests.fixtures.config import make_config

from .conftest import HANAKO, NEWBIE, PASSWORD, SUSPENDED, TARO, Web

GENERIC = "メールアドレスまたはパスワードが正しくないか"


def session_cookie(web: Web) -> str | None:
    for cookie in web.client.session.cookie_jar:
        if cookie.key == SESSION_COOKIE:
            return cookie.value
    return None


def use_token(web: Web, token: str | None) -> None:
    """Make the browser present ``token`` (and nothing else) as its session."""
    jar = web.client.session.cookie_jar
    jar.clear(lambda c: c.key == SESSION_COOKIE)
    jar.update_cookies({SESSION_COOKIE: token or ""}, response_url=web.client.make_url("/"))


async def test_login_shows_the_account_page(web: Web) -> None:
    status, html = await web.login()
    assert status == 200
    assert "メールアカウント情報参照" in html and TARO in html
    assert "smtp.example.jp" in html and "pop.example.jp" in html


@pytest.mark.parametrize("address, password", [
    (TARO, "wrong-pass1"),          # wrong password
    ("nobody@example.jp", PASSWORD),  # unknown address
    (SUSPENDED, PASSWORD),           # suspended mailbox, right password
    ("", ""),
])
async def test_every_failed_login_gets_the_same_message(web: Web, address: str, password: str) -> None:
    status, html = await web.login(address, password)
    assert status == 401
    assert GENERIC in html
    assert session_cookie(web) is None


async def test_pages_need_a_login(web: Web) -> None:
    for path in ("/", "/forwarding", "/reject/sender", "/quarantine", "/password", "/overseas"):
        response = await web.client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"] == "/login"


async def test_login_rotates_the_session(web: Web) -> None:
    await web.login()
    first = session_cookie(web)
    await web.login()  # logging in again from the same browser
    second = session_cookie(web)
    assert first and second and first != second
    # The old token no longer opens anything.
    use_token(web, first)
    response = await web.client.get("/", allow_redirects=False)
    assert response.status == 303


async def test_session_cookie_flags(web: Web) -> None:
    await web.get("/login")
    response = await web.client.post("/login", data={"address": TARO, "password": PASSWORD,
                                                      "csrf": web.csrf()}, allow_redirects=False)
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    with web.session() as s:
        stored = s.scalars(select(WebSession.token_hash)).all()
    # Only a hash of the token is in the store.
    assert stored and session_cookie(web) not in stored


async def test_secure_cookie_and_prefix_under_an_https_base_url(store_url: str, factory, clock) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestClient, TestServer
    from mailadmin.webapp.app import make_app

    config = make_config(database_url=store_url, web=WebConf(base_url="https://mail.example.jp/admin/"))
    client = TestClient(TestServer(make_app(lambda: config, factory, clock=clock)))
    await client.start_server()
    try:
        page = await client.get("/admin/login")
        assert page.status == 200
        html = await page.text()
        assert 'action="/admin/login"' in html
        cookie = page.headers.get("Set-Cookie", "")
        assert "Secure" in cookie and "Path=/admin" in cookie
    finally:
        await client.close()


async def test_logout_ends_the_session(taro: Web) -> None:
    token = session_cookie(taro)
    await taro.get("/")
    status, html = await taro.post("/logout")
    assert "メールアドレスログイン" in html
    use_token(taro, token)
    response = await taro.client.get("/", allow_redirects=False)
    assert response.status == 303


async def test_idle_session_expires(taro: Web) -> None:
    taro.clock.advance(seconds=IDLE_TIMEOUT_SECONDS - 60)
    assert (await taro.client.get("/", allow_redirects=False)).status == 200
    taro.clock.advance(seconds=IDLE_TIMEOUT_SECONDS - 60)  # activity restarted the clock
    assert (await taro.client.get("/", allow_redirects=False)).status == 200
    taro.clock.advance(seconds=IDLE_TIMEOUT_SECONDS + 1)
    response = await taro.client.get("/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"


async def test_a_suspended_mailbox_is_logged_out(taro: Web) -> None:
    with taro.session() as s, s.begin():
        mailboxes.set_status(s, TARO, "suspended")
    response = await taro.client.get("/", allow_redirects=False)
    assert response.status == 303


async def test_throttled_per_address(web: Web) -> None:
    limit = Policy().login.max_failures_per_address
    for _ in range(limit):
        status, _html = await web.login(TARO, "wrong-pass1")
        assert status == 401
    # Even the right password is refused now, with its own message.
    status, html = await web.login(TARO, PASSWORD)
    assert status == 429 and "しばらくログインできません" in html
    # Another address from the same client is not affected yet.
    status, _html = await web.login(HANAKO, "Hanak0-pass")
    assert status == 200
    # After the window the address can log in again.
    web.clock.advance(minutes=Policy().login.window_minutes + 1)
    status, _html = await web.login(TARO, PASSWORD)
    assert status == 200


async def test_throttled_per_client_ip(web: Web) -> None:
    limit = Policy().login.max_failures_per_ip
    ip = {"X-Forwarded-For": "198.51.100.7"}
    await web.get("/login")
    for n in range(limit):
        status, _html = await web.post("/login", {"address": f"guess{n}@example.jp",
                                                  "password": "x1x1x1"}, headers=ip)
        assert status == 401
    status, html = await web.post("/login", {"address": TARO, "password": PASSWORD}, headers=ip)
    assert status == 429
    # Another client is not throttled.
    status, _html = await web.post("/login", {"address": TARO, "password": PASSWORD},
                                   headers={"X-Forwarded-For": "198.51.100.8"})
    assert status == 200


async def test_a_successful_login_clears_the_address_failures(web: Web) -> None:
    limit = Policy().login.max_failures_per_address
    for _ in range(limit - 1):
        await web.login(TARO, "wrong-pass1")
    assert (await web.login(TARO, PASSWORD))[0] == 200
    for _ in range(limit - 1):
        await web.login(TARO, "wrong-pass1")
    assert (await web.login(TARO, PASSWORD))[0] == 200


async def test_csrf_token_is_required_for_every_post(taro: Web) -> None:
    await taro.get("/reject/sender/add")
    for token in ("", "forged-token"):
        status, html = await taro.post("/reject/sender/add/confirm", {"entries": "spam.example"},
                                       csrf=token)
        assert status == 403
        assert "有効期限が切れているか" in html
    response = await taro.client.post("/logout", data={})
    assert response.status == 403
    # Still logged in: the forged logout did nothing.
    assert (await taro.client.get("/", allow_redirects=False)).status == 200


async def test_login_form_has_a_csrf_token(web: Web) -> None:
    status, _html = await web.post("/login", {"address": TARO, "password": PASSWORD}, csrf="x")
    assert status == 403


async def test_first_login_must_change_the_temporary_password(web: Web) -> None:
    status, html = await web.login(NEWBIE, web.template.newbie_password)
    assert status == 200
    assert "仮ログインパスワードでログインしました" in html
    for path in ("/", "/forwarding", "/quarantine", "/reject/sender", "/overseas"):
        response = await web.client.get(path, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/password", path
    # A change is refused too.
    await web.get("/password")
    response = await web.client.post("/virus_scan/confirm", data={"csrf": web.csrf(), "on": "off"},
                                     allow_redirects=False)
    assert response.status == 303
    status, html = await web.post("/password", {
        "current_password": web.template.newbie_password,
        "new_password": "MyOwn-pass9", "new_password_again": "MyOwn-pass9"})
    assert status == 200 and "POP アカウントパスワード変更完了" in html
    status, html = await web.get("/")
    assert status == 200 and "メールアカウント情報参照" in html
    with web.session() as s:
        row = s.scalar(select(Mailbox).where(Mailbox.address == NEWBIE))
        assert row is not None and not row.must_change_password
        assert verify_password(row.password_hash, "MyOwn-pass9")


async def test_password_change_names_every_broken_rule(taro: Web) -> None:
    await taro.get("/password")
    status, html = await taro.post("/password", {
        "current_password": "not-it-1", "new_password": "ab#", "new_password_again": "abc"})
    assert status == 400
    for text in ("現在の POP アカウントパスワードが正しくありません",
                 "6 文字以上にしてください（現在 3 文字）",
                 "使用できない文字が含まれています",
                 "数字（0～9）を 1 文字以上",
                 "一致しません"):
        assert text in html, text
    assert "登録されていません。次の 5 件を修正してください。" in html
    with taro.session() as s:
        row = s.scalar(select(Mailbox).where(Mailbox.address == TARO))
        assert row is not None and verify_password(row.password_hash, PASSWORD)


async def test_password_change_in_english_and_other_sessions_end(web: Web) -> None:
    other = web.client.session  # the first browser
    await web.login()
    first_token = session_cookie(web)
    other.cookie_jar.update_cookies({"lang": "en"}, response_url=web.client.make_url("/"))
    await web.get("/password")
    status, html = await web.post("/password", {
        "current_password": PASSWORD, "new_password": "abcdefgh", "new_password_again": "abcdefgh"})
    assert status == 400 and "at least one digit" in html
    status, html = await web.post("/password", {
        "current_password": PASSWORD, "new_password": "N3w-password", "new_password_again": "N3w-password"})
    assert status == 200 and "The password has been changed" in html
    new_token = session_cookie(web)
    assert new_token and new_token != first_token
    with web.session() as s:
        assert s.scalar(select(func.count()).select_from(WebSession)) == 1
    # The new session works (its CSRF token too).
    await web.get("/")
    status, html = await web.post("/logout")
    assert "Log in with your mail address" in html


@pytest.mark.parametrize("accept, expected", [
    ("en-US,en;q=0.9", "Account overview"),
    ("ja,en;q=0.5", "メールアカウント情報参照"),
    ("fr-FR, en;q=0.3", "Account overview"),
    ("de", "メールアカウント情報参照"),
    ("en;q=0.2, ja;q=0.8", "メールアカウント情報参照"),
])
async def test_language_from_accept_language(taro: Web, accept: str, expected: str) -> None:
    status, html = await taro.get("/", headers={"Accept-Language": accept})
    assert status == 200 and f"<h1>{expected}</h1>" in html


async def test_language_switch_sets_a_cookie_and_returns(taro: Web) -> None:
    response = await taro.client.get("/lang/en?next=/forwarding", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/forwarding"
    status, html = await taro.get("/forwarding", headers={"Accept-Language": "ja"})
    assert "Forwarding addresses" in html and 'lang="en"' in html
    response = await taro.client.get("/lang/ja?next=//evil.example/x", allow_redirects=False)
    assert response.headers["Location"] == "/"
    response = await taro.client.get("/lang/ja?next=https://evil.example/", allow_redirects=False)
    assert response.headers["Location"] == "/"


async def test_security_headers_on_every_answer(web: Web) -> None:
    for path in ("/login", "/", "/no-such-page", "/static/style.css"):
        response = await web.client.get(path, allow_redirects=False)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"


async def test_no_inline_script_or_style(taro: Web) -> None:
    for path in ("/", "/password", "/login", "/overseas", "/auto_reply/edit", "/quarantine"):
        _status, html = await taro.get(path)
        assert "<style" not in html and " style=" not in html, path
        assert "<script>" not in html and "onclick" not in html, path


async def test_show_password_degrades_without_script(taro: Web) -> None:
    _status, html = await taro.get("/password")
    # The checkbox row is hidden until the external script reveals it.
    assert '<p class="reveal" hidden>' in html
    assert 'src="/static/show-password.js' in html
    response = await taro.client.get("/static/show-password.js")
    assert response.status == 200 and "data-reveal" in await response.text()
