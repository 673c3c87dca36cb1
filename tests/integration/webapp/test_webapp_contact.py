"""The contact address screens (seeds 001, 003) and the change notices they and
every other change produce (seed 001): input → 確認 → code → 完了, every
validation message, the password required, tampered confirmations refused,
the login's own contact address even while an admin acts on another mailbox,
and a change event recorded with each saved change."""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import html as html_lib
import re

from sqlalchemy import select, update

from mailadmin.store import change_events, contact
from mailadmin.store.models import ChangeEvent, OutboxMessage, VerificationCode

from .conftest import HANAKO, JIRO, PASSWORD, TARO, Web

OUTSIDE = "taro.home@outside.example"


def h1(html: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert match
    return html_lib.unescape(match.group(1))


def text_of(html: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", html))


def mails_to(web: Web, rcpt: str) -> list[email.message.EmailMessage]:
    with web.session() as s:
        rows = list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    out = []
    for row in rows:
        if rcpt in row.rcpt_tos:
            parsed = email.message_from_bytes(row.message, policy=email.policy.default)
            assert isinstance(parsed, email.message.EmailMessage)
            out.append(parsed)
    return out


def last_code(web: Web, rcpt: str) -> str:
    body = mails_to(web, rcpt)[-1].get_body(("plain",))
    assert body is not None
    match = re.search(r"認証コード: (\d{6})", body.get_content())
    assert match
    return match.group(1)


def events(web: Web, mailbox: str) -> list[change_events.ChangeInfo]:
    with web.session() as s:
        return change_events.pending(s, mailbox)


def contact_of(web: Web, mailbox: str = TARO) -> str | None:
    with web.session() as s:
        found = contact.get_contact(s, mailbox)
    return None if found is None else found.address


async def ask_code(web: Web, address: str = OUTSIDE, password: str = PASSWORD) -> str:
    await web.get("/contact/edit")
    status, html = await web.post("/contact/edit/confirm",
                                  {"address": address, "address_again": address, "password": password})
    assert status == 200 and h1(html) == "連絡先メールアドレス登録・変更確認", html
    return html


async def send_code(web: Web) -> tuple[int, str]:
    fields = dict(re.findall(r'name="(pending|signature)" value="([^"]*)"', web.last_html))
    return await web.post("/contact/edit/send", {k: html_lib.unescape(v) for k, v in fields.items()})


async def register(web: Web, address: str = OUTSIDE) -> str:
    await ask_code(web, address)
    status, html = await send_code(web)
    assert status == 200 and h1(html) == "認証コード入力", html
    status, html = await web.post("/contact/code", {"code": last_code(web, address)})
    assert status == 200, html
    return html


async def test_register_input_confirm_code_done(taro: Web) -> None:
    status, html = await taro.get("/contact")
    assert h1(html) == "連絡先メールアドレス" and "未登録" in html
    html = await ask_code(taro)
    assert OUTSIDE in html and "認証コードを送信" in html
    assert mails_to(taro, OUTSIDE) == []  # nothing sent at the confirm step
    status, html = await send_code(taro)
    assert h1(html) == "認証コード入力" and f"{OUTSIDE} に認証コードを送信しました" in html
    assert "残り入力回数：5 回" in html
    [mail] = mails_to(taro, OUTSIDE)
    assert mail["To"] == OUTSIDE and "認証コード" in mail["Subject"]
    assert contact_of(taro) is None  # not before the code is entered
    status, html = await taro.get("/contact")
    assert f"{OUTSIDE} 宛の認証コードが未入力です" in html
    status, html = await taro.post("/contact/code", {"code": last_code(taro, OUTSIDE)})
    assert status == 200 and h1(html) == "連絡先メールアドレス登録・変更 完了" and OUTSIDE in html
    assert contact_of(taro) == OUTSIDE
    status, html = await taro.get("/")
    assert f"登録済み: {OUTSIDE}" in text_of(html) and 'href="/contact"' in html
    [event] = events(taro, TARO)
    assert event.details["ja"]["title"] == "連絡先メールアドレス"
    assert event.details["en"]["rows"] == [["Contact address", [OUTSIDE]]]
    assert event.also_notify == ()


async def test_every_validation_message(taro: Web) -> None:
    cases = [
        ({"address": "", "address_again": ""}, "連絡先メールアドレスを入力してください。"),
        ({"address": "nope", "address_again": "nope"}, "「nope」はメールアドレスとして正しくありません"),
        ({"address": "Taro@Example.jp", "address_again": "Taro@Example.jp"},
         "このメールアカウント自身は連絡先メールアドレスにできません"),
        ({"address": OUTSIDE, "address_again": "other@outside.example"},
         "連絡先メールアドレスと確認のための再入力が一致しません。"),
    ]
    for data, message in cases:
        await taro.get("/contact/edit")
        status, html = await taro.post("/contact/edit/confirm", {**data, "password": PASSWORD})
        assert status == 400 and message in html, (data, html)
        assert h1(html) == "連絡先メールアドレス登録・変更"
    await taro.get("/contact/edit")
    status, html = await taro.post("/contact/edit/confirm",
                                   {"address": OUTSIDE, "address_again": OUTSIDE, "password": "wrong-1"})
    assert status == 400 and "現在の POP アカウントパスワードが正しくありません。" in html
    assert OUTSIDE in html  # what was typed is kept
    await register(taro)
    await taro.get("/contact/edit")
    status, html = await taro.post("/contact/edit/confirm",
                                   {"address": OUTSIDE.upper(), "address_again": OUTSIDE.upper(),
                                    "password": PASSWORD})
    assert status == 400 and "既に連絡先メールアドレスとして登録されています" in html


async def test_messages_in_english(taro: Web) -> None:
    await taro.get("/lang/en")
    await taro.get("/contact/edit")
    status, html = await taro.post("/contact/edit/confirm",
                                   {"address": TARO, "address_again": TARO, "password": "x"})
    assert status == 400 and "This mail account can&#39;t be its own contact address" in html
    assert "The current password is not right." in html


async def test_tampered_confirmation_is_refused(taro: Web) -> None:
    await ask_code(taro)
    fields = dict(re.findall(r'name="(pending|signature)" value="([^"]*)"', taro.last_html))
    pending = html_lib.unescape(fields["pending"]).replace(OUTSIDE, "evil@hijack.example")
    status, html = await taro.post("/contact/edit/send",
                                   {"pending": pending, "signature": html_lib.unescape(fields["signature"])})
    assert status == 400 and mails_to(taro, "evil@hijack.example") == []
    status, html = await taro.post("/contact/edit/send", {"pending": "{}", "signature": "0" * 64})
    assert status == 400


async def test_wrong_codes_count_and_void_the_code(taro: Web) -> None:
    await ask_code(taro)
    await send_code(taro)
    right = last_code(taro, OUTSIDE)
    wrong = "000000" if right != "000000" else "111111"
    for left in (4, 3, 2, 1):
        status, html = await taro.post("/contact/code", {"code": wrong})
        assert status == 400 and f"認証コードが正しくありません（残り {left} 回）" in html
    status, html = await taro.post("/contact/code", {"code": wrong})
    assert status == 400 and "入力回数の上限に達したため" in html
    status, html = await taro.post("/contact/code", {"code": right})
    assert status == 400 and contact_of(taro) is None
    status, html = await taro.get("/contact/code")
    assert "入力できる認証コードはありません" in html


async def test_expired_and_used_codes(taro: Web) -> None:
    await ask_code(taro)
    await send_code(taro)
    code = last_code(taro, OUTSIDE)
    with taro.session() as s:
        row = s.scalars(select(VerificationCode)).one()
        assert row.expires_at == taro.clock.now + dt.timedelta(hours=24)
    # 24 hours later (the page session would not last that long: the code's end is moved instead)
    with taro.factory.begin() as s:
        s.execute(update(VerificationCode).values(expires_at=taro.clock.now))
    await taro.get("/contact/code")
    status, html = await taro.post("/contact/code", {"code": code})
    assert status == 400 and "有効期限が切れています" in html
    with taro.factory.begin() as s:
        s.execute(update(VerificationCode).values(expires_at=taro.clock.now + dt.timedelta(seconds=1)))
    await taro.get("/contact/code")
    assert (await taro.post("/contact/code", {"code": code}))[0] == 200
    await taro.get("/contact/code")
    status, html = await taro.post("/contact/code", {"code": code})
    assert status == 400 and "入力できる認証コードはありません" in html


async def test_change_notifies_the_old_address_and_remove_needs_the_password(taro: Web) -> None:
    await register(taro)
    html = await register(taro, "taro.new@outside.example")
    assert "変更前の連絡先メールアドレス" in html and OUTSIDE in html
    assert contact_of(taro) == "taro.new@outside.example"
    assert events(taro, TARO)[-1].also_notify == (OUTSIDE,)

    status, html = await taro.get("/contact/remove")
    assert h1(html) == "連絡先メールアドレス削除"
    status, html = await taro.post("/contact/remove/confirm", {"password": "wrong-1"})
    assert status == 400 and "現在の POP アカウントパスワードが正しくありません。" in html
    status, html = await taro.post("/contact/remove/confirm", {"password": PASSWORD})
    assert status == 200 and h1(html) == "連絡先メールアドレス削除確認"
    assert contact_of(taro) == "taro.new@outside.example"  # nothing removed at 確認
    fields = dict(re.findall(r'name="(pending|signature)" value="([^"]*)"', html))
    unescaped = {k: html_lib.unescape(v) for k, v in fields.items()}
    tampered = {**unescaped, "pending": unescaped["pending"].replace("taro.new", "taro.other")}
    assert (await taro.post("/contact/remove/done", tampered))[0] == 400
    status, html = await taro.post("/contact/remove/done", unescaped)
    assert status == 200 and h1(html) == "連絡先メールアドレス削除 完了"
    assert contact_of(taro) is None
    assert events(taro, TARO)[-1].also_notify == ("taro.new@outside.example",)


async def test_code_requests_are_throttled_per_address(taro: Web) -> None:
    for n in range(5):
        await ask_code(taro, f"a{n}@outside.example")
        status, _ = await send_code(taro)
        assert status == 200
    await ask_code(taro, "a9@outside.example")
    status, html = await send_code(taro)
    assert status == 429 and "認証コードの送信回数が上限に達しました" in html
    assert mails_to(taro, "a9@outside.example") == []
    for minutes in (29, 29, 3):  # past the window, the page session kept alive
        taro.clock.advance(minutes=minutes)
        await taro.get("/contact")
    await ask_code(taro, "a9@outside.example")
    assert (await send_code(taro))[0] == 200


async def test_an_acting_admin_edits_its_own_contact_address(taro: Web) -> None:
    await taro.post("/contract/act", {"address": JIRO})
    status, html = await taro.get("/contact")
    assert f"<td>{TARO}</td>" in html
    await register(taro)
    assert contact_of(taro, TARO) == OUTSIDE and contact_of(taro, JIRO) is None


async def test_contact_pages_need_a_login(web: Web) -> None:
    response = await web.client.get("/contact", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/login"


# ---------------------------------------------------------------- change events of other changes


async def test_a_hijackers_forward_is_recorded_with_ip_and_login(taro: Web) -> None:
    await taro.get("/forwarding/add")
    await taro.confirm_and_done("/forwarding/add", {"address": "evil@hijack.example", "keep_copy": "no"})
    [event] = events(taro, TARO)
    assert event.login == TARO and event.target == TARO and event.client_ip == "127.0.0.1"
    assert event.details["ja"]["title"] == "転送設定"
    assert ["evil@hijack.example"] in [values for _label, values in event.details["ja"]["rows"]]
    assert event.details["en"]["title"] == "Add a forwarding address"


async def test_nothing_is_recorded_at_the_confirm_step_or_on_failure(taro: Web) -> None:
    await taro.get("/forwarding/add")
    await taro.post("/forwarding/add/confirm", {"address": "x@outside.example", "keep_copy": "no"})
    await taro.post("/forwarding/add/confirm", {"address": TARO, "keep_copy": "no"})
    assert events(taro, TARO) == []


async def test_an_admin_acting_on_a_mailbox_is_recorded_for_both(taro: Web) -> None:
    await taro.post("/contract/act", {"address": JIRO})
    await taro.get("/virus_scan")
    await taro.press_confirm("/virus_scan")
    [for_jiro] = events(taro, JIRO)
    [for_taro] = events(taro, TARO)
    assert for_jiro.login == for_taro.login == TARO and for_jiro.target == for_taro.target == JIRO
    assert events(taro, HANAKO) == []


async def test_password_change_is_recorded_without_the_password(taro: Web) -> None:
    await taro.get("/password")
    status, _ = await taro.post("/password", {"current_password": PASSWORD, "new_password": "Neu-pass-42",
                                              "new_password_again": "Neu-pass-42"})
    assert status == 200
    [event] = events(taro, TARO)
    assert event.details["en"] == {"title": "Change the POP account password",
                                   "rows": [["POP account password", ["Changed"]]]}
    with taro.session() as s:
        stored = s.scalars(select(ChangeEvent)).one()
    assert "Neu-pass-42" not in repr(stored.details)


async def test_a_failed_change_records_nothing(taro: Web) -> None:
    await taro.get("/password")
    await taro.post("/password", {"current_password": "wrong", "new_password": "Neu-pass-42",
                                  "new_password_again": "Neu-pass-42"})
    assert events(taro, TARO) == []


async def test_settings_and_quarantine_changes_are_recorded_in_both_languages(taro: Web) -> None:
    from .test_webapp_flows import quarantine_item

    await taro.get("/spam_scan/edit")
    await taro.confirm_and_done("/spam_scan/edit", {"scan": "on", "quarantine": "on", "notice": "off"})
    item = quarantine_item(taro)
    await taro.get("/quarantine")
    await taro.confirm_and_done("/quarantine/delete", {"id": str(item)})
    recorded = events(taro, TARO)
    assert len(recorded) == 2
    for event in recorded:
        assert event.details["ja"]["title"] != event.details["en"]["title"]
        assert event.details["ja"]["rows"] and event.details["en"]["rows"]
