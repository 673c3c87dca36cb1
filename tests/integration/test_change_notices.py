"""The change-notice job (seed 001): a burst of changes within the batch is one
notice, to the confirmed contact address (else the mailbox itself) and to an
old contact address a change names; Japanese and English in one correctly
encoded mail; one process only sends a batch."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.message
import email.policy
import email.utils
from pathlib import Path

import pytest

from mailadmin import jobs
from mailadmin.config.model import WebConf
from mailadmin.store import change_events, contact, mailboxes, outbox
from mailadmin.wiring import Runtime
from tests.fixtures.config import make_config
from tests.fixtures.databases import Backend
from tests.fixtures.runtime import build_runtime

BOX = "taro@example.jp"
CONTACT = "taro.home@outside.example"
OLD = "taro.old@outside.example"
DETAILS = {"ja": {"title": "転送設定", "rows": [["転送先メールアドレス", ["evil@hijack.example"]]]},
           "en": {"title": "Forwarding", "rows": [["Destination", ["evil@hijack.example"]]]}}


class Clock:
    def __init__(self) -> None:
        # The real clock: these messages are parsed as mail, dated now.
        self.now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def runtime(sqlite_backend: Backend, tmp_path: Path, clock: Clock) -> Runtime:
    config = make_config(database_url=sqlite_backend.migrated(tmp_path), web=WebConf(base_url="https://mail.example.jp/admin/"))
    return build_runtime(config, clock=clock, mailboxes=(BOX,), open_geoip=False)


def change(rt: Runtime, at: dt.datetime, also: tuple[str, ...] = (), login: str = BOX) -> None:
    with rt.store.session_factory.begin() as s:
        change_events.record(s, mailbox=BOX, now=at, client_ip="203.0.113.9", login=login, target=BOX,
                             change=DETAILS, also_notify=also)


def queued(rt: Runtime) -> list[outbox.OutboxItem]:
    with rt.store.session_factory() as s:
        return [i for i in outbox.due(s, dt.datetime.max.replace(tzinfo=dt.timezone.utc), limit=1000)
                if i.purpose == jobs.CHANGE_NOTICE_PURPOSE]


def parse(item: outbox.OutboxItem) -> email.message.EmailMessage:
    message = email.message_from_bytes(item.message, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


async def test_a_burst_gives_one_notice_to_the_mailbox_without_contact(runtime: Runtime, clock: Clock) -> None:
    start = clock.now
    for seconds in (0, 5, 30):
        change(runtime, start + dt.timedelta(seconds=seconds))
    clock.now = start + dt.timedelta(seconds=59)
    assert await jobs.send_change_notices(runtime) == 0
    clock.now = start + dt.timedelta(seconds=60)
    assert await jobs.send_change_notices(runtime) == 1
    assert await jobs.send_change_notices(runtime) == 0
    [item] = queued(runtime)
    assert item.rcpt_tos == [BOX] and item.mail_from == ""
    message = parse(item)
    assert message["To"] == BOX and message["From"] == "postmaster@example.jp"
    assert message["Auto-Submitted"] == "auto-generated"
    assert "設定変更のお知らせ" in message["Subject"] and "Changes to your mail account" in message["Subject"]
    assert b"=?utf-8?" in item.message.split(b"\r\n\r\n")[0].lower()  # RFC 2047 subject
    part = message.get_body(("plain",))
    assert part is not None and part.get_content_charset() == "utf-8"
    assert part["Content-Transfer-Encoding"] == "quoted-printable"
    text = part.get_content()
    assert text.count("evil@hijack.example") == 6  # three changes, each in both languages
    assert "203.0.113.9" in text and "(Asia/Tokyo)" in text and "UTC" in text
    local = start.astimezone(dt.timezone(dt.timedelta(hours=9)))
    assert f"{local:%Y年%m月%d日 %H時%M分}" in text
    assert f"{start:%Y-%m-%d %H:%M:%S} UTC" in text
    assert "お心当たりのない" in text and "If you did not make these changes" in text
    assert "https://mail.example.jp/admin/reset" in text
    # The Date header is the job's clock (the real one here).
    assert email.utils.parsedate_to_datetime(message["Date"]) == start + dt.timedelta(seconds=60)


async def test_notice_goes_to_the_contact_and_the_old_contact(runtime: Runtime, clock: Clock) -> None:
    with runtime.store.session_factory.begin() as s:
        contact.set_contact(s, BOX, CONTACT, clock.now)
    change(runtime, clock.now, also=(OLD,))
    change(runtime, clock.now + dt.timedelta(seconds=1), login="admin@example.jp")
    clock.now += dt.timedelta(seconds=61)
    assert await jobs.send_change_notices(runtime) == 2
    items = queued(runtime)
    assert sorted(i.rcpt_tos[0] for i in items) == sorted([CONTACT, OLD])
    text = parse(items[0]).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "admin@example.jp（管理者権限で taro@example.jp を操作）" in text
    assert "acting on taro@example.jp" in text


async def test_a_deleted_mailbox_is_told_nothing_and_the_batch_is_closed(runtime: Runtime, clock: Clock) -> None:
    change(runtime, clock.now)
    with runtime.store.session_factory.begin() as s:
        mailboxes.delete_mailbox(s, BOX)
    clock.now += dt.timedelta(seconds=60)
    assert await jobs.send_change_notices(runtime) == 0
    with runtime.store.session_factory() as s:
        assert change_events.pending(s, BOX) == []


async def test_concurrent_jobs_send_one_notice(runtime: Runtime, clock: Clock) -> None:
    change(runtime, clock.now)
    clock.now += dt.timedelta(seconds=60)
    # Three more processes on the same database, each with its own connection pool.
    others = [build_runtime(runtime.config(), clock=runtime.clock, open_geoip=False) for _ in range(3)]
    counts = await asyncio.gather(*(jobs.send_change_notices(rt) for rt in [runtime, *others]))
    assert sum(counts) == 1 and len(queued(runtime)) == 1
