"""The quarantine notice's one-click links on the page (SPEC §8): opening one
shows a confirm page and changes nothing (link scanners fetch every URL); its
button releases or deletes that one item without a login; used, expired and
altered links are refused, and infected mail is never released."""

from __future__ import annotations

import datetime as dt
import email.utils
import re

import pytest
from sqlalchemy import select

from mailadmin import quarantine_links
from mailadmin.config.model import Config
from mailadmin.store import quarantine
from mailadmin.store.models import OutboxMessage

from .conftest import HANAKO, TARO, Web

CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def add_item(web: Web, address: str = TARO, subject: str = "Cheap pills",
             rule: str = "reject_sender", entry: str = "spam.example") -> quarantine.QuarantineInfo:
    raw = (f"From: a@spam.example\r\nTo: {address}\r\nDate: {email.utils.formatdate()}\r\n"
           f"Subject: {subject}\r\n\r\nbuy\r\n").encode()
    with web.session() as s, s.begin():
        item_id = quarantine.add_item(s, address, raw, sender="a@spam.example", subject=subject,
                                      rule=rule, entry=entry, queue_id=None, now=web.clock.now, retention_days=7)
        return quarantine.get_item(s, item_id)


def link(config: Config, action: str, info: quarantine.QuarantineInfo) -> str:
    secret = quarantine_links.load_secret(config.conf.quarantine_links.secret_file)
    return "/" + quarantine_links.link_path(secret, action, info.id, info.mailbox, info.expires_at)


def items(web: Web, address: str = TARO) -> list[int]:
    with web.session() as s:
        return [i.id for i in quarantine.list_items(s, address)]


def outbox(web: Web) -> list[OutboxMessage]:
    with web.session() as s:
        return list(s.scalars(select(OutboxMessage)).all())


async def press(web: Web, path: str) -> tuple[int, str]:
    """The confirm page's button: a POST with the form's CSRF token."""
    status, page = await web.get(path)
    assert status == 200, page
    match = CSRF.search(page)
    assert match
    return await web.post(path, {}, csrf=match.group(1))


async def test_release_link_confirms_then_releases_that_one_item(web: Web, config: Config) -> None:
    info, other = add_item(web), add_item(web, subject="Other")
    url = link(config, "release", info)
    for _ in range(2):  # a scanner fetching it, then the subscriber: GET never acts
        status, page = await web.get(url)
        assert status == 200 and "隔離されたメールを受信箱へ戻す確認" in page
        assert "Cheap pills" in page and "a@spam.example" in page and TARO in page
    assert items(web) == [other.id, info.id] and outbox(web) == []

    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    status, page = await web.post(url, {}, csrf=token)
    assert status == 200 and "受信箱へ戻す完了" in page
    assert items(web) == [other.id]  # only that one
    [queued] = outbox(web)
    assert (queued.purpose, queued.rcpt_tos) == ("release", [TARO])

    status, page = await web.get(url)  # used
    assert status == 410 and "このリンクは使用済みです" in page
    status, page = await web.post(url, {}, csrf=token)  # pressed again from the old page
    assert status == 410 and len(outbox(web)) == 1


async def test_delete_link(web: Web, config: Config) -> None:
    info = add_item(web)
    status, page = await press(web, link(config, "delete", info))
    assert status == 200 and "削除完了" in page
    assert items(web) == [] and outbox(web) == []
    # The release link of a deleted item is used up too.
    status, _ = await web.get(link(config, "release", info))
    assert status == 410


