"""A mailbox's rules: the snapshot the engine reads per recipient, the edits the
page and the CLI make, and the one-document export/import (SPEC §3–§9, §11).

Every edit is validated by :mod:`mailadmin.mailtext.entries` (the one
validator per entry type) before anything is written, and raises
:class:`~mailadmin.errors.EntryError` with one problem per broken rule,
changing nothing.

The export document holds every per-mailbox setting::

    {"version": 1, "address": "taro@example.jp",
     "reject_sender": [...], "reject_subject": [...], "header_conditions": [...],
     "allow_list": [...], "forwarding": [{"address": ..., "keep_copy": true}],
     "auto_reply": {"enabled": ..., "subject": ..., "body": ...,
                    "per_sender": [{"pattern": ..., "subject": ..., "body": ...}],
                    "start_date": "YYYY-MM-DD" | null, "end_date": ... | null},
     "virus_scan": true, "spam_scan": true, "spam_quarantine": false,
     "quarantine_notice": false, "overseas_unlocked_until": ISO-8601 | null}

An import replaces every setting: a key left out means its default (empty
lists, auto-reply off, the policy's defaults for the scan settings, overseas
sending restricted).  ``address`` is informational, so one mailbox's rules
can be copied to another.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailadmin.config.model import LimitsPolicy, Policy
from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.mailtext.addresses import canonical_address
from mailadmin.mailtext.entries import (
    parse_forward_destination,
    parse_header_conditions,
    parse_sender_entry,
    parse_subject_entry,
    sender_entry_key,
    subject_entry_key,
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
from mailadmin.store.snapshots import HEADER_CONDITIONS, AutoReply, Forward, MailboxRules, SenderReply

DOCUMENT_VERSION = 1
# A Subject header line stays well inside RFC 5322's 998 octets after encoding.
AUTO_REPLY_SUBJECT_MAX_LENGTH = 200
AUTO_REPLY_BODY_MAX_LENGTH = 10_000

RuleKind = Literal["reject_sender", "reject_subject", "allow_list"]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _entry_kind(kind: str) -> Literal["sender", "subject"]:
    if kind not in RULE_KINDS:
        raise EntryError(Problem("kind_invalid",
                                 f"'{kind}' is not a list (one of {', '.join(RULE_KINDS)}).",
                                 {"kind": kind}))
    return "subject" if kind == "reject_subject" else "sender"


def _entry_key(kind: str, value: str) -> str:
    return subject_entry_key(value) if kind == "reject_subject" else sender_entry_key(value)


def _join_conditions(conditions: Iterable[str]) -> str:
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
    entry_kind = _entry_kind(kind)
    box = mailbox_row(session, address)
    accepted = validate_entries(entry_kind, lines, _values(session, box.id, kind), limits)
    now = _utcnow()
    for value in accepted:
        session.add(RuleEntry(mailbox_id=box.id, kind=kind, value=value,
                              normalized=_entry_key(kind, value), created_at=now))
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
    _entry_kind(kind)
    box = mailbox_row(session, address)
    statement = delete(RuleEntry).where(RuleEntry.mailbox_id == box.id, RuleEntry.kind == kind)
    if values is not None:
        keys = {_entry_key(kind, v) for v in values}
        if not keys:
            return 0
        statement = statement.where(RuleEntry.normalized.in_(keys))
    result = session.execute(statement)
    return int(getattr(result, "rowcount", 0))


def set_header_conditions(session: Session, address: str, conditions: Iterable[str]) -> None:
    """Set the header conditions (SPEC §4); an empty set removes the setting."""
    chosen = parse_header_conditions(conditions)
    mailbox_row(session, address).header_conditions = _join_conditions(chosen)
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


def _text_problems(text: str, field: str, max_length: int, *, multiline: bool) -> list[Problem]:
    problems: list[Problem] = []
    params: dict[str, str | int] = {"field": field}
    if len(text) > max_length:
        problems.append(Problem(
            f"auto_reply_{field}_too_long",
            f"The {field} may have at most {max_length} characters (it has {len(text)}).",
            {**params, "max_length": max_length, "length": len(text)},
        ))
    allowed_controls = "\r\n\t" if multiline else "\t"
    if any(unicodedata.category(c) == "Cc" and c not in allowed_controls for c in text):
        # A line break in a subject would let the text add headers of its own.
        problems.append(Problem(
            f"auto_reply_{field}_control_characters",
            f"The {field} contains control characters"
            + ("." if multiline else " (it must be one line)."),
            params,
        ))
    return problems


def _message_problems(subject: str, body: str, where: str, in_document: bool) -> list[Problem]:
    """Problems of one subject + body; in an import document each is named by its JSON path."""
    subject_problems = _text_problems(subject, "subject", AUTO_REPLY_SUBJECT_MAX_LENGTH, multiline=False)
    body_problems = _text_problems(body, "body", AUTO_REPLY_BODY_MAX_LENGTH, multiline=True)
    if in_document:
        return (_prefixed(subject_problems, f"{where}.subject")
                + _prefixed(body_problems, f"{where}.body"))
    return _prefixed(subject_problems + body_problems, where)


def _prefixed(problems: Iterable[Problem], prefix: str) -> list[Problem]:
    if not prefix:
        return list(problems)
    return [Problem(p.code, f"{prefix}: {p.text}", {**p.params, "path": prefix}) for p in problems]


def _validated_auto_reply(
    auto_reply: AutoReply, limits: LimitsPolicy, path: str
) -> tuple[AutoReply, list[Problem]]:
    """``auto_reply`` with normalised sender patterns, and every problem with it.

    ``path`` names where the settings came from in problem texts ("" for the
    page, ``auto_reply`` in an import document).
    """
    def at(field: str) -> str:
        return f"{path}.{field}" if path else ""

    in_document = bool(path)
    problems = _message_problems(auto_reply.subject, auto_reply.body, path, in_document)
    if auto_reply.enabled and not (auto_reply.subject.strip() and auto_reply.body.strip()):
        problems += _prefixed([Problem(
            "auto_reply_message_empty",
            "An auto-reply needs a subject and a message to be turned on.",
        )], path)
    if len(auto_reply.per_sender) > limits.max_per_sender_replies:
        problems += _prefixed([Problem(
            "auto_reply_too_many_senders",
            f"At most {limits.max_per_sender_replies} per-sender messages can be set.",
            {"max_count": limits.max_per_sender_replies, "count": len(auto_reply.per_sender)},
        )], at("per_sender"))
    replies: list[SenderReply] = []
    seen: set[str] = set()
    for index, reply in enumerate(auto_reply.per_sender):
        where = f"{path}.per_sender[{index}]" if in_document else f"Per-sender message {index + 1}"
        try:
            pattern = parse_sender_entry(reply.pattern, limits.entry_max_length)
        except EntryError as exc:
            problems += _prefixed(exc.problems, where)
            pattern = reply.pattern
        else:
            key = sender_entry_key(pattern)
            if key in seen:
                problems += _prefixed([Problem(
                    "duplicate_in_submission",
                    f"'{pattern}' has a per-sender message already (the first one wins).",
                    {"entry": pattern},
                )], where)
            seen.add(key)
        problems += _message_problems(reply.subject, reply.body, where, in_document)
        if not (reply.subject.strip() and reply.body.strip()):
            problems += _prefixed([Problem(
                "auto_reply_message_empty", "A per-sender message needs a subject and a message.",
            )], where)
        replies.append(SenderReply(pattern, reply.subject, reply.body))
    if (auto_reply.start_date is not None and auto_reply.end_date is not None
            and auto_reply.start_date > auto_reply.end_date):
        problems += _prefixed([Problem(
            "auto_reply_period_invalid",
            "The end date of the auto-reply period is before its start date.",
            {"start_date": auto_reply.start_date.isoformat(),
             "end_date": auto_reply.end_date.isoformat()},
        )], at("end_date"))
    return dataclasses.replace(auto_reply, per_sender=tuple(replies)), problems


def _store_auto_reply(session: Session, box: Mailbox, auto_reply: AutoReply) -> None:
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
    normalised, problems = _validated_auto_reply(auto_reply, limits, "")
    if problems:
        raise EntryError(problems)
    _store_auto_reply(session, box, normalised)
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


# ---------------------------------------------------------------- export / import


def export_rules(session: Session, address: str) -> dict[str, Any]:
    """Every setting of ``address`` as one JSON-ready document (NotFound if none)."""
    box = mailbox_row(session, address)
    rules = load_rules(session, box.address)
    assert rules is not None
    ar = rules.auto_reply
    return {
        "version": DOCUMENT_VERSION,
        "address": rules.address,
        "reject_sender": list(rules.reject_sender),
        "reject_subject": list(rules.reject_subject),
        "header_conditions": [c for c in HEADER_CONDITIONS if c in rules.header_conditions],
        "allow_list": list(rules.allow_list),
        "forwarding": [{"address": f.address, "keep_copy": f.keep_copy} for f in rules.forwarding],
        "auto_reply": {
            "enabled": ar.enabled,
            "subject": ar.subject,
            "body": ar.body,
            "per_sender": [{"pattern": r.pattern, "subject": r.subject, "body": r.body}
                           for r in ar.per_sender],
            "start_date": ar.start_date.isoformat() if ar.start_date else None,
            "end_date": ar.end_date.isoformat() if ar.end_date else None,
        },
        "virus_scan": rules.virus_scan,
        "spam_scan": rules.spam_scan,
        "spam_quarantine": rules.spam_quarantine,
        "quarantine_notice": rules.quarantine_notice,
        "overseas_unlocked_until": (rules.overseas_unlocked_until.isoformat()
                                    if rules.overseas_unlocked_until else None),
    }


_DOCUMENT_KEYS = (
    "version", "address", "reject_sender", "reject_subject", "header_conditions", "allow_list",
    "forwarding", "auto_reply", "virus_scan", "spam_scan", "spam_quarantine",
    "quarantine_notice", "overseas_unlocked_until",
)
_AUTO_REPLY_KEYS = ("enabled", "subject", "body", "per_sender", "start_date", "end_date")
_SENDER_REPLY_KEYS = ("pattern", "subject", "body")
_FORWARD_KEYS = ("address", "keep_copy")


@dataclasses.dataclass(frozen=True, slots=True)
class _Imported:
    lists: dict[str, list[str]]
    header_conditions: frozenset[str]
    forwarding: list[Forward]
    auto_reply: AutoReply
    flags: dict[str, bool]
    overseas_unlocked_until: dt.datetime | None


class _Reader:
    """Collects every problem of a document, each prefixed with its JSON path."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, code: str, text: str, **params: str | int) -> None:
        self.problems.append(Problem(code, f"{path}: {text}", {**params, "path": path}))

    def extend(self, path: str, problems: Iterable[Problem]) -> None:
        self.problems += _prefixed(problems, path)

    def unknown_keys(self, path: str, obj: Mapping[str, Any], known: Sequence[str]) -> None:
        for key in obj:
            if key not in known:
                where = f"{path}.{key}" if path else str(key)
                self.add(where, "unknown_key", "unknown key", key=str(key))

    def boolean(self, path: str, value: Any, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(path, "type_error", "must be true or false")
            return default
        return value

    def text(self, path: str, value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.add(path, "type_error", "must be a string")
            return ""
        return value

    def array(self, path: str, value: Any) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(path, "type_error", "must be a list")
            return []
        return value

    def date(self, path: str, value: Any) -> dt.date | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        self.add(path, "date_invalid", "must be a date (YYYY-MM-DD) or null")
        return None


def _read_entry_list(reader: _Reader, kind: str, raw: Any, limits: LimitsPolicy) -> list[str]:
    items = reader.array(kind, raw)
    if len(items) > limits.max_entries_per_list:
        reader.add(kind, "list_full",
                   f"the list can hold at most {limits.max_entries_per_list} entries "
                   f"({len(items)} given)",
                   max_count=limits.max_entries_per_list, count=len(items))
    accepted: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        path = f"{kind}[{index}]"
        if not isinstance(item, str):
            reader.add(path, "type_error", "must be a string")
            continue
        try:
            if kind == "reject_subject":
                value = parse_subject_entry(item, limits.subject_entry_min_length,
                                            limits.entry_max_length)
            else:
                value = parse_sender_entry(item, limits.entry_max_length)
        except EntryError as exc:
            reader.extend(path, exc.problems)
            continue
        key = _entry_key(kind, value)
        if key in seen:
            reader.add(path, "duplicate_in_submission", f"'{value}' is listed more than once",
                       entry=value)
            continue
        seen.add(key)
        accepted.append(value)
    return accepted


def _read_forwarding(reader: _Reader, raw: Any, mailbox: str, limits: LimitsPolicy) -> list[Forward]:
    forwards: list[Forward] = []
    for index, item in enumerate(reader.array("forwarding", raw)):
        path = f"forwarding[{index}]"
        if not isinstance(item, dict):
            reader.add(path, "type_error", 'must be an object {"address": ..., "keep_copy": ...}')
            continue
        reader.unknown_keys(path, item, _FORWARD_KEYS)
        if not isinstance(item.get("address"), str):
            reader.add(f"{path}.address", "type_error", "must be a string")
            continue
        keep_copy = reader.boolean(f"{path}.keep_copy", item.get("keep_copy"), True)
        try:
            address = parse_forward_destination(
                item["address"], mailbox, [f.address for f in forwards], limits
            )
        except EntryError as exc:
            reader.extend(path, exc.problems)
            continue
        forwards.append(Forward(address, keep_copy))
    return forwards


def _read_auto_reply(reader: _Reader, raw: Any, limits: LimitsPolicy) -> AutoReply:
    if raw is None:
        return AutoReply()
    if not isinstance(raw, dict):
        reader.add("auto_reply", "type_error", "must be an object")
        return AutoReply()
    reader.unknown_keys("auto_reply", raw, _AUTO_REPLY_KEYS)
    per_sender: list[SenderReply] = []
    for index, item in enumerate(reader.array("auto_reply.per_sender", raw.get("per_sender"))):
        path = f"auto_reply.per_sender[{index}]"
        if not isinstance(item, dict):
            reader.add(path, "type_error",
                       'must be an object {"pattern": ..., "subject": ..., "body": ...}')
            continue
        reader.unknown_keys(path, item, _SENDER_REPLY_KEYS)
        per_sender.append(SenderReply(
            pattern=reader.text(f"{path}.pattern", item.get("pattern")),
            subject=reader.text(f"{path}.subject", item.get("subject")),
            body=reader.text(f"{path}.body", item.get("body")),
        ))
    auto_reply = AutoReply(
        enabled=reader.boolean("auto_reply.enabled", raw.get("enabled"), False),
        subject=reader.text("auto_reply.subject", raw.get("subject")),
        body=reader.text("auto_reply.body", raw.get("body")),
        per_sender=tuple(per_sender),
        start_date=reader.date("auto_reply.start_date", raw.get("start_date")),
        end_date=reader.date("auto_reply.end_date", raw.get("end_date")),
    )
    normalised, problems = _validated_auto_reply(auto_reply, limits, "auto_reply")
    reader.problems += problems
    return normalised


def _read_unlock(reader: _Reader, raw: Any, now: dt.datetime, policy: Policy) -> dt.datetime | None:
    path = "overseas_unlocked_until"
    if raw is None:
        return None
    until: dt.datetime | None = None
    if isinstance(raw, str):
        try:
            until = dt.datetime.fromisoformat(raw)
        except ValueError:
            until = None
    if until is None or until.tzinfo is None or until.utcoffset() is None:
        reader.add(path, "datetime_invalid",
                   "must be an ISO-8601 date and time with its offset "
                   "(2026-01-31T09:00:00+09:00) or null")
        return None
    latest = now + dt.timedelta(days=policy.overseas.unlock_max_days)
    if until > latest:
        reader.add(path, "unlock_too_long",
                   f"overseas sending can be unlocked for at most "
                   f"{policy.overseas.unlock_max_days} days from now (until {latest.isoformat()})",
                   max_days=policy.overseas.unlock_max_days)
        return None
    return until.astimezone(dt.timezone.utc)


def _read_document(
    doc: Mapping[str, Any], mailbox: str, policy: Policy, now: dt.datetime
) -> _Imported:
    reader = _Reader()
    reader.unknown_keys("", doc, _DOCUMENT_KEYS)
    version = doc.get("version", DOCUMENT_VERSION)
    if isinstance(version, bool) or version != DOCUMENT_VERSION:
        reader.add("version", "version_unsupported", f"must be {DOCUMENT_VERSION}")
    if "address" in doc and not isinstance(doc["address"], str):
        reader.add("address", "type_error", "must be a string")
    limits = policy.limits
    lists = {kind: _read_entry_list(reader, kind, doc.get(kind), limits) for kind in RULE_KINDS}
    conditions: set[str] = set()
    for index, item in enumerate(reader.array("header_conditions", doc.get("header_conditions"))):
        path = f"header_conditions[{index}]"
        if not isinstance(item, str):
            reader.add(path, "type_error", "must be a string")
            continue
        try:
            conditions |= parse_header_conditions([item])
        except EntryError as exc:
            reader.extend(path, exc.problems)
    forwarding = _read_forwarding(reader, doc.get("forwarding"), mailbox, limits)
    auto_reply = _read_auto_reply(reader, doc.get("auto_reply"), limits)
    defaults = policy.mailbox_defaults
    flags = {
        "virus_scan": reader.boolean("virus_scan", doc.get("virus_scan"), defaults.virus_scan),
        "spam_scan": reader.boolean("spam_scan", doc.get("spam_scan"), defaults.spam_scan),
        "spam_quarantine": reader.boolean("spam_quarantine", doc.get("spam_quarantine"),
                                          defaults.spam_quarantine),
        "quarantine_notice": reader.boolean("quarantine_notice", doc.get("quarantine_notice"),
                                            defaults.quarantine_notice),
    }
    unlock = _read_unlock(reader, doc.get("overseas_unlocked_until"), now, policy)
    if reader.problems:
        raise EntryError(reader.problems)
    return _Imported(lists, frozenset(conditions), forwarding, auto_reply, flags, unlock)


def import_rules(
    session: Session,
    address: str,
    doc: Mapping[str, Any],
    policy: Policy,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Replace every setting of ``address`` with those of ``doc`` (see the module
    docstring).  The whole document is validated first: EntryError lists every
    problem, each prefixed with its JSON path, and nothing is changed."""
    if now is None:
        now = _utcnow()
    box = mailbox_row(session, address)
    if not isinstance(doc, Mapping):
        raise EntryError(Problem("type_error", "the document must be a JSON object"))
    imported = _read_document(doc, box.address, policy, now)

    for table in (RuleEntry, ForwardDestination):
        session.execute(delete(table).where(table.mailbox_id == box.id))
    for kind, values in imported.lists.items():
        for value in values:
            session.add(RuleEntry(mailbox_id=box.id, kind=kind, value=value,
                                  normalized=_entry_key(kind, value), created_at=now))
    for forward in imported.forwarding:
        session.add(ForwardDestination(mailbox_id=box.id, address=forward.address,
                                       keep_copy=forward.keep_copy))
    box.header_conditions = _join_conditions(imported.header_conditions)
    _store_auto_reply(session, box, imported.auto_reply)
    box.virus_scan_enabled = imported.flags["virus_scan"]
    box.spam_scan_enabled = imported.flags["spam_scan"]
    box.spam_quarantine_enabled = imported.flags["spam_quarantine"]
    box.quarantine_notice_enabled = imported.flags["quarantine_notice"]
    box.overseas_unlocked_until = imported.overseas_unlocked_until
    session.flush()
