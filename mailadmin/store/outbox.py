"""The outbox: every message the daemon sends is stored here first (SPEC §10).

Auto-replies, forwards, virus reports, quarantine notices, released and
re-injected copies are enqueued in the same transaction as the decision that
made them; the background job sends what is due through the relay and marks
it sent, or failed with an exponential backoff (1 minute, doubling, at most
1 hour), so a relay that is down delays mail but never drops it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.orm import Session

from mailadmin.errors import NotFound
from mailadmin.store.models import OutboxMessage

FIRST_RETRY_SECONDS = 60
MAX_RETRY_SECONDS = 3600
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One queued message; ``mail_from == ""`` is the null sender ``<>``."""

    id: int
    purpose: str
    mail_from: str
    rcpt_tos: list[str]
    message: bytes
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    attempts: int
    last_error: str | None


def _item(row: OutboxMessage) -> OutboxItem:
    return OutboxItem(
        id=row.id,
        purpose=row.purpose,
        mail_from=row.mail_from,
        rcpt_tos=list(row.rcpt_tos),
        message=row.message,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        attempts=row.attempts,
        last_error=row.last_error,
    )


def enqueue(
    session: Session,
    *,
    purpose: str,
    mail_from: str,
    rcpt_tos: Sequence[str],
    message: bytes,
    now: dt.datetime,
) -> int:
    """Queue ``message`` for ``rcpt_tos``; due at once.  Returns its id."""
    if not rcpt_tos:
        raise ValueError("an outbox message needs at least one recipient")
    row = OutboxMessage(
        purpose=purpose,
        mail_from=mail_from,
        rcpt_tos=list(rcpt_tos),
        message=message,
        created_at=now,
        next_attempt_at=now,
        attempts=0,
    )
    session.add(row)
    session.flush()
    return row.id


def due(session: Session, now: dt.datetime, limit: int = 50) -> list[OutboxItem]:
    """Unsent messages whose next attempt is at or before ``now``, oldest first."""
    rows = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    return [_item(row) for row in rows]


def _row(session: Session, item_id: int) -> OutboxMessage:
    row = session.get(OutboxMessage, item_id)
    if row is None:
        raise NotFound(f"outbox message {item_id} does not exist")
    return row


def mark_sent(session: Session, item_id: int, now: dt.datetime) -> None:
    """The relay accepted the message."""
    row = _row(session, item_id)
    row.sent_at = now
    session.flush()


def retry_delay(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt (1, 2, 4 … minutes, at most 1 hour)."""
    seconds = FIRST_RETRY_SECONDS * 2 ** min(max(attempts - 1, 0), 16)
    return dt.timedelta(seconds=min(seconds, MAX_RETRY_SECONDS))


def mark_failed(session: Session, item_id: int, now: dt.datetime, error: str) -> dt.datetime:
    """The relay refused or could not be reached; returns when the message is due again."""
    row = _row(session, item_id)
    row.attempts += 1
    row.last_error = error[:MAX_ERROR_LENGTH]
    row.next_attempt_at = now + retry_delay(row.attempts)
    session.flush()
    return row.next_attempt_at


def pending_count(session: Session) -> int:
    """Messages not sent yet (a metric: a growing number means the relay is down)."""
    count = session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
    )
    return int(count or 0)


def purge_sent(session: Session, older_than: dt.datetime) -> int:
    """Delete messages sent before ``older_than``."""
    result = cast(
        CursorResult[Any],
        session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at < older_than
            )
        ),
    )
    return result.rowcount
