"""Change events (seed 001): recorded per mailbox, batched from the first
change, taken by one job process only."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from mailadmin.store import change_events

from tests.unit.store.conftest import MAILBOX, NOW

OTHER = "hanako@example.jp"
DETAILS = {"ja": {"title": "転送設定", "rows": [["転送先", ["x@outside.example"]]]},
           "en": {"title": "Forwarding", "rows": [["Destination", ["x@outside.example"]]]}}


def record(session: Session, at: dt.datetime, mailbox: str = MAILBOX, also: tuple[str, ...] = ()) -> int:
    return change_events.record(session, mailbox=mailbox, now=at, client_ip="192.0.2.7", login=mailbox,
                                target=mailbox, change=DETAILS, also_notify=also)


def batch_60(mailbox: str) -> int:
    return 60


def test_a_burst_within_the_batch_is_one_batch(session: Session) -> None:
    ids = [record(session, NOW + dt.timedelta(seconds=s)) for s in (0, 10, 59, 60)]
    late = record(session, NOW + dt.timedelta(seconds=61))
    assert change_events.due_batches(session, NOW + dt.timedelta(seconds=59), batch_60) == {}
    due = change_events.due_batches(session, NOW + dt.timedelta(seconds=60), batch_60)
    assert [e.id for e in due[MAILBOX]] == ids
    assert due[MAILBOX][0].details == DETAILS and due[MAILBOX][0].client_ip == "192.0.2.7"
    assert change_events.take(session, ids, NOW + dt.timedelta(seconds=60))
    # The change after the batch starts the next one.
    assert change_events.due_batches(session, NOW + dt.timedelta(seconds=120), batch_60) == {}
    assert [e.id for e in change_events.due_batches(
        session, NOW + dt.timedelta(seconds=121), batch_60)[MAILBOX]] == [late]


def test_batches_are_per_mailbox_and_per_policy(session: Session) -> None:
    record(session, NOW)
    record(session, NOW, mailbox=OTHER)
    due = change_events.due_batches(session, NOW + dt.timedelta(seconds=30),
                                    lambda m: 30 if m == OTHER else 60)
    assert list(due) == [OTHER]


def test_take_is_once(session: Session) -> None:
    ids = [record(session, NOW), record(session, NOW)]
    assert change_events.take(session, ids, NOW)
    assert not change_events.take(session, ids, NOW)
    assert change_events.pending(session, MAILBOX) == []


def test_old_contact_addresses_are_kept_with_the_event(session: Session) -> None:
    record(session, NOW, also=("old@outside.example", "old@outside.example", ""))
    [event] = change_events.pending(session, MAILBOX)
    assert event.also_notify == ("old@outside.example",)


def test_purge_keeps_what_is_not_told(session: Session) -> None:
    told = record(session, NOW)
    record(session, NOW)
    change_events.take(session, [told], NOW)
    assert change_events.purge_notified(session, NOW + dt.timedelta(days=1)) == 1
    assert len(change_events.pending(session, MAILBOX)) == 1
