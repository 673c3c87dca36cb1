"""The outbox (SPEC §10): mail the daemon sends is kept until the relay takes it,
retried with a backoff of 1 minute doubling to at most 1 hour."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session

from mailadmin.errors import NotFound
from mailadmin.store import outbox

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


def enqueue(session: Session, purpose: str = "auto_reply", *, seconds: int = 0,
            rcpt_tos: list[str] | None = None) -> int:
    recipients = ["a@example.org"] if rcpt_tos is None else rcpt_tos
    return outbox.enqueue(session, purpose=purpose, mail_from="", rcpt_tos=recipients,
                          message=b"Subject: hi\r\n\r\nbody\r\n", now=NOW + dt.timedelta(seconds=seconds))


def test_enqueued_messages_are_due_at_once_in_order(session: Session) -> None:
    first = enqueue(session)
    second = outbox.enqueue(session, purpose="forward", mail_from="alice@example.org",
                            rcpt_tos=("x@example.net", "y@example.net"), message=b"m", now=NOW)
    later = enqueue(session, seconds=10)
    assert [i.id for i in outbox.due(session, NOW)] == [first, second]
    items = outbox.due(session, NOW + dt.timedelta(seconds=10))
    assert [i.id for i in items] == [first, second, later]
    fwd = items[1]
    assert (fwd.purpose, fwd.mail_from, fwd.rcpt_tos, fwd.message, fwd.attempts, fwd.last_error) == (
        "forward", "alice@example.org", ["x@example.net", "y@example.net"], b"m", 0, None)
    assert fwd.created_at == fwd.next_attempt_at == NOW
    assert items[0].mail_from == ""  # the null sender
    assert [i.id for i in outbox.due(session, NOW + dt.timedelta(seconds=10), limit=2)] == [first, second]
    assert outbox.pending_count(session) == 3


def test_a_message_needs_a_recipient(session: Session) -> None:
    with pytest.raises(ValueError):
        enqueue(session, rcpt_tos=[])
    assert outbox.pending_count(session) == 0


def test_sent_messages_leave_the_queue(session: Session) -> None:
    sent = enqueue(session)
    kept = enqueue(session)
    outbox.mark_sent(session, sent, NOW + dt.timedelta(seconds=1))
    assert [i.id for i in outbox.due(session, NOW + dt.timedelta(days=1))] == [kept]
    assert outbox.pending_count(session) == 1
    assert outbox.purge_sent(session, NOW) == 0
    assert outbox.purge_sent(session, NOW + dt.timedelta(seconds=2)) == 1
    assert outbox.pending_count(session) == 1


@pytest.mark.parametrize(
    ("attempts", "delay_seconds"),
    [(1, 60), (2, 120), (3, 240), (4, 480), (5, 960), (6, 1920), (7, 3600), (8, 3600), (50, 3600)],
)
def test_retry_delay(attempts: int, delay_seconds: int) -> None:
    assert outbox.retry_delay(attempts) == dt.timedelta(seconds=delay_seconds)


def test_failures_back_off_exponentially(session: Session) -> None:
    item = enqueue(session)
    now = NOW
    waits = []
    for _ in range(8):
        due_at = outbox.mark_failed(session, item, now, "451 4.3.0 relay busy")
        waits.append(int((due_at - now).total_seconds()))
        assert outbox.due(session, due_at - dt.timedelta(seconds=1)) == []
        (again,) = outbox.due(session, due_at)
        now = due_at
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert again.attempts == 8 and again.last_error == "451 4.3.0 relay busy"
    assert outbox.pending_count(session) == 1  # kept, never dropped


def test_long_errors_are_cut(session: Session) -> None:
    item = enqueue(session)
    outbox.mark_failed(session, item, NOW, "x" * 10_000)
    (again,) = outbox.due(session, NOW + dt.timedelta(hours=1))
    assert again.last_error is not None and len(again.last_error) == outbox.MAX_ERROR_LENGTH


def test_unknown_ids(session: Session) -> None:
    with pytest.raises(NotFound):
        outbox.mark_sent(session, 404, NOW)
    with pytest.raises(NotFound):
        outbox.mark_failed(session, 404, NOW, "error")
