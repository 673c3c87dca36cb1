"""Password reset by 認証コード (seed 000): the code goes to the contact address
only; the pages answer alike for unknown addresses, mailboxes without a
contact address and mailboxes with one (no enumeration); tries are
throttled per address and per IP; a reset ends every session of the
mailbox and is recorded for its change notice."""

from __future__ import annotations

import email
import email.message
import email.policy
import html as html_lib
import re

from sqlalchemy import select

from mailadmin.store import change_events, contact
from mailadmin.store.models import OutboxMessage

from .conftest import HANAKO, PASSWORD, TARO, Web

CONTACT = "taro.home@outside.example"
NEW = "Brand-new-7"


def h1(html: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert match
    return html_lib.unescape(match.group(1))


def give_contact(web: Web, mailbox: str = TARO, address: str = CONTACT) -> None:
    with web.factory.begin() as s:
        contact.set_contact(s, mailbox, address, web.clock.now)


def outbox_rows(web: Web) -> list[OutboxMessage]:
    with web.session() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def code_sent_to(web: Web, rcpt: str) -> str:
    [row] = [r for r in outbox_rows(web) if rcpt in r.rcpt_tos]
    parsed = email.message_from_bytes(row.message, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    body = parsed.get_body(("plain",))
    assert body is not None
    match = re.search(r"認証コード: (\d{6})", body.get_content())
    assert match
    return match.group(1)


async def request_code(web: Web, address: str) -> tuple[int, str]:
    await web.get("/reset")
    return await web.post("/reset", {"address": address})


async def enter(web: Web, address: str, code: str, new: str = NEW, again: str | None = None) -> tuple[int, str]:
    return await web.post("/reset/code", {"address": address, "code": code, "new_password": new,
                                          "new_password_again": new if again is None else again})


async def test_login_page_links_to_the_reset(web: Web) -> None:
    status, html = await web.get("/login")
    assert 'href="/reset"' in html and "パスワードをお忘れの方" in html
    status, html = await web.get("/reset")
    assert status == 200 and h1(html) == "パスワードの再設定"


async def test_reset_by_code_ends_every_session(web: Web, second_browser: Web) -> None:
    give_contact(web)
    await second_browser.login()
    assert (await second_browser.get("/"))[0] == 200
    status, html = await request_code(web, TARO)
    assert status == 200 and h1(html) == "認証コード入力・新しいパスワード"
    [row] = outbox_rows(web)
    assert row.rcpt_tos == [CONTACT] and TARO not in row.rcpt_tos  # never to the mailbox itself
    code = code_sent_to(web, CONTACT)
    status, html = await enter(web, TARO, code)
    assert status == 200 and h1(html) == "パスワードの再設定 完了"
    response = await second_browser.client.get("/", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"
    status, html = await web.login(TARO, PASSWORD)
    assert status == 401
    status, html = await web.login(TARO, NEW)
    assert status == 200 and "メールアカウント情報参照" in html  # no forced change after a reset
    with web.session() as s:
        [event] = change_events.pending(s, TARO)
    assert event.login == TARO and event.details["en"]["rows"] == [
        ["POP account password", ["Reset with a code (Forgot your password?)"]]]
    # single use
    await web.get("/reset")
    assert (await enter(web, TARO, code, "Other-pass-8"))[0] == 400


def normalised(html: str, address: str) -> str:
    return html.replace(address, "ADDRESS")


async def test_no_enumeration(web: Web) -> None:
    give_contact(web)
    answers = {}
    for address in (TARO, HANAKO, "nobody@example.jp", "nobody@unknown.example"):
        status, html = await request_code(web, address)
        answers[address] = (status, normalised(html, address))
    assert len(set(answers.values())) == 1, answers
    assert answers[TARO][0] == 200
    assert [r.rcpt_tos for r in outbox_rows(web)] == [[CONTACT]]
    wrong = {}
    for address in (TARO, HANAKO, "nobody@example.jp"):
        status, html = await enter(web, address, "000000" if code_sent_to(web, CONTACT) != "000000" else "111111")
        wrong[address] = (status, normalised(html, address))
    assert len(set(wrong.values())) == 1 and wrong[TARO][0] == 400
    assert "認証コードが正しくないか" in wrong[TARO][1]


async def test_validation_messages_do_not_spend_a_try(web: Web) -> None:
    give_contact(web)
    await request_code(web, TARO)
    code = code_sent_to(web, CONTACT)
    status, html = await enter(web, TARO, code, "short")
    assert status == 400 and "パスワードは 6 文字以上にしてください" in html and "数字（0～9）" in html
    status, html = await enter(web, TARO, code, NEW, "Brand-new-8")
    assert status == 400 and "一致しません" in html
    status, html = await enter(web, TARO, "12 34", NEW)
    assert status == 400 and "半角数字 6 桁" in html
    await web.get("/reset")
    status, html = await web.post("/reset", {"address": ""})
    assert status == 400 and "メールアドレスを入力してください。" in html
    assert (await enter(web, TARO, code))[0] == 200  # the right code still works


async def test_code_requests_are_throttled_per_address_and_per_ip(web: Web) -> None:
    give_contact(web)
    for _ in range(5):
        assert (await request_code(web, TARO))[0] == 200
    status, html = await request_code(web, TARO)
    assert status == 429 and "試行回数が上限に達しました" in html
    assert len(outbox_rows(web)) == 5
    # Another address from the same IP still gets through, until the IP's limit
    # (20; the refused request above was not counted).
    for n in range(15):
        assert (await request_code(web, f"x{n}@example.jp"))[0] == 200
    assert (await request_code(web, "y@example.jp"))[0] == 429
    web.clock.advance(minutes=61)
    assert (await request_code(web, TARO))[0] == 200


async def test_wrong_codes_are_throttled(web: Web) -> None:
    give_contact(web)
    await request_code(web, TARO)
    code = code_sent_to(web, CONTACT)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert (await enter(web, TARO, wrong))[0] == 400
    # The code is void after five wrong tries, even the right one.
    assert (await enter(web, TARO, code))[0] == 400
    with web.session() as s:
        assert contact.pending_code(s, TARO, "reset", web.clock.now, contact.ContactPolicy()) is None
    for _ in range(20 - 6):
        await enter(web, "nobody@example.jp", wrong)
    status, html = await enter(web, "nobody@example.jp", wrong)
    assert status == 429 and "試行回数が上限に達しました" in html


async def test_reset_post_needs_the_csrf_cookie(web: Web) -> None:
    await web.get("/reset")
    status, html = await web.post("/reset", {"address": TARO}, csrf="forged")
    assert status == 403 and outbox_rows(web) == []
