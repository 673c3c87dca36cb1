"""The quarantine page for a large quarantine (SPEC §4): search by sender or
decoded subject, pages of 50, and several items released or deleted at once
through input → 確認 → 完了, all of them or none."""

from __future__ import annotations

import datetime as dt
import email.header
import email.utils
import html as html_lib
import re

from sqlalchemy import select

from mailadmin.store import quarantine
from mailadmin.store.models import OutboxMessage

from .conftest import HANAKO, TARO, Web


def raw_message(subject: str) -> bytes:
    return (f"From: x@spam.example\r\nTo: {TARO}\r\nDate: {email.utils.formatdate()}\r\n"
            f"Subject: {subject}\r\n\r\nbody\r\n").encode()


def fill(web: Web, count: int, address: str = TARO) -> list[int]:
    """``count`` items, one a minute, the newest last; every tenth from a
    Japanese sale sender with an ISO-2022-JP encoded subject."""
    ids: list[int] = []
    with web.session() as s, s.begin():
        for n in range(count):
            if n % 10 == 0:
                sender, subject = f"sale{n}@shop.example", email.header.Header(
                    f"セール開催 {n}", "iso-2022-jp").encode()
            else:
                sender, subject = f"bulk{n}@news.example", f"Newsletter {n}"
            ids.append(quarantine.add_item(
                s, address, raw_message(subject), sender=sender, subject=subject,
                rule="reject_sender", entry="example", queue_id=None,
                now=web.clock.now - dt.timedelta(minutes=count - n), retention_days=7))
    return ids


def shown_ids(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'name="id" value="(\d+)"', page)]


def items_of(web: Web, address: str = TARO) -> list[int]:
    with web.session() as s:
        return [i.id for i in quarantine.list_items(s, address)]


async def test_pages_of_fifty_newest_first(taro: Web) -> None:
    ids = fill(taro, 120)
    status, page = await taro.get("/quarantine")
    assert status == 200 and "120 件中 1〜50 件目" in page and "1 / 3 ページ" in page
    assert shown_ids(page) == ids[::-1][:50]
    status, page = await taro.get("/quarantine?page=3")
    assert "120 件中 101〜120 件目" in page and shown_ids(page) == ids[::-1][100:]
    assert 'rel="prev"' in page and 'rel="next"' not in page
    status, page = await taro.get("/quarantine?page=99")  # past the end: the last page
    assert shown_ids(page) == ids[::-1][100:]
    status, page = await taro.get("/quarantine?page=junk")
    assert status == 200 and shown_ids(page) == ids[::-1][:50]


async def test_search_by_sender_and_decoded_subject(taro: Web) -> None:
    ids = fill(taro, 120)
    sale = [i for n, i in enumerate(ids) if n % 10 == 0][::-1]
    status, page = await taro.get("/quarantine", params={"q": "shop.example"})
    assert shown_ids(page) == sale and "12 件中 1〜12 件目" in page
    # The subject is stored encoded (ISO-2022-JP); half-width katakana finds it (NFKC).
    status, page = await taro.get("/quarantine", params={"q": "ｾｰﾙ開催"})
    assert shown_ids(page) == sale and "セール開催 110" in page
    status, page = await taro.get("/quarantine", params={"q": "NEWSLETTER 1"})
    assert set(shown_ids(page)) == {ids[n] for n in range(120) if str(n).startswith("1") and n % 10}
    status, page = await taro.get("/quarantine", params={"q": "news", "page": "2"})
    assert "108 件中 51〜100 件目" in page
    assert html_lib.escape("?page=3&q=news") in page  # the pager keeps the search
    status, page = await taro.get("/quarantine", params={"q": "nothing-like-this"})
    assert shown_ids(page) == [] and "「nothing-like-this」に一致するメールはありません。" in page


async def test_release_several_at_once(taro: Web) -> None:
    ids = fill(taro, 60)
    chosen = ids[-3:]
    await taro.get("/quarantine")
    status, page = await taro.post("/quarantine/release/confirm", [("id", str(i)) for i in chosen])
    assert status == 200 and "迷惑メールフォルダから受信箱へ戻す確認" in page
    assert "3 件" in page and "Newsletter 59" in page and "Newsletter 57" in page
    assert items_of(taro) == ids[::-1]  # nothing changed at the confirm step
    done = await taro.press_confirm("/quarantine/release")
    assert "完了" in done
    assert sorted(items_of(taro)) == ids[:-3]
    with taro.session() as s:
        queued = s.scalars(select(OutboxMessage).where(OutboxMessage.purpose == "release")).all()
    assert len(queued) == 3 and all(m.rcpt_tos == [TARO] for m in queued)


async def test_delete_several_at_once_all_or_nothing(taro: Web) -> None:
    ids = fill(taro, 5)
    foreign = fill(taro, 1, HANAKO)[0]
    await taro.get("/quarantine")
    # Another mailbox's item among them: refused as nonexistent, nothing deleted.
    status, page = await taro.post("/quarantine/delete/confirm",
                                   [("id", str(ids[0])), ("id", str(foreign))])
    assert status == 400 and "対象が見つかりません" in page
    assert sorted(items_of(taro)) == ids and items_of(taro, HANAKO) == [foreign]
    await taro.get("/quarantine")
    done = await taro.confirm_and_done("/quarantine/delete", [("id", str(i)) for i in ids[:4]])
    assert "完了" in done
    assert items_of(taro) == [ids[4]]
    with taro.session() as s:
        assert s.scalars(select(OutboxMessage)).all() == []


async def test_nothing_ticked_is_named(taro: Web) -> None:
    fill(taro, 2)
    await taro.get("/quarantine")
    status, page = await taro.post("/quarantine/release/confirm", {})
    assert status == 400 and "対象のメールのチェックボックスを選択してください。" in page
    taro.client.session.cookie_jar.update_cookies({"lang": "en"}, response_url=taro.client.make_url("/"))
    await taro.get("/quarantine")
    status, page = await taro.post("/quarantine/delete/confirm", {})
    assert status == 400 and "Tick the mail to act on." in page
    await taro.get("/quarantine")
    status, page = await taro.post("/quarantine/delete/confirm", [("id", str(n)) for n in range(101)])
    assert status == 400 and "Select at most 100 messages at a time." in page


async def test_infected_mail_is_never_released(taro: Web) -> None:
    with taro.session() as s, s.begin():
        item = quarantine.add_item(s, TARO, raw_message("x"), sender="v@spam.example", subject="x",
                                   rule="infected", entry="Eicar-Test-Signature", queue_id=None,
                                   now=taro.clock.now, retention_days=7)
    await taro.get("/quarantine")
    status, page = await taro.post("/quarantine/release/confirm", {"id": str(item)})
    assert status == 400 and "ウィルスが検出されたメールは受信箱へ戻せません。" in page
    assert items_of(taro) == [item]
    with taro.session() as s:
        assert s.scalars(select(OutboxMessage)).all() == []
