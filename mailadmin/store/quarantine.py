"""A mailbox's quarantine (迷惑メールフォルダ, SPEC §4, §8).

Mail caught by the reject lists, the header conditions or the spam scan with
quarantine ON is kept here for the policy's retention (default 7 days) and
then purged.  The subscriber lists it, views a message, releases it to the
inbox (through the outbox, so a relay outage does not lose it) or deletes it;
the notice job asks for the items not yet announced.

Every function that takes ``mailbox`` treats an item of another mailbox as
nonexistent: the web UI passes the logged-in mailbox, the CLI passes None.

``search_items`` gives the page one page of a quarantine that may hold
thousands of items, filtered by sender or subject.  The subject is stored as
received (RFC 2047 encoded words), so the filter compares decoded, NFKC-folded
text in Python over the list columns only (never the messages): full-width and
half-width forms and case match each other, as in the subject reject list.

Mail caught by the virus scan is never held here (it is dropped and reported,
SPEC §7); ``release_item`` refuses an item whose rule says it is infected all
the same, whichever path asks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.mailtext.addresses import canonical_address
from mailadmin.mailtext.headers import decode_header_value, normalize_for_match
from mailadmin.store import outbox
from mailadmin.store.mailboxes import mailbox_row
from mailadmin.store.models import Mailbox, QuarantineItem, join_reason

NULL_SENDER = "<>"


@dataclass(frozen=True, slots=True)
class QuarantineInfo:
    """What the quarantine list shows: date, sender, subject, and the rule and entry that held it (SPEC §4)."""

    id: int
    mailbox: str
    received_at: dt.datetime
    expires_at: dt.datetime
    sender: str
    subject: str
    rule: str
    entry: str

    @property
    def reason(self) -> str:
        return join_reason(self.rule, self.entry)


_INFO_COLUMNS = (
    QuarantineItem.id,
    Mailbox.address,
    QuarantineItem.received_at,
    QuarantineItem.expires_at,
    QuarantineItem.sender,
    QuarantineItem.subject,
    QuarantineItem.rule,
    QuarantineItem.entry,
)


def _info(row: Any) -> QuarantineInfo:
    return QuarantineInfo(
        id=row[0],
        mailbox=row[1],
        received_at=row[2],
        expires_at=row[3],
        sender=row[4],
        subject=row[5],
        rule=row[6],
        entry=row[7],
    )


def add_item(
    session: Session,
    mailbox: str,
    message: bytes,
    *,
    sender: str,
    subject: str,
    rule: str,
    entry: str,
    queue_id: str | None,
    now: dt.datetime,
    retention_days: int,
) -> int:
    """Quarantine ``message`` for ``mailbox`` until ``now + retention_days``; returns its id.

    ``sender`` is the envelope sender, ``"<>"`` for the null sender.
    """
    box = mailbox_row(session, mailbox)
    item = QuarantineItem(
        mailbox_id=box.id,
        received_at=now,
        expires_at=now + dt.timedelta(days=retention_days),
        sender=sender or NULL_SENDER,
        subject=subject,
        rule=rule,
        entry=entry,
        message=message,
        queue_id=queue_id,
    )
    session.add(item)
    session.flush()
    return item.id


def list_items(session: Session, mailbox: str | None) -> list[QuarantineInfo]:
    """Items of ``mailbox`` (every mailbox when None), newest first."""
    query = select(*_INFO_COLUMNS).join(Mailbox, QuarantineItem.mailbox_id == Mailbox.id)
    if mailbox is not None:
        query = query.where(Mailbox.address == canonical_address(mailbox))
    query = query.order_by(QuarantineItem.received_at.desc(), QuarantineItem.id.desc())
    return [_info(row) for row in session.execute(query)]


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of a filtered quarantine list."""

    items: list[QuarantineInfo]
    total: int     # items matching the filter
    offset: int    # index of the first item shown


def _matches(info: QuarantineInfo, needle: str) -> bool:
    return (needle in normalize_for_match(info.sender)
            or needle in normalize_for_match(decode_header_value(info.subject)))


def search_items(session: Session, mailbox: str, query: str = "", *,
                 offset: int = 0, limit: int = 50) -> SearchPage:
    """Items of ``mailbox``, newest first, whose sender or decoded subject
    contains ``query`` (all when empty); ``limit`` of them from ``offset``.
    An offset past the end gives the last page."""
    needle = normalize_for_match(query.strip())
    if not needle:
        counted = (select(func.count(QuarantineItem.id))
                   .join(Mailbox, QuarantineItem.mailbox_id == Mailbox.id)
                   .where(Mailbox.address == canonical_address(mailbox)))
        total = session.scalar(counted) or 0
        offset = _clamp(offset, total, limit)
        query_rows = (select(*_INFO_COLUMNS).join(Mailbox, QuarantineItem.mailbox_id == Mailbox.id)
                      .where(Mailbox.address == canonical_address(mailbox))
                      .order_by(QuarantineItem.received_at.desc(), QuarantineItem.id.desc())
                      .offset(offset).limit(limit))
        return SearchPage([_info(row) for row in session.execute(query_rows)], total, offset)
    found = [i for i in list_items(session, mailbox) if _matches(i, needle)]
    offset = _clamp(offset, len(found), limit)
    return SearchPage(found[offset:offset + limit], len(found), offset)


