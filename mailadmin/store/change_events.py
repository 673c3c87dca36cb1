"""Change events: every change saved on the page, kept until its change notice
goes out (seed 001, SPEC §1: "every change made on the page sends a notice").

:func:`record` is called inside the transaction of the change itself, so a
change is never saved without its event, nor an event without its change.
The notice job (``jobs.send_change_notices``) batches them per mailbox: the
events of a mailbox within ``notice_batch_seconds`` of its oldest unsent one
give one notice, sent once that time has passed.  :func:`take` marks a
batch notified with one conditional UPDATE in the transaction that enqueues
the notice, so of several job processes only one sends it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from mailadmin.mailtext.addresses import canonical_address
from mailadmin.store import claims
from mailadmin.store.models import ChangeEvent

# A change's description: per language, its title and the rows the page showed.
Details = dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ChangeInfo:
    id: int
    mailbox: str
    changed_at: dt.datetime
    client_ip: str
    login: str
    target: str
    details: Details
    also_notify: tuple[str, ...]


def _info(row: ChangeEvent) -> ChangeInfo:
    return ChangeInfo(row.id, row.mailbox_address, row.changed_at, row.client_ip, row.login_address,
                      row.target_address, row.details, tuple(row.also_notify))


def record(session: Session, *, mailbox: str, now: dt.datetime, client_ip: str, login: str,
           target: str, change: Details, also_notify: Sequence[str] = ()) -> int:
    """Record a change to be told to ``mailbox``; returns the event's id."""
    row = ChangeEvent(
        mailbox_address=canonical_address(mailbox), changed_at=now, client_ip=client_ip[:64],
        login_address=canonical_address(login), target_address=canonical_address(target),
        details=change, also_notify=[a for a in dict.fromkeys(also_notify) if a], notified_at=None,
    )
    session.add(row)
    session.flush()
    return row.id


def pending(session: Session, mailbox: str) -> list[ChangeInfo]:
    """Events of ``mailbox`` not told yet, oldest first."""
    rows = session.scalars(
        select(ChangeEvent)
        .where(ChangeEvent.mailbox_address == canonical_address(mailbox), ChangeEvent.notified_at.is_(None))
        .order_by(ChangeEvent.changed_at, ChangeEvent.id)
    )
    return [_info(r) for r in rows]


def due_batches(session: Session, now: dt.datetime,
                batch_seconds: Callable[[str], int]) -> dict[str, list[ChangeInfo]]:
    """Per mailbox, the batch whose time has come: the events within
    ``batch_seconds(mailbox)`` of the mailbox's oldest unsent one, once that
    one is at least that old."""
    batches: dict[str, list[ChangeInfo]] = {}
    for mailbox in pending_mailboxes(session):
        events = pending(session, mailbox)
        if not events:
            continue
        end = events[0].changed_at + dt.timedelta(seconds=batch_seconds(mailbox))
        if now >= end:
            batches[mailbox] = [e for e in events if e.changed_at <= end]
    return batches


def pending_mailboxes(session: Session) -> list[str]:
    """Mailboxes with events not told yet."""
    return list(session.scalars(
        select(ChangeEvent.mailbox_address).where(ChangeEvent.notified_at.is_(None)).distinct()
    ))


def take(session: Session, ids: Sequence[int], now: dt.datetime) -> bool:
    """Mark ``ids`` notified unless another process got there first (then False:
    roll back)."""
    return claims.take_for_notice(session, ChangeEvent, ids, now)


def purge_notified(session: Session, older_than: dt.datetime) -> int:
    """Delete events told before ``older_than``."""
    result = cast(CursorResult[Any], session.execute(
        delete(ChangeEvent).where(ChangeEvent.notified_at.is_not(None), ChangeEvent.notified_at < older_than)))
    return result.rowcount
