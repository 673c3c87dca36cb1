"""A mailbox's rules: the snapshot the engine reads per recipient and the edits
the page and the CLI make (SPEC §3–§9); the one-document export/import is
:mod:`mailadmin.store.rules_document`.

Every edit is validated by :mod:`mailadmin.mailtext.entries` (the one
validator per entry type) before anything is written, and raises
:class:`~mailadmin.errors.EntryError` with one problem per broken rule,
changing nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Literal

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailadmin.config.model import LimitsPolicy, Policy
from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.mailtext.addresses import canonical_address
from mailadmin.mailtext.entries import (
    HEADER_CONDITIONS,
    AutoReplyText,
    EntryKind,
    check_auto_reply,
    entry_key,
    parse_forward_destination,
    parse_header_conditions,
    validate_entries,
)
from mailadmin.store.mailboxes import mailbox_row
from mailadmin.store.models import (
    RULE_KINDS,
    AutoReplySender,
    Domain,
    ForwardDestination,
    Mailbox,
    RuleEntry,
)
from mailadmin.store.snapshots import AutoReply, Forward, MailboxRules, SenderReply

RuleKind = Literal["reject_sender", "reject_subject", "allow_list"]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def entry_kind(kind: str) -> EntryKind:
    """The entry syntax of the list ``kind`` (one of :data:`RULE_KINDS`)."""
    if kind not in RULE_KINDS:
        raise EntryError(Problem("kind_invalid",
                                 f"'{kind}' is not a list (one of {', '.join(RULE_KINDS)}).",
                                 {"kind": kind}))
    return "subject" if kind == "reject_subject" else "sender"


def new_entry(mailbox_id: int, kind: str, value: str, now: dt.datetime) -> RuleEntry:
    """The row of ``value`` (already validated) in the ``kind`` list."""
    return RuleEntry(mailbox_id=mailbox_id, kind=kind, value=value,
                     normalized=entry_key(entry_kind(kind), value), created_at=now)


def join_conditions(conditions: Iterable[str]) -> str:
    chosen = set(conditions)
    return ",".join(c for c in HEADER_CONDITIONS if c in chosen)


def _split_conditions(stored: str) -> frozenset[str]:
    return frozenset(c for c in stored.split(",") if c)


# ---------------------------------------------------------------- the snapshot


# Built once: per-message lookups then skip SQLAlchemy's statement
# construction and coercion, which cost more than the queries themselves.
_MAILBOX_Q = (
    select(
        Mailbox.id, Mailbox.address, Domain.name, Mailbox.status, Mailbox.header_conditions,
        Mailbox.auto_reply_enabled, Mailbox.auto_reply_subject, Mailbox.auto_reply_body,
        Mailbox.auto_reply_start_date, Mailbox.auto_reply_end_date, Mailbox.virus_scan_enabled,
        Mailbox.spam_scan_enabled, Mailbox.spam_quarantine_enabled,
        Mailbox.quarantine_notice_enabled, Mailbox.overseas_unlocked_until,
    )
    .join(Domain, Domain.id == Mailbox.domain_id)
    .where(Mailbox.address == bindparam("address"))
)
_ENTRIES_Q = (
    select(RuleEntry.kind, RuleEntry.value)
    .where(RuleEntry.mailbox_id == bindparam("mailbox_id"))
    .order_by(RuleEntry.id)
)
_FORWARDS_Q = (
    select(ForwardDestination.address, ForwardDestination.keep_copy)
    .where(ForwardDestination.mailbox_id == bindparam("mailbox_id"))
    .order_by(ForwardDestination.id)
)
_PER_SENDER_Q = (
    select(AutoReplySender.pattern, AutoReplySender.subject, AutoReplySender.body)
    .where(AutoReplySender.mailbox_id == bindparam("mailbox_id"))
    .order_by(AutoReplySender.position)
)


def load_rules(session: Session, address: str) -> MailboxRules | None:
    """Every rule of ``address`` as one frozen snapshot; None for an unknown mailbox.

    Called per recipient per message: four small indexed queries, no cache,
    so a change saved on the page governs the next message (SPEC §10).
    """
    box = session.execute(_MAILBOX_Q, {"address": canonical_address(address)}).first()
    if box is None:
        return None
    (mailbox_id, box_address, domain, status, conditions, ar_enabled, ar_subject, ar_body,
     ar_start, ar_end, virus, spam, spam_quarantine, notice, unlocked_until) = box
    ids = {"mailbox_id": mailbox_id}
    lists: dict[str, list[str]] = {kind: [] for kind in RULE_KINDS}
    for kind, value in session.execute(_ENTRIES_Q, ids):
        lists[kind].append(value)
    forwards = tuple(Forward(a, k) for a, k in session.execute(_FORWARDS_Q, ids))
    per_sender = tuple(SenderReply(p, s, b) for p, s, b in session.execute(_PER_SENDER_Q, ids))
    return MailboxRules(
        address=box_address,
        domain=domain,
        status=status,
        reject_sender=tuple(lists["reject_sender"]),
        reject_subject=tuple(lists["reject_subject"]),
        header_conditions=_split_conditions(conditions),
        allow_list=tuple(lists["allow_list"]),
        forwarding=forwards,
        auto_reply=AutoReply(
            enabled=ar_enabled,
            subject=ar_subject,
            body=ar_body,
            per_sender=per_sender,
            start_date=ar_start,
            end_date=ar_end,
        ),
        virus_scan=virus,
        spam_scan=spam,
        spam_quarantine=spam_quarantine,
        quarantine_notice=notice,
        overseas_unlocked_until=unlocked_until,
    )


# ---------------------------------------------------------------- reject and allow lists


def _values(session: Session, mailbox_id: int, kind: str) -> list[str]:
    return list(session.scalars(
        select(RuleEntry.value)
        .where(RuleEntry.mailbox_id == mailbox_id, RuleEntry.kind == kind)
        .order_by(RuleEntry.id)
    ))


def add_entries(
    session: Session, address: str, kind: str, lines: Sequence[str], limits: LimitsPolicy
) -> list[str]:
    """Add one submission of entries (one per line) to the ``kind`` list
    (``reject_sender``, ``reject_subject`` or ``allow_list``); returns the
    entries added, normalised, in the order typed."""
    box = mailbox_row(session, address)
    accepted = validate_entries(entry_kind(kind), lines, _values(session, box.id, kind), limits)
    now = _utcnow()
    for value in accepted:
        session.add(new_entry(box.id, kind, value, now))
    try:
        session.flush()
    except IntegrityError as exc:  # the same entry added concurrently
        raise EntryError(Problem("duplicate_existing", "An entry is already registered.")) from exc
    return accepted


def delete_entries(
    session: Session, address: str, kind: str, values: Sequence[str] | None
) -> int:
    """Delete the given entries of the ``kind`` list (None: all of them); returns how
    many were deleted.  Entries no longer in the list are ignored."""
    syntax = entry_kind(kind)
    box = mailbox_row(session, address)
    statement = delete(RuleEntry).where(RuleEntry.mailbox_id == box.id, RuleEntry.kind == kind)
    if values is not None:
        keys = {entry_key(syntax, v) for v in values}
        if not keys:
            return 0
        statement = statement.where(RuleEntry.normalized.in_(keys))
    result = session.execute(statement)
    return int(getattr(result, "rowcount", 0))


def set_header_conditions(session: Session, address: str, conditions: Iterable[str]) -> None:
    """Set the header conditions (SPEC §4); an empty set removes the setting."""
    chosen = parse_header_conditions(conditions)
    mailbox_row(session, address).header_conditions = join_conditions(chosen)
    session.flush()


# ---------------------------------------------------------------- forwarding


def _forward_addresses(session: Session, mailbox_id: int) -> list[str]:
    return list(session.scalars(
        select(ForwardDestination.address)
        .where(ForwardDestination.mailbox_id == mailbox_id)
        .order_by(ForwardDestination.id)
    ))


def add_forward(
    session: Session, address: str, destination: str, keep_copy: bool, limits: LimitsPolicy
) -> str:
    """Add a forwarding destination (SPEC §3); returns it as stored."""
    box = mailbox_row(session, address)
    normalised = parse_forward_destination(
        destination, box.address, _forward_addresses(session, box.id), limits
    )
    session.add(ForwardDestination(mailbox_id=box.id, address=normalised, keep_copy=keep_copy))
    try:
        session.flush()
    except IntegrityError as exc:  # the same destination added concurrently
        raise EntryError(Problem("forward_duplicate",
                                 f"'{normalised}' is already a forwarding address.",
                                 {"entry": normalised})) from exc
    return normalised


def delete_forward(session: Session, address: str, destination: str) -> None:
    """Delete a forwarding destination (compared case-insensitively)."""
    box = mailbox_row(session, address)
    wanted = canonical_address(destination)
    for row in session.scalars(
        select(ForwardDestination).where(ForwardDestination.mailbox_id == box.id)
    ):
        if canonical_address(row.address) == wanted:
            session.delete(row)
            session.flush()
            return
    raise NotFound(f"{destination} is not a forwarding address of {box.address}")


# ---------------------------------------------------------------- auto-reply


def validated_auto_reply(
    auto_reply: AutoReply, limits: LimitsPolicy, path: str
) -> tuple[AutoReply, list[Problem]]:
    """``auto_reply`` with normalised sender patterns, and every problem with it
    (:func:`~mailadmin.mailtext.entries.check_auto_reply`; ``path`` names where
    the settings came from: "" for the page, ``auto_reply`` in a document)."""
    patterns, problems = check_auto_reply(AutoReplyText(
        enabled=auto_reply.enabled,
        subject=auto_reply.subject,
        body=auto_reply.body,
        per_sender=tuple((r.pattern, r.subject, r.body) for r in auto_reply.per_sender),
        start_date=auto_reply.start_date,
        end_date=auto_reply.end_date,
    ), limits, path)
    replies = tuple(SenderReply(pattern, r.subject, r.body)
                    for pattern, r in zip(patterns, auto_reply.per_sender))
    return dataclasses.replace(auto_reply, per_sender=replies), problems


def store_auto_reply(session: Session, box: Mailbox, auto_reply: AutoReply) -> None:
    box.auto_reply_enabled = auto_reply.enabled
    box.auto_reply_subject = auto_reply.subject
    box.auto_reply_body = auto_reply.body
    box.auto_reply_start_date = auto_reply.start_date
    box.auto_reply_end_date = auto_reply.end_date
    # A statement, not the ORM collection: the old rows must be gone before
    # the new ones take their positions.
    session.execute(delete(AutoReplySender).where(AutoReplySender.mailbox_id == box.id))
    for position, reply in enumerate(auto_reply.per_sender):
        session.add(AutoReplySender(mailbox_id=box.id, position=position,
                                    pattern=reply.pattern, subject=reply.subject, body=reply.body))


def set_auto_reply(
    session: Session, address: str, auto_reply: AutoReply, limits: LimitsPolicy
) -> None:
    """Replace the auto-reply settings (SPEC §6)."""
    box = mailbox_row(session, address)
    normalised, problems = validated_auto_reply(auto_reply, limits, "")
    if problems:
        raise EntryError(problems)
    store_auto_reply(session, box, normalised)
    session.flush()


# ---------------------------------------------------------------- scans and overseas sending


def set_virus_scan(session: Session, address: str, on: bool) -> None:
    """Virus scan ON/OFF (SPEC §7)."""
    mailbox_row(session, address).virus_scan_enabled = on
    session.flush()


def set_spam_settings(
    session: Session, address: str, *, scan: bool, quarantine: bool, notice: bool
) -> None:
    """Spam scan, spam quarantine and quarantine notification ON/OFF (SPEC §8)."""
    box = mailbox_row(session, address)
    box.spam_scan_enabled = scan
    box.spam_quarantine_enabled = quarantine
    box.quarantine_notice_enabled = notice
    session.flush()


def overseas_unlock(session: Session, address: str, now: dt.datetime, policy: Policy) -> dt.datetime:
    """Unlock overseas sending (解除中) until ``now`` + the policy maximum; calling it
    again extends the unlock to that time from the new ``now`` (SPEC §9)."""
    until = now + dt.timedelta(days=policy.overseas.unlock_max_days)
    mailbox_row(session, address).overseas_unlocked_until = until
    session.flush()
    return until


def overseas_restrict(session: Session, address: str) -> None:
    """Restrict overseas sending now (制限中)."""
    mailbox_row(session, address).overseas_unlocked_until = None
    session.flush()