def _clamp(offset: int, total: int, limit: int) -> int:
    if total == 0:
        return 0
    last = (total - 1) // limit * limit
    return max(0, min(offset - offset % limit, last))


# Rules that mean the virus scan found the message infected; items stored before
# the rule had its own column may carry the scan's name instead.
INFECTED_RULES = frozenset({"infected", "virus_scan", "virus"})


def is_infected(rule: str) -> bool:
    """Whether an item held by ``rule`` was found infected by the virus scan."""
    return rule in INFECTED_RULES


def _item(session: Session, item_id: int, mailbox: str | None) -> QuarantineItem:
    query = select(QuarantineItem).where(QuarantineItem.id == item_id)
    if mailbox is not None:
        query = query.join(Mailbox, QuarantineItem.mailbox_id == Mailbox.id).where(
            Mailbox.address == canonical_address(mailbox)
        )
    item = session.scalar(query)
    if item is None:
        # The same answer whether the item is gone or someone else's.
        raise NotFound(f"quarantine item {item_id} does not exist")
    return item


def get_item(session: Session, item_id: int, mailbox: str | None = None) -> QuarantineInfo:
    """One item's list entry (NotFound when it is not ``mailbox``'s)."""
    query = (
        select(*_INFO_COLUMNS)
        .join(Mailbox, QuarantineItem.mailbox_id == Mailbox.id)
        .where(QuarantineItem.id == item_id)
    )
    if mailbox is not None:
        query = query.where(Mailbox.address == canonical_address(mailbox))
    row = session.execute(query).first()
    if row is None:
        raise NotFound(f"quarantine item {item_id} does not exist")
    return _info(row)


def get_message(session: Session, item_id: int, mailbox: str | None = None) -> bytes:
    """The raw message of an item (NotFound when it is not ``mailbox``'s)."""
    return _item(session, item_id, mailbox).message


def release_item(
    session: Session, item_id: int, mailbox: str | None = None, *, now: dt.datetime
) -> int:
    """Send the item to its mailbox's inbox through the outbox and remove it from the
    quarantine; returns the outbox id."""
    item = _item(session, item_id, mailbox)
    if is_infected(item.rule):
        raise EntryError(Problem("quarantine_infected",
                                 "Mail the virus scan found infected can never be released."))
    owner = session.get(Mailbox, item.mailbox_id)
    assert owner is not None  # the foreign key guarantees it
    outbox_id = outbox.enqueue(
        session,
        purpose="release",
        mail_from="" if item.sender == NULL_SENDER else item.sender,
        rcpt_tos=[owner.address],
        message=item.message,
        now=now,
    )
    session.delete(item)
    session.flush()
    return outbox_id


def delete_item(session: Session, item_id: int, mailbox: str | None = None) -> None:
    """Delete an item (NotFound when it is not ``mailbox``'s)."""
    session.delete(_item(session, item_id, mailbox))
    session.flush()


def purge_expired(session: Session, now: dt.datetime) -> int:
    """Delete every item past its retention; returns how many."""
    result = cast(
        CursorResult[Any],
        session.execute(delete(QuarantineItem).where(QuarantineItem.expires_at <= now)),
    )
    return result.rowcount


def pending_notices(session: Session, now: dt.datetime) -> dict[str, list[QuarantineInfo]]:
    """Items not announced yet, of mailboxes with quarantine notification ON, by
    mailbox (SPEC §8); expired items are left out."""
    query = (
        select(*_INFO_COLUMNS)
        .join(Mailbox, QuarantineItem.mailbox_id == Mailbox.id)
        .where(
            QuarantineItem.notified_at.is_(None),
            QuarantineItem.expires_at > now,
            Mailbox.quarantine_notice_enabled.is_(True),
        )
        .order_by(Mailbox.address, QuarantineItem.received_at, QuarantineItem.id)
    )
    out: dict[str, list[QuarantineInfo]] = {}
    for row in session.execute(query):
        info = _info(row)
        out.setdefault(info.mailbox, []).append(info)
    return out


def mark_notified(session: Session, ids: Iterable[int], now: dt.datetime) -> None:
    """Record that these items were announced in a notice."""
    id_list = list(ids)
    if id_list:
        session.execute(
            update(QuarantineItem).where(QuarantineItem.id.in_(id_list)).values(notified_at=now)
        )


def last_notice_at(session: Session, mailbox: str) -> dt.datetime | None:
    """When ``mailbox`` was last sent a quarantine notice (its items' latest ``notified_at``)."""
    value = session.scalar(
        select(func.max(QuarantineItem.notified_at))
        .join(Mailbox, QuarantineItem.mailbox_id == Mailbox.id)
        .where(Mailbox.address == mailbox)
    )
    if value is None:
        return None
    # MAX() goes around the column type on SQLite: naive text comes back.
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def notice_allowed(session: Session, mailbox: str, now: dt.datetime, interval_minutes: int) -> bool:
    """Whether ``mailbox`` may be sent a quarantine notice at ``now``: none yet,
    or the last one at least ``interval_minutes`` ago (SPEC §8)."""
    last = last_notice_at(session, mailbox)
    return last is None or now >= last + dt.timedelta(minutes=interval_minutes)
