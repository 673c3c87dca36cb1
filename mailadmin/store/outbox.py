"""The outbox: every message the daemon sends is stored here first (SPEC §10).

Auto-replies, forwards, virus reports, quarantine notices, released and
re-injected copies are enqueued in the same transaction as the decision that
made them; the background job sends what is due through the relay and marks
it sent, or failed with an exponential backoff (1 minute, doubling, at most
1 hour), so a relay that is down delays mail but never drops it.

Several sender processes may drain one store: :func:`claim_due` leases each
item to exactly one of them by moving its ``next_attempt_at`` past the lease
in a conditional UPDATE (one statement per item, so the row count says who
won, on SQLite and PostgreSQL alike).  A sender that dies mid-send leaves the
item to be retried when the lease runs out.

A message the relay refuses permanently (5xx for every recipient) is kept
but never due again (:data:`GIVEN_UP`): retrying would only repeat the
refusal, and mail the daemon created must not circle.  The postmaster sees
it in :func:`undeliverable` and can :func:`requeue` it once the cause is fixed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Table, delete, func, insert, select, update
from sqlalchemy.orm import Session

from mailadmin.errors import NotFound
from mailadmin.store.models import OutboxMessage

FIRST_RETRY_SECONDS = 60
MAX_RETRY_SECONDS = 3600
MAX_ERROR_LENGTH = 2000
# "Never due again": far past any real clock, still a valid timestamp everywhere.
GIVEN_UP = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)


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


_ENQUEUE = insert(cast(Table, OutboxMessage.__table__))


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
    # A Core insert: enqueueing is on every message's path, and the ORM's
    # unit of work costs several times the INSERT itself.
    result = cast(CursorResult[Any], session.execute(_ENQUEUE, {
        "purpose": purpose,
        "mail_from": mail_from,
        "rcpt_tos": list(rcpt_tos),
        "message": message,
        "created_at": now,
        "next_attempt_at": now,
        "attempts": 0,
    }))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _due_query(now: dt.datetime, limit: int) -> Any:
    return (
        select(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )


def claim_due(session: Session, now: dt.datetime, lease_seconds: float, limit: int = 50) -> list[OutboxItem]:
    """Lease up to ``limit`` due messages to the caller for ``lease_seconds``.

    Each item is taken by its own ``UPDATE … WHERE id = :id AND sent_at IS NULL
    AND next_attempt_at <= :now``: of several processes claiming at once,
    exactly one changes the row; the others count 0 and skip it.  Commit
    right after, so the lease is visible to everyone before sending starts.
    """
    lease_until = now + dt.timedelta(seconds=lease_seconds)
    won: list[OutboxItem] = []
    tried: set[int] = set()
    while len(won) < limit:
        query = _due_query(now, limit - len(won))
        if tried:
            # Items another claimer took are skipped, so losing a race never
            # leaves this claimer empty-handed while others are still due.
            query = query.where(OutboxMessage.id.not_in(tried))
        candidates = [_item(row) for row in session.scalars(query)]
        if not candidates:
            break
        for item in candidates:
            tried.add(item.id)
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.id == item.id,
                        OutboxMessage.sent_at.is_(None),
                        OutboxMessage.next_attempt_at <= now,
                    )
                    .values(next_attempt_at=lease_until)
                    .execution_options(synchronize_session=False),
                    execution_options={"preserve_rowcount": True},
                ),
            )
            if result.rowcount == 1:
                won.append(dataclasses.replace(item, next_attempt_at=lease_until))
    # The ORM identity map still holds the rows as selected; later reads must see the lease.
    session.expire_all()
    return won


def due(session: Session, now: dt.datetime, limit: int = 50) -> list[OutboxItem]:
    """Unsent messages whose next attempt is at or before ``now``, oldest first."""
    return [_item(row) for row in session.scalars(_due_query(now, limit))]


def _row(session: Session, item_id: int) -> OutboxMessage:
    row = session.get(OutboxMessage, item_id)
    if row is None:
        raise NotFound(f"outbox message {item_id} does not exist")
    return row


def mark_sent(session: Session, item_id: int, now: dt.datetime, *, error: str | None = None) -> None:
    """The relay accepted the message; ``error`` records the recipients it
    refused while taking the others."""
    row = _row(session, item_id)
    row.sent_at = now
    if error is not None:
        row.last_error = error[:MAX_ERROR_LENGTH]
    session.flush()


def retry_delay(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt (1, 2, 4 … minutes, at most 1 hour)."""
    seconds = FIRST_RETRY_SECONDS * 2 ** min(max(attempts - 1, 0), 16)
    return dt.timedelta(seconds=min(seconds, MAX_RETRY_SECONDS))


def mark_failed(
    session: Session,
    item_id: int,
    now: dt.datetime,
    error: str,
    *,
    remaining_rcpt_tos: Sequence[str] | None = None,
) -> dt.datetime:
    """The relay refused for now or could not be reached; returns when the message
    is due again.  ``remaining_rcpt_tos``: only these recipients are still owed
    the message (the relay took or refused the others for good)."""
    row = _row(session, item_id)
    row.attempts += 1
    row.last_error = error[:MAX_ERROR_LENGTH]
    row.next_attempt_at = now + retry_delay(row.attempts)
    if remaining_rcpt_tos is not None:
        if not remaining_rcpt_tos:
            raise ValueError("a retried outbox message needs at least one recipient")
        row.rcpt_tos = list(remaining_rcpt_tos)
    session.flush()
    return row.next_attempt_at


def mark_undeliverable(session: Session, item_id: int, now: dt.datetime, error: str) -> None:
    """The relay refused the message permanently: keep it, never try it again by itself."""
    row = _row(session, item_id)
    row.attempts += 1
    row.last_error = error[:MAX_ERROR_LENGTH]
    row.next_attempt_at = GIVEN_UP
    session.flush()


def undeliverable(session: Session) -> list[OutboxItem]:
    """Messages given up on after a permanent refusal, oldest first."""
    rows = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at >= GIVEN_UP)
        .order_by(OutboxMessage.id)
    )
    return [_item(row) for row in rows]


def requeue(session: Session, item_id: int, now: dt.datetime) -> None:
    """Make an unsent message due at once (after the postmaster fixed the cause)."""
    row = _row(session, item_id)
    if row.sent_at is not None:
        raise NotFound(f"outbox message {item_id} was already sent")
    row.next_attempt_at = now
    session.flush()


def pending_count(session: Session) -> int:
    """Messages not sent yet and still being tried (a metric: a growing number
    means the relay is down); given-up messages are not counted."""
    count = session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.next_attempt_at < GIVEN_UP)
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