async def test_altered_links_are_refused(web: Web, config: Config) -> None:
    info, foreign = add_item(web), add_item(web, HANAKO)
    good = link(config, "release", info)
    _, action, item_id, expiry, sig = good.strip("/").split("/")
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    altered = [
        f"/q/release/{item_id}/{expiry}/{flipped}",                     # signature
        f"/q/delete/{item_id}/{expiry}/{sig}",                          # action
        f"/q/release/{foreign.id}/{expiry}/{sig}",                      # another mailbox's item
        f"/q/release/{item_id}/{int(expiry) + 86400}/{sig}",            # a longer life
    ]
    _, page = await web.get(good)
    token = CSRF.search(page).group(1)  # type: ignore[union-attr]
    for url in altered:
        status, page = await web.get(url)
        assert status == 403 and "このリンクは正しくありません" in page, url
        status, _ = await web.post(url, {}, csrf=token)
        assert status == 403, url
    status, _ = await web.get(f"/q/release/{item_id}/{expiry}/not-hex")
    assert status == 403
    status, _ = await web.get(f"/q/release/x/{expiry}/{sig}")
    assert status == 404
    assert sorted(items(web) + items(web, HANAKO)) == sorted([info.id, foreign.id]) and outbox(web) == []


async def test_expired_link_is_refused(web: Web, config: Config) -> None:
    info = add_item(web)
    url = link(config, "release", info)
    web.clock.advance(days=7)  # the end of retention; the purge has not run yet
    status, page = await web.get(url)
    assert status == 410 and "有効期限が切れています" in page
    web.clock.advance(seconds=-1)
    status, _ = await web.get(url)
    assert status == 200


async def test_the_button_needs_the_pages_token(web: Web, config: Config) -> None:
    info = add_item(web)
    url = link(config, "release", info)
    await web.get(url)
    status, _ = await web.post(url, {}, csrf="forged")
    assert status == 403 and items(web) == [info.id]


@pytest.mark.parametrize("lang, text", [("en", "Mail the virus scan found infected can never be released.")])
async def test_infected_mail_is_never_released_by_link(web: Web, config: Config, lang: str, text: str) -> None:
    info = add_item(web, rule="infected", entry="Eicar-Test-Signature")
    web.client.session.cookie_jar.update_cookies({"lang": lang}, response_url=web.client.make_url("/"))
    status, page = await web.get(link(config, "release", info))
    assert status == 403 and text in page
    assert items(web) == [info.id] and outbox(web) == []
    status, page = await press(web, link(config, "delete", info))
    assert status == 200 and "Message deleted" in page and items(web) == []


async def test_a_logged_in_other_mailbox_changes_nothing(web: Web, config: Config) -> None:
    """The link acts on its own item, whoever is logged in in that browser."""
    info = add_item(web)
    await web.login(HANAKO, "Hanak0-pass")
    status, page = await press(web, link(config, "release", info))
    assert status == 200 and items(web) == [] and outbox(web)[0].rcpt_tos == [TARO]


def test_secret_file_is_created_private_and_kept(tmp_path: "pytest.TempPathFactory") -> None:
    path = tmp_path / "sub" / "link.key"  # type: ignore[operator]
    first = quarantine_links.load_secret(str(path))
    assert len(first) >= 32 and (path.stat().st_mode & 0o777) == 0o600
    assert quarantine_links.load_secret(str(path)) == first
    path.write_text("short")
    with pytest.raises(Exception, match="at least 32 bytes"):
        quarantine_links.load_secret(str(path))


def test_links_expire_with_the_item() -> None:
    secret = b"k" * 32
    now = dt.datetime.now(dt.timezone.utc)
    expires = now + dt.timedelta(days=7)
    path = quarantine_links.link_path(secret, "release", 5, "Taro@Example.jp", expires)
    _, action, item_id, expiry, sig = path.split("/")
    state = quarantine_links.verify(secret, action, int(item_id), int(expiry), sig,
                                    item_mailbox="taro@example.jp", item_expires_at=expires, now=now)
    assert state is quarantine_links.LinkState.VALID
    assert quarantine_links.verify(b"x" * 32, action, int(item_id), int(expiry), sig,
                                   item_mailbox="taro@example.jp", item_expires_at=expires,
                                   now=now) is quarantine_links.LinkState.ALTERED
