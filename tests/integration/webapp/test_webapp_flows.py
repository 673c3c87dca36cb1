"""Every screen's input → 確認 → 完了 against the real store (SPEC §2–§9):
what is shown at each step, what is saved, every validation message."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re

from sqlalchemy import select

from mailadmin.store import quarantine, rules
from mailadmin.store.models import OutboxMessage
from mailadmin.store.snapshots import MailboxRules

from .conftest import TARO, Web


def load(web: Web, address: str = TARO) -> MailboxRules:
    with web.session() as s:
        snapshot = rules.load_rules(s, address)
    assert snapshot is not None
    return snapshot


def h1(html: str) -> str:
    match = re.search(r"<h1>(.*?)</h1>", html, re.S)
    assert match
    return html_lib.unescape(match.group(1))


# ---------------------------------------------------------------- forwarding


async def test_forwarding_add_and_delete(taro: Web) -> None:
    status, html = await taro.get("/forwarding")
    assert h1(html) == "転送設定一覧参照"
    status, html = await taro.get("/forwarding/add")
    assert h1(html) == "転送設定"
    status, html = await taro.post("/forwarding/add/confirm",
                                   {"address": "Taro.Backup@Example.COM", "keep_copy": "no"})
    assert status == 200 and h1(html) == "転送設定確認"
    assert "Taro.Backup@example.com" in html and "残さない" in html
    assert load(taro).forwarding == ()  # nothing saved at the confirm step
    done = await taro.press_confirm("/forwarding/add")
    assert h1(done) == "転送設定完了"
    forward = load(taro).forwarding
    assert [(f.address, f.keep_copy) for f in forward] == [("Taro.Backup@example.com", False)]

    await taro.get("/forwarding")
    status, html = await taro.post("/forwarding/delete/confirm", {"address": "Taro.Backup@example.com"})
    assert h1(html) == "転送設定削除確認" and "了解" in html
    done = await taro.press_confirm("/forwarding/delete")
    assert h1(done) == "転送設定削除完了"
    assert load(taro).forwarding == ()


async def test_forwarding_validation(taro: Web) -> None:
    await taro.get("/forwarding/add")
    status, html = await taro.post("/forwarding/add/confirm", {"address": TARO, "keep_copy": "yes"})
    assert status == 400 and "このメールアドレス自身には転送できません" in html
    status, html = await taro.post("/forwarding/add/confirm", {"address": "not an address", "keep_copy": "yes"})
    assert status == 400 and "メールアドレスとして正しくありません" in html
    status, html = await taro.post("/forwarding/add/confirm", {"address": "x@example.org"})
    assert status == 400 and "「残す」か「残さない」か" in html
    assert load(taro).forwarding == ()


# ---------------------------------------------------------------- reject lists


async def test_reject_sender_add_confirm_done(taro: Web) -> None:
    status, html = await taro.get("/reject")
    assert h1(html) == "受信拒否設定選択"
    status, html = await taro.get("/reject/sender")
    assert h1(html) == "From（送信者アドレス）受信拒否設定一覧参照"
    await taro.get("/reject/sender/add")
    status, html = await taro.post("/reject/sender/add/confirm",
                                   {"entries": "Spam.Example\r\n\r\n@bad.example\r\nboss@corp.example\r\n"})
    assert h1(html) == "From（送信者アドレス）受信拒否設定確認"
    assert "spam.example" in html and "@bad.example" in html
    assert load(taro).reject_sender == ()
    done = await taro.press_confirm("/reject/sender/add")
    assert h1(done) == "From（送信者アドレス）受信拒否設定完了"
    assert load(taro).reject_sender == ("spam.example", "@bad.example", "boss@corp.example")


async def test_every_bad_entry_is_named_and_nothing_is_saved(taro: Web) -> None:
    await taro.get("/reject/sender/add")
    await taro.confirm_and_done("/reject/sender/add", {"entries": "old.example"})
    await taro.get("/reject/sender/add")
    typed = "ok.example\nOLD.example\nfoo\n*.wild.example\nok.example\nbad address\n"
    status, html = await taro.post("/reject/sender/add/confirm", {"entries": typed})
    assert status == 400
    messages = re.findall(r"<li>(.*?)</li>", html.split('id="errors"')[1].split("</div>")[0])
    messages = [html_lib.unescape(m) for m in messages]
    assert messages == [
        "2 行目：「old.example」は既に登録されています。",
        "3 行目：「foo」：アドレス部分（＠から前）のみでは確実に判定できません。"
        "メールアドレス全体（user@example.com）かドメイン（example.com）を入力してください。",
        "4 行目：「*.wild.example」：ワイルドカード（*）は使えません。ドメイン（example.com）を指定すると、"
        "そのドメインとサブドメインのすべてのアドレスが対象になります。",
        "5 行目：「ok.example」が重複して入力されています。",
        "6 行目：「bad address」はメールアドレスまたはドメインとして正しくありません"
        "（例：user@example.com、example.com、@example.com）。",
    ]
    # What was typed stays in the form, and nothing was saved.
    assert "*.wild.example" in html
    assert load(taro).reject_sender == ("old.example",)


async def test_more_than_twenty_entries_are_refused(taro: Web) -> None:
    await taro.get("/reject/sender/add")
    typed = "\n".join(f"s{n}.example" for n in range(21))
    status, html = await taro.post("/reject/sender/add/confirm", {"entries": typed})
    assert status == 400 and "21 件入力されています。1 度に登録できるのは 20 件までです。" in html
    assert load(taro).reject_sender == ()


async def test_messages_in_english(taro: Web) -> None:
    taro.client.session.cookie_jar.update_cookies({"lang": "en"}, response_url=taro.client.make_url("/"))
    await taro.get("/reject/subject/add")
    status, html = await taro.post("/reject/subject/add/confirm", {"entries": "x\nｾｰﾙ\n"})
    assert status == 400
    assert "Line 1: “x” is too short: a subject entry needs at least 2 characters." in html_lib.unescape(html)
    assert "Line 2: “ｾｰﾙ” contains half-width katakana" in html_lib.unescape(html)
    status, html = await taro.post("/reject/subject/add/confirm", {"entries": "未承諾広告\nSALE"})
    assert h1(html) == "Reject by Subject: add: confirm"
    done = await taro.press_confirm("/reject/subject/add")
    assert h1(done) == "Reject by Subject: add: done"
    assert load(taro).reject_subject == ("未承諾広告", "SALE")


async def test_delete_selected_entries(taro: Web) -> None:
    await taro.get("/reject/subject/add")
    await taro.confirm_and_done("/reject/subject/add", {"entries": "未承諾広告\n当選\nSALE"})
    status, html = await taro.get("/reject/subject")
    assert "当選" in html and "全て削除" in html
    status, html = await taro.post("/reject/subject/delete/confirm", [("entry", "当選"), ("entry", "SALE")])
    assert h1(html) == "Subject（件名）受信拒否設定削除確認"
    assert load(taro).reject_subject == ("未承諾広告", "当選", "SALE")
    done = await taro.press_confirm("/reject/subject/delete")
    assert h1(done) == "Subject（件名）受信拒否設定削除完了"
    assert load(taro).reject_subject == ("未承諾広告",)


async def test_delete_with_nothing_selected(taro: Web) -> None:
    await taro.get("/reject/subject/add")
    await taro.confirm_and_done("/reject/subject/add", {"entries": "未承諾広告"})
    await taro.get("/reject/subject")
    status, html = await taro.post("/reject/subject/delete/confirm", {})
    assert status == 400 and "削除する項目のチェックボックスを選択してください" in html


async def test_delete_all_takes_two_confirmations(taro: Web) -> None:
    await taro.get("/reject/sender/add")
    await taro.confirm_and_done("/reject/sender/add", {"entries": "a.example\nb.example"})
    await taro.get("/reject/sender")
    status, html = await taro.post("/reject/sender/delete_all/confirm", {})
    assert h1(html) == "From（送信者アドレス）受信拒否設定完全削除確認"
    final = await taro.press_confirm("/reject/sender/delete_all")
    assert h1(final) == "From（送信者アドレス）受信拒否設定完全削除最終確認"
    assert load(taro).reject_sender == ("a.example", "b.example")
    done = await taro.press_confirm("/reject/sender/delete_all")
    assert h1(done) == "From（送信者アドレス）受信拒否設定完全削除完了"
    assert load(taro).reject_sender == ()


async def test_the_final_post_validates_again(taro: Web) -> None:
    await taro.get("/reject/sender/add")
    status, html = await taro.post("/reject/sender/add/confirm", {"entries": "late.example"})
    confirm_page = html
    # The same entry is added from another window before this one is confirmed.
    with taro.session() as s, s.begin():
        rules.add_entries(s, TARO, "reject_sender", ["late.example"], __import__(
            "mailadmin.config.model", fromlist=["LimitsPolicy"]).LimitsPolicy())
    taro.last_html = confirm_page
    done = await taro.press_confirm("/reject/sender/add")
    assert "「late.example」は既に登録されています" in done
    assert load(taro).reject_sender == ("late.example",)


async def test_a_tampered_pending_change_is_refused(taro: Web) -> None:
    await taro.get("/reject/sender/add")
    await taro.post("/reject/sender/add/confirm", {"entries": "fine.example"})
    fields = dict(re.findall(r'name="(pending|signature|step)" value="([^"]*)"', taro.last_html))
    fields = {k: html_lib.unescape(v) for k, v in fields.items()}
    fields["pending"] = fields["pending"].replace("fine.example", "evil.example")
    status, html = await taro.post("/reject/sender/add/done", fields)
    assert status == 400 and "有効ではなくなりました" in html
    # Skipping the final confirmation of delete-all is refused too.
    await taro.get("/reject/sender")
    await taro.post("/reject/sender/delete_all/confirm", {})
    fields = dict(re.findall(r'name="(pending|signature|step)" value="([^"]*)"', taro.last_html))
    fields = {k: html_lib.unescape(v) for k, v in fields.items()} | {"step": "2"}
    status, html = await taro.post("/reject/sender/delete_all/done", fields)
    assert status == 400
    assert load(taro).reject_sender == ()


async def test_header_conditions(taro: Web) -> None:
    status, html = await taro.get("/reject/header")
    assert h1(html) == "ヘッダー受信拒否設定一覧参照"
    await taro.get("/reject/header/edit")
    status, html = await taro.post("/reject/header/edit/confirm",
                                   [("condition", "from_missing"), ("condition", "subject_empty")])
    assert h1(html) == "ヘッダー受信拒否設定確認"
    assert "From：ヘッダ自体が存在しない" in html and "Subject：ヘッダの中身が空（Subject：）" in html
    done = await taro.press_confirm("/reject/header/edit")
    assert h1(done) == "ヘッダー受信拒否設定完了"
    assert load(taro).header_conditions == frozenset({"from_missing", "subject_empty"})
    # Unchecking every box removes the setting.
    await taro.get("/reject/header/edit")
    status, html = await taro.post("/reject/header/edit/confirm", {})
    assert "条件なし（設定を削除します）" in html
    await taro.press_confirm("/reject/header/edit")
    assert load(taro).header_conditions == frozenset()
    # An unknown condition is refused by name.
    await taro.get("/reject/header/edit")
    status, html = await taro.post("/reject/header/edit/confirm", {"condition": "body_missing"})
    assert status == 400 and "body_missing" in html


async def test_allow_list(taro: Web) -> None:
    status, html = await taro.get("/allow")
    assert h1(html) == "受信許可設定一覧参照"
    await taro.get("/allow/add")
    status, html = await taro.post("/allow/add/confirm", {"entries": "friend@example.org"})
    assert h1(html) == "受信許可設定確認"
    done = await taro.press_confirm("/allow/add")
    assert h1(done) == "受信許可設定完了"
    assert load(taro).allow_list == ("friend@example.org",)
    await taro.get("/allow")
    await taro.post("/allow/delete/confirm", {"entry": "friend@example.org"})
    await taro.press_confirm("/allow/delete")
    assert load(taro).allow_list == ()


# ---------------------------------------------------------------- auto-reply


async def test_auto_reply(taro: Web) -> None:
    status, html = await taro.get("/auto_reply")
    assert h1(html) == "自動返信設定一覧参照"
    status, html = await taro.get("/auto_reply/edit")
    assert 'name="pattern_2"' in html  # spare per-sender rows, no script needed
    form = {"rows": "3", "enabled": "on", "subject": "不在のお知らせ", "body": "12月1日まで不在です。\r\n",
            "pattern_0": "boss@corp.example", "subject_0": "出張中", "body_0": "至急の件は携帯へ",
            "pattern_1": "", "subject_1": "", "body_1": "", "start_date": "2026-11-24", "end_date": ""}
    status, html = await taro.post("/auto_reply/edit/confirm", form)
    assert h1(html) == "自動返信設定確認"
    assert "不在のお知らせ" in html and "boss@corp.example" in html
    done = await taro.press_confirm("/auto_reply/edit")
    assert h1(done) == "自動返信設定完了"
    ar = load(taro).auto_reply
    assert ar.enabled and ar.subject == "不在のお知らせ" and ar.body == "12月1日まで不在です。\n"
    assert [(r.pattern, r.subject) for r in ar.per_sender] == [("boss@corp.example", "出張中")]
    assert ar.start_date == dt.date(2026, 11, 24) and ar.end_date is None


async def test_auto_reply_validation(taro: Web) -> None:
    await taro.get("/auto_reply/edit")
    form = {"rows": "2", "enabled": "on", "subject": "", "body": "",
            "pattern_0": "foo", "subject_0": "x", "body_0": "y",
            "pattern_1": "", "subject_1": "件名だけ", "body_1": "",
            "start_date": "2026-12-10", "end_date": "2026-12-01"}
    status, html = await taro.post("/auto_reply/edit/confirm", form)
    assert status == 400
    assert "件名とメッセージを入力してください" in html
    assert "差出人ごとのメッセージ 1：「foo」：アドレス部分" in html
    assert "終了日が開始日より前になっています" in html
    assert 'value="件名だけ"' in html  # what was typed stays
    assert not load(taro).auto_reply.enabled
    status, html = await taro.post("/auto_reply/edit/confirm", {**form, "start_date": "12/10"})
    assert "開始日「12/10」は日付（YYYY-MM-DD）ではありません" in html


# ---------------------------------------------------------------- scans


async def test_virus_scan_toggle(taro: Web) -> None:
    assert load(taro).virus_scan
    status, html = await taro.get("/virus_scan")
    assert h1(html) == "ウィルススキャン設定確認"
    assert "有効（ON） → 無効（OFF）" in html
    done = await taro.press_confirm("/virus_scan")
    assert h1(done) == "ウィルススキャン設定完了"
    assert not load(taro).virus_scan
    status, html = await taro.get("/virus_scan")
    assert "無効（OFF） → 有効（ON）" in html
    await taro.press_confirm("/virus_scan")
    assert load(taro).virus_scan


async def test_spam_scan(taro: Web) -> None:
    status, html = await taro.get("/spam_scan")
    assert h1(html) == "迷惑メールスキャン設定参照"
    status, html = await taro.get("/spam_scan/notice")
    assert h1(html) == "迷惑メールスキャン設定ご利用確認" and "100% 判定することはできません" in html
    status, html = await taro.get("/spam_scan/edit")
    assert h1(html) == "迷惑メールスキャン設定"
    status, html = await taro.post("/spam_scan/edit/confirm", {"scan": "on", "quarantine": "on", "notice": "on"})
    assert h1(html) == "迷惑メールスキャン設定確認"
    done = await taro.press_confirm("/spam_scan/edit")
    assert h1(done) == "迷惑メールスキャン設定完了"
    snapshot = load(taro)
    assert snapshot.spam_scan and snapshot.spam_quarantine and snapshot.quarantine_notice
    status, html = await taro.post("/spam_scan/edit/confirm", {"scan": "off"})
    assert status == 400 and html.count("有効（ON）か無効（OFF）かを選択してください") == 2


# ---------------------------------------------------------------- overseas sending


async def test_overseas_unlock_extend_restrict(taro: Web) -> None:
    status, html = await taro.get("/overseas")
    assert h1(html) == "国外からのメール送信制限設定"
    assert "制限中" in html
    assert '<a href="https://db-ip.com"' in html and "IP Geolocation by DB-IP" in html
    status, html = await taro.post("/overseas/confirm", {"action": "unlock"})
    assert h1(html) == "国外からのメール送信制限設定確認"
    # 03:00 UTC + 7 days = 12:00 in Tokyo on 30 November.
    assert "解除中（2026年11月30日 12時00分（日本時間） まで）" in html
    done = await taro.press_confirm("/overseas")
    assert h1(done) == "国外からのメール送信制限設定完了"
    start = taro.clock.now
    assert load(taro).overseas_unlocked_until == start + dt.timedelta(days=7)
    status, html = await taro.get("/")
    assert "解除中" in html and "2026年11月30日 12時00分（日本時間） まで" in html

    taro.clock.advance(days=2)
    await taro.login()  # the idle session ended meanwhile
    status, html = await taro.get("/overseas")
    assert "すぐに制限する" in html and "延長" in html
    await taro.post("/overseas/confirm", {"action": "extend"})
    await taro.press_confirm("/overseas")
    assert load(taro).overseas_unlocked_until == start + dt.timedelta(days=9)

    await taro.get("/overseas")
    await taro.post("/overseas/confirm", {"action": "restrict"})
    await taro.press_confirm("/overseas")
    assert load(taro).overseas_unlocked_until is None
    status, html = await taro.post("/overseas/confirm", {"action": "extend"})
    assert status == 400 and "「解除中」ではないため延長できません" in html


async def test_overseas_in_english_names_the_zone(taro: Web) -> None:
    taro.client.session.cookie_jar.update_cookies({"lang": "en"}, response_url=taro.client.make_url("/"))
    await taro.get("/overseas")
    status, html = await taro.post("/overseas/confirm", {"action": "unlock"})
    assert "Unlocked until 2026-11-30 12:00 (Japan time, Asia/Tokyo; 2026-11-30 03:00 UTC)" in html


async def test_unlock_ends_by_itself(taro: Web) -> None:
    await taro.get("/overseas")
    await taro.confirm_and_done("/overseas", {"action": "unlock"})
    taro.clock.advance(days=7, seconds=1)
    status, html = await taro.login()
    assert "制限中" in html and "解除中" not in html


# ---------------------------------------------------------------- quarantine


HOSTILE = (
    b"From: =?UTF-8?B?PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==?= <evil@spam.example>\r\n"
    b"To: taro@example.jp\r\n"
    b"Subject: <img src=x onerror=alert(1)> win\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
    b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<html><head><style>p{}</style><script>steal()</script></head>"
    b"<body><p>Hello <b>there</b></p><img src=\"https://tracker.example/p.gif\"></body></html>\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename=\"invoice.exe\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b1--\r\n"
)


def quarantine_item(web: Web, address: str = TARO, subject: str = "<img src=x onerror=alert(1)> win") -> int:
    with web.session() as s, s.begin():
        return quarantine.add_item(s, address, HOSTILE, sender="evil@spam.example", subject=subject,
                                   rule="reject_sender", entry="spam.example", queue_id="Q1",
                                   now=web.clock.now, retention_days=7)


async def test_quarantine_list_and_safe_view(taro: Web) -> None:
    item = quarantine_item(taro)
    status, html = await taro.get("/quarantine")
    assert h1(html) == "迷惑メールフォルダ"
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt; win" in html
    assert "From（送信者アドレス）受信拒否（spam.example）" in html and "あと 7 日" in html
    status, html = await taro.get(f"/quarantine/item/{item}")
    assert status == 200
    assert "<script>" not in html and "steal()" not in html and "tracker.example" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the decoded From, escaped
    assert "Hello there" in html
    assert "invoice.exe" in html and "application/octet-stream" in html
    assert "TVqQ" not in html  # the attachment is never served


async def test_quarantine_release(taro: Web) -> None:
    item = quarantine_item(taro)
    await taro.get(f"/quarantine/item/{item}")
    status, html = await taro.post("/quarantine/release/confirm", {"id": str(item)})
    assert h1(html) == "迷惑メールフォルダから受信箱へ戻す確認"
    done = await taro.press_confirm("/quarantine/release")
    assert "完了" in h1(done)
    with taro.session() as s:
        assert quarantine.list_items(s, TARO) == []
        queued = s.scalars(select(OutboxMessage)).all()
        assert [(m.purpose, m.rcpt_tos) for m in queued] == [("release", [TARO])]


async def test_quarantine_delete(taro: Web) -> None:
    item = quarantine_item(taro)
    await taro.get(f"/quarantine/item/{item}")
    await taro.confirm_and_done("/quarantine/delete", {"id": str(item)})
    with taro.session() as s:
        assert quarantine.list_items(s, TARO) == []
    status, _html = await taro.get(f"/quarantine/item/{item}")
    assert status == 404
