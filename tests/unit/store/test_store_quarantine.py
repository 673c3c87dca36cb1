"""The quarantine (迷惑メールフォルダ, SPEC §4, §8): kept for the retention, listed,
viewed, released through the outbox, deleted, purged and announced."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from mailadmin.config.model import Policy
from mailadmin.errors import NotFound
from mailadmin.store import mailboxes, outbox, quarantine, rules

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
MAILBOX = "taro@example.jp"
OTHER = "hanako@example.jp"


def add(session: Session, mailbox: str = MAILBOX, *, sender: str = "spam@example.com",
        minutes: int = 0, retention_days: int = 7, message: bytes = b"Subject: buy\r\n\r\nnow\r\n") -> int:
    return quarantine.add_item(
        session, mailbox, message, sender=sender, subject="buy", rule="reject_sender", entry="example.com",
        queue_id="4AbCdEf", now=NOW + dt.timedelta(minutes=minutes), retention_days=retention_days,
    )


@pytest.fixture
def other(session: Session) -> str:
    mailboxes.add_mailbox(session, OTHER, Policy())
    return OTHER


def test_items_are_listed_newest_first_with_their_retention(session: Session, other: str) -> None:
    first = add(session)
    second = add(session, minutes=5, sender="")
    theirs = add(session, other, minutes=1)
    items = quarantine.list_items(session, "Taro@Example.JP")
    assert [i.id for i in items] == [second, first]
    newest = items[0]
    assert newest.mailbox == MAILBOX and newest.sender == "<>"  # the null sender, shown as such
    assert newest.received_at == NOW + dt.timedelta(minutes=5)
    assert newest.expires_at - newest.received_at == dt.timedelta(days=7)
    assert (items[1].sender, items[1].subject, items[1].reason) == (
        "spam@example.com", "buy", "reject_sender:example.com")
    assert [i.id for i in quarantine.list_items(session, None)] == [second, theirs, first]
    assert quarantine.list_items(session, "nobody@example.jp") == []


def test_quarantine_of_an_unknown_mailbox(session: Session) -> None:
    with pytest.raises(NotFound):
        add(session, "nobody@example.jp")


def test_a_mailbox_sees_only_its_own_items(session: Session, other: str) -> None:
    mine = add(session, message=b"mine")
    assert quarantine.get_message(session, mine, MAILBOX) == b"mine"
    assert quarantine.get_message(session, mine) == b"mine"
    assert quarantine.get_item(session, mine, MAILBOX).id == mine
    for attempt in (
        lambda: quarantine.get_message(session, mine, other),
        lambda: quarantine.get_item(session, mine, other),
        lambda: quarantine.release_item(session, mine, other, now=NOW),
        lambda: quarantine.delete_item(session, mine, other),
        lambda: quarantine.get_message(session, 9999),
    ):
        with pytest.raises(NotFound):
            attempt()
    assert [i.id for i in quarantine.list_items(session, MAILBOX)] == [mine]


def test_release_sends_the_message_to_the_inbox_through_the_outbox(session: Session) -> None:
    item = add(session, message=b"original bytes")
    outbox_id = quarantine.release_item(session, item, MAILBOX, now=NOW + dt.timedelta(hours=1))
    assert quarantine.list_items(session, MAILBOX) == []
    (queued,) = outbox.due(session, NOW + dt.timedelta(hours=1))
    assert queued.id == outbox_id
    assert (queued.purpose, queued.mail_from, queued.rcpt_tos, queued.message) == (
        "release", "spam@example.com", [MAILBOX], b"original bytes")


def test_release_of_null_sender_mail_keeps_the_null_sender(session: Session) -> None:
    item = add(session, sender="<>")
    quarantine.release_item(session, item, now=NOW)
    (queued,) = outbox.due(session, NOW)
    assert queued.mail_from == ""


def test_delete_item(session: Session) -> None:
    keep, drop = add(session), add(session, minutes=1)
    quarantine.delete_item(session, drop, MAILBOX)
    assert [i.id for i in quarantine.list_items(session, MAILBOX)] == [keep]
    with pytest.raises(NotFound):
        quarantine.delete_item(session, drop)
    assert outbox.pending_count(session) == 0


def test_purge_deletes_what_is_past_its_retention(session: Session) -> None:
    short = add(session, retention_days=1)
    long = add(session, retention_days=7)
    assert quarantine.purge_expired(session, NOW + dt.timedelta(hours=23)) == 0
    assert quarantine.purge_expired(session, NOW + dt.timedelta(days=1)) == 1
    assert [i.id for i in quarantine.list_items(session, None)] == [long]
    assert quarantine.purge_expired(session, NOW + dt.timedelta(days=8)) == 1
    assert quarantine.list_items(session, None) == []
    del short


def test_pending_notices_only_for_mailboxes_that_want_them(session: Session, other: str) -> None:
    rules.set_spam_settings(session, MAILBOX, scan=True, quarantine=True, notice=True)
    a = add(session)
    b = add(session, minutes=2)
    add(session, other)  # notice OFF for hanako
    expired = add(session, minutes=-60 * 24 * 8)  # already past its retention
    pending = quarantine.pending_notices(session, NOW + dt.timedelta(minutes=3))
    assert list(pending) == [MAILBOX]
    assert [i.id for i in pending[MAILBOX]] == [a, b]  # oldest first, as a notice lists them
    assert expired not in [i.id for i in pending[MAILBOX]]

    quarantine.mark_notified(session, [a], NOW + dt.timedelta(minutes=3))
    c = add(session, minutes=4)
    pending = quarantine.pending_notices(session, NOW + dt.timedelta(minutes=5))
    assert [i.id for i in pending[MAILBOX]] == [b, c]
    quarantine.mark_notified(session, [b, c], NOW + dt.timedelta(minutes=5))
    assert quarantine.pending_notices(session, NOW + dt.timedelta(minutes=5)) == {}
    quarantine.mark_notified(session, [], NOW)  # nothing to do


def test_turning_notices_off_stops_them(session: Session) -> None:
    rules.set_spam_settings(session, MAILBOX, scan=True, quarantine=True, notice=True)
    add(session)
    assert quarantine.pending_notices(session, NOW)
    rules.set_spam_settings(session, MAILBOX, scan=True, quarantine=True, notice=False)
    assert quarantine.pending_notices(session, NOW) == {}
