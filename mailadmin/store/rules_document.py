"""A mailbox's rules as one JSON document: ``mailadmin rules export|import``
(SPEC §11).

The document holds every per-mailbox setting::

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
can be copied to another.  Every value goes through the same validators as
the page (:mod:`mailadmin.mailtext.entries`); the whole document is checked
before anything is written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from mailadmin.config.model import LimitsPolicy, Policy
from mailadmin.errors import EntryError, Problem
from mailadmin.mailtext.entries import (
    HEADER_CONDITIONS,
    check_entries,
    parse_forward_destination,
    parse_header_conditions,
    prefixed,
)
from mailadmin.store.mailboxes import mailbox_row
from mailadmin.store.models import RULE_KINDS, ForwardDestination, RuleEntry
from mailadmin.store.rules import (
    entry_kind,
    join_conditions,
    load_rules,
    new_entry,
    store_auto_reply,
    validated_auto_reply,
)
from mailadmin.store.snapshots import AutoReply, Forward, SenderReply

DOCUMENT_VERSION = 1


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
        self.problems += prefixed(problems, path)

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

    def strings() -> Iterator[tuple[int, str]]:
        # Read one at a time, so every problem is told in the order of the list.
        for index, item in enumerate(items):
            if isinstance(item, str):
                yield index, item
            else:
                reader.add(f"{kind}[{index}]", "type_error", "must be a string")

    accepted: list[str] = []
    for checked in check_entries(entry_kind(kind), strings(), limits):
        path = f"{kind}[{checked.position}]"
        if checked.entry is None:
            reader.extend(path, checked.problems)
        elif checked.first is not None:
            reader.add(path, "duplicate_in_submission",
                       f"'{checked.entry}' is listed more than once", entry=checked.entry)
        else:
            accepted.append(checked.entry)
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
    normalised, problems = validated_auto_reply(auto_reply, limits, "auto_reply")
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
        now = dt.datetime.now(dt.timezone.utc)
    box = mailbox_row(session, address)
    if not isinstance(doc, Mapping):
        raise EntryError(Problem("type_error", "the document must be a JSON object"))
    imported = _read_document(doc, box.address, policy, now)

    for table in (RuleEntry, ForwardDestination):
        session.execute(delete(table).where(table.mailbox_id == box.id))
    for kind, values in imported.lists.items():
        for value in values:
            session.add(new_entry(box.id, kind, value, now))
    for forward in imported.forwarding:
        session.add(ForwardDestination(mailbox_id=box.id, address=forward.address,
                                       keep_copy=forward.keep_copy))
    box.header_conditions = join_conditions(imported.header_conditions)
    store_auto_reply(session, box, imported.auto_reply)
    box.virus_scan_enabled = imported.flags["virus_scan"]
    box.spam_scan_enabled = imported.flags["spam_scan"]
    box.spam_quarantine_enabled = imported.flags["spam_quarantine"]
    box.quarantine_notice_enabled = imported.flags["quarantine_notice"]
    box.overseas_unlocked_until = imported.overseas_unlocked_until
    session.flush()
