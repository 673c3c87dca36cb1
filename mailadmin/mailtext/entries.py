"""The one validator per kind of subscriber input: password (SPEC §1),
forwarding destination (SPEC §3), From and Subject entries (SPEC §4, §5),
header conditions (SPEC §4) and the auto-reply messages (SPEC §6).

The web form, the CLI import, the ``filters/`` files and the database all
call these, so an entry accepted in one place is accepted everywhere.  Each
broken rule is one :class:`~mailadmin.errors.Problem` with a stable ``code``
and ``params`` (the web UI translates them); ``text`` is the English message.

The limits come in as plain values (:class:`EntryLimits`,
:class:`PasswordRules`: the policy's own objects fit them), so this module
sits below ``config`` and ``config`` can use it to read ``filters/``.
"""

from __future__ import annotations

import datetime as dt
import string
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from mailadmin.errors import EntryError, Problem
from mailadmin.mailtext.addresses import (
    canonical_address,
    canonical_domain,
    is_valid_address,
    is_valid_local_part,
)
from mailadmin.mailtext.headers import contains_half_width_katakana, normalize_for_match

EntryKind = Literal["sender", "subject"]

# SPEC §4 header conditions, in the order of the manual's five checkboxes.
HEADER_CONDITIONS: tuple[str, ...] = (
    "from_missing",      # From: ヘッダ自体が存在しない
    "from_empty_angle",  # From: ヘッダの中身が空 (From: <>)
    "from_empty",        # From: ヘッダの中身が空 (From:)
    "subject_missing",   # Subject: ヘッダ自体が存在しない
    "subject_empty",     # Subject: ヘッダの中身が空 (Subject:)
)

# A Subject header line stays well inside RFC 5322's 998 octets after encoding.
AUTO_REPLY_SUBJECT_MAX_LENGTH = 200
AUTO_REPLY_BODY_MAX_LENGTH = 10_000


class EntryLimits(Protocol):
    """The entry limits of a policy (``LimitsPolicy`` is one)."""

    @property
    def entries_per_submission(self) -> int: ...
    @property
    def entry_max_length(self) -> int: ...
    @property
    def subject_entry_min_length(self) -> int: ...
    @property
    def max_entries_per_list(self) -> int: ...
    @property
    def max_forwarding_destinations(self) -> int: ...
    @property
    def max_per_sender_replies(self) -> int: ...


class PasswordRules(Protocol):
    """The password rule of a policy (``PasswordPolicy`` is one)."""

    @property
    def min_length(self) -> int: ...
    @property
    def max_length(self) -> int: ...
    @property
    def allowed_symbols(self) -> str: ...


_PASSWORD_LETTERS = frozenset(string.ascii_letters)
_PASSWORD_DIGITS = frozenset(string.digits)


def _describe_character(char: str) -> str:
    if char == " ":
        return "space"
    if char.isprintable() and not char.isspace():
        return f"'{char}'"
    return f"U+{ord(char):04X}"


def check_password(password: str, policy: PasswordRules) -> None:
    """SPEC §1 password rule; raises :class:`EntryError` with one problem per broken rule."""
    problems: list[Problem] = []
    length = len(password)
    if length < policy.min_length:
        problems.append(Problem(
            "password_too_short",
            f"The password must be at least {policy.min_length} characters long (it has {length}).",
            {"min_length": policy.min_length, "length": length},
        ))
    if length > policy.max_length:
        problems.append(Problem(
            "password_too_long",
            f"The password must be at most {policy.max_length} characters long (it has {length}).",
            {"max_length": policy.max_length, "length": length},
        ))
    allowed = _PASSWORD_LETTERS | _PASSWORD_DIGITS | frozenset(policy.allowed_symbols)
    forbidden = list(dict.fromkeys(c for c in password if c not in allowed))
    if forbidden:
        named = ", ".join(_describe_character(c) for c in forbidden)
        symbols = " ".join(policy.allowed_symbols)
        problems.append(Problem(
            "password_forbidden_characters",
            f"The password contains characters that are not allowed: {named}. "
            f"Use only A–Z, a–z, 0–9 and {symbols}",
            {"characters": named, "allowed_symbols": policy.allowed_symbols},
        ))
    if not any(c in _PASSWORD_LETTERS for c in password):
        problems.append(Problem(
            "password_no_letter", "The password must contain at least one letter (A–Z or a–z).",
        ))
    if not any(c in _PASSWORD_DIGITS for c in password):
        problems.append(Problem(
            "password_no_digit", "The password must contain at least one digit (0–9).",
        ))
    if problems:
        raise EntryError(problems)


def new_password_problems(new: str, again: str, policy: PasswordRules) -> list[Problem]:
    """A new password typed twice (password change, reset): one problem per broken
    rule of SPEC §1, and one when the repetition differs."""
    problems: list[Problem] = []
    try:
        check_password(new, policy)
    except EntryError as exc:
        problems.extend(exc.problems)
    if new != again:
        problems.append(Problem("password_mismatch", "The new password and its repetition differ."))
    return problems


def _fold_width(raw: str) -> str:
    """Full-width ASCII typed through a Japanese input method (ｕｓｅｒ＠ｅｘａｍｐｌｅ．ｊｐ)
    means the ASCII address; NFKC maps it, and leaves ASCII alone."""
    return unicodedata.normalize("NFKC", raw.strip())


def parse_sender_entry(raw: str, max_length: int = 320) -> str:
    """A From / allow-list entry (SPEC §4, §5), normalised (lower-case).

    Accepted forms: ``user@example.com`` (that address), ``example.com`` (the
    domain and its subdomains) and ``@example.com`` (the domain only).
    Raises :class:`EntryError` with one problem.
    """
    entry = _fold_width(raw).lower()
    shown = raw.strip()
    params: dict[str, str | int] = {"entry": shown}
    if not entry:
        raise EntryError(Problem("sender_empty", "Enter an address or a domain.", params))
    if len(entry) > max_length:
        raise EntryError(Problem(
            "sender_too_long",
            f"'{_clip(shown)}' is too long: an entry may have at most {max_length} characters "
            f"(it has {len(entry)}).",
            {**params, "max_length": max_length, "length": len(entry)},
        ))
    if any(c.isspace() for c in entry) and not entry.startswith('"'):
        raise EntryError(Problem(
            "sender_invalid",
            f"'{_clip(shown)}' contains spaces: enter one address or domain per line.",
            params,
        ))
    if "*" in entry:
        raise EntryError(Problem(
            "sender_wildcard",
            f"'{_clip(shown)}': wildcards are not used. A domain (example.com) already matches "
            "every address of that domain and of its subdomains.",
            params,
        ))
    local, at, domain = entry.rpartition("@")
    if entry == "@":
        raise EntryError(_invalid_sender(shown, params))
    if at and not domain or not at and "." not in entry:
        raise EntryError(Problem(
            "sender_bare_local_part",
            f"'{_clip(shown)}': a local part alone can't be matched reliably; enter the whole "
            "address (user@example.com) or a domain (example.com).",
            params,
        ))
    if not at:
        if canonical_domain(entry) is None:
            raise EntryError(_invalid_sender(shown, params))
        return entry
    if not local:
        if canonical_domain(domain) is None:
            raise EntryError(_invalid_sender(shown, params))
        return entry
    if not is_valid_address(entry):
        raise EntryError(_invalid_sender(shown, params))
    return entry


def _invalid_sender(shown: str, params: dict[str, str | int]) -> Problem:
    return Problem(
        "sender_invalid",
        f"'{_clip(shown)}' is not a valid address or domain "
        "(examples: user@example.com, example.com, @example.com).",
        params,
    )


def _clip(text: str, limit: int = 60) -> str:
    """Long input is named by its beginning, so one message stays one line."""
    return text if len(text) <= limit else text[:limit] + "…"


def parse_subject_entry(raw: str, min_length: int = 2, max_length: int = 320) -> str:
    """A Subject entry (SPEC §4): stripped, 2–320 characters, no half-width
    katakana, no control characters.  Returned as typed (stripped)."""
    entry = raw.strip()
    length = len(entry)
    params: dict[str, str | int] = {"entry": entry}
    problems: list[Problem] = []
    if length < min_length:
        problems.append(Problem(
            "subject_too_short",
            f"'{entry}' is too short: a subject entry needs at least {min_length} characters.",
            {**params, "min_length": min_length, "length": length},
        ))
    if length > max_length:
        problems.append(Problem(
            "subject_too_long",
            f"'{_clip(entry)}' is too long: a subject entry may have at most {max_length} "
            f"characters (it has {length}).",
            {**params, "max_length": max_length, "length": length},
        ))
    if contains_half_width_katakana(entry):
        problems.append(Problem(
            "subject_half_width_katakana",
            f"'{_clip(entry)}' contains half-width katakana, which can't be entered; "
            "use full-width katakana (it matches half-width text in mail as well).",
            params,
        ))
    if any(unicodedata.category(c) == "Cc" for c in entry):
        problems.append(Problem(
            "subject_control_characters",
            f"'{_clip(entry)}' contains control characters.",
            params,
        ))
    if problems:
        raise EntryError(problems)
    return entry


def sender_entry_key(entry: str) -> str:
    """What two sender entries are compared by for duplicates."""
    entry = _fold_width(entry).lower()
    if entry.startswith("@"):
        return "@" + canonical_address("x" + entry).split("@", 1)[1]
    if "@" in entry:
        return canonical_address(entry)
    return canonical_address("x@" + entry).split("@", 1)[1]


def subject_entry_key(entry: str) -> str:
    """What two subject entries are compared by for duplicates."""
    return normalize_for_match(entry)


def parse_entry(kind: EntryKind, raw: str, limits: EntryLimits) -> str:
    """A From (``sender``) or Subject (``subject``) entry within ``limits``, normalised."""
    if kind == "sender":
        return parse_sender_entry(raw, limits.entry_max_length)
    return parse_subject_entry(raw, limits.subject_entry_min_length, limits.entry_max_length)


def entry_key(kind: EntryKind, entry: str) -> str:
    """What two entries of ``kind`` are compared by for duplicates."""
    return sender_entry_key(entry) if kind == "sender" else subject_entry_key(entry)


@dataclass(frozen=True, slots=True)
class CheckedEntry:
    """One entry of a list as :func:`check_entries` found it."""

    position: int  # the caller's: a line number, an index in a document
    raw: str
    entry: str | None = None  # normalised; None when invalid
    problems: tuple[Problem, ...] = ()  # why it is invalid
    existing: bool = False  # the same as an entry already in the list
    first: tuple[int, str] | None = None  # (position, entry) of an earlier equal one


def check_entries(
    kind: EntryKind,
    items: Iterable[tuple[int, str]],
    limits: EntryLimits,
    existing: Iterable[str] = (),
) -> Iterator[CheckedEntry]:
    """Every ``(position, raw)`` item checked in turn: parsed by :func:`parse_entry`,
    then compared by :func:`entry_key` with ``existing`` and with the valid
    items before it.  The one loop behind a page submission, an import
    document's list and a ``filters/`` file; each words the outcome its way.
    Lazy: ``items`` is read one at a time."""
    existing_keys = {entry_key(kind, e) for e in existing}
    seen: dict[str, tuple[int, str]] = {}
    for position, raw in items:
        try:
            entry = parse_entry(kind, raw, limits)
        except EntryError as error:
            yield CheckedEntry(position, raw, problems=error.problems)
            continue
        key = entry_key(kind, entry)
        if key in existing_keys:
            yield CheckedEntry(position, raw, entry, existing=True)
        elif key in seen:
            yield CheckedEntry(position, raw, entry, first=seen[key])
        else:
            seen[key] = (position, entry)
            yield CheckedEntry(position, raw, entry)


def validate_entries(
    kind: EntryKind,
    lines: Sequence[str],
    existing: Sequence[str],
    limits: EntryLimits,
) -> list[str]:
    """One submission of From or Subject entries, one per line (SPEC §4).

    Blank lines are ignored.  Every invalid entry, every duplicate (within
    the submission or with ``existing``) and every exceeded limit is its own
    problem; nothing is accepted unless everything is.  Returns the new
    entries, normalised, in the order typed.
    """
    problems: list[Problem] = []
    accepted: list[str] = []
    typed = [
        (number, line.strip())
        for number, line in enumerate(_split_lines(lines), start=1)
        if line.strip()
    ]
    if not typed:
        raise EntryError(Problem("no_entries", "Enter at least one entry."))
    if len(typed) > limits.entries_per_submission:
        problems.append(Problem(
            "too_many_entries",
            f"{len(typed)} entries were entered; at most {limits.entries_per_submission} "
            "can be added at a time.",
            {"count": len(typed), "max_count": limits.entries_per_submission},
        ))
    for checked in check_entries(kind, typed, limits, existing):
        number, entry = checked.position, checked.entry
        if entry is None:
            problems.extend(_with_line(p, number) for p in checked.problems)
            continue
        params: dict[str, str | int] = {"entry": entry, "line": number}
        if checked.existing:
            problems.append(Problem(
                "duplicate_existing", f"'{_clip(entry)}' is already registered.", params,
            ))
        elif checked.first is not None:
            problems.append(Problem(
                "duplicate_in_submission",
                f"'{_clip(entry)}' is entered more than once.",
                {**params, "first": checked.first[1]},
            ))
        else:
            accepted.append(entry)
    total = len(existing) + len(accepted)
    if total > limits.max_entries_per_list:
        problems.append(Problem(
            "list_full",
            f"The list can hold at most {limits.max_entries_per_list} entries; "
            f"it has {len(existing)} and {len(accepted)} would be added.",
            {"max_count": limits.max_entries_per_list, "count": len(existing),
             "added": len(accepted)},
        ))
    if problems:
        raise EntryError(problems)
    return accepted


def _split_lines(lines: Sequence[str]) -> list[str]:
    """A caller may hand over the whole text area as one string."""
    out: list[str] = []
    for line in lines:
        out.extend(line.splitlines() or [""])
    return out


def _with_line(problem: Problem, number: int) -> Problem:
    return Problem(problem.code, f"Line {number}: {problem.text}", {**problem.params, "line": number})


def parse_forward_destination(
    raw: str,
    mailbox: str,
    existing: Sequence[str],
    limits: EntryLimits,
) -> str:
    """A forwarding destination (SPEC §3): a valid address, not the mailbox
    itself, not already in the list, within the destination limit.

    Returns the address with a lower-case ASCII domain (an IDN domain is
    stored in its A-label form so that any relay can deliver to it); the
    local part keeps its case but is compared case-insensitively.
    """
    address = _fold_width(raw)
    params: dict[str, str | int] = {"entry": raw.strip()}
    if not address:
        raise EntryError(Problem("forward_empty", "Enter a forwarding address.", params))
    local, at, domain = address.rpartition("@")
    ascii_domain = canonical_domain(domain) if at else None
    if not is_valid_address(address) or ascii_domain is None or not is_valid_local_part(local):
        raise EntryError(Problem(
            "forward_invalid",
            f"'{_clip(raw.strip())}' is not a valid mail address (example: user@example.com).",
            params,
        ))
    normalised = f"{local}@{ascii_domain}"
    problems: list[Problem] = []
    key = canonical_address(normalised)
    if key == canonical_address(mailbox):
        problems.append(Problem(
            "forward_to_self", "Mail can't be forwarded to the mailbox itself.", params,
        ))
    elif key in {canonical_address(e) for e in existing}:
        problems.append(Problem(
            "forward_duplicate", f"'{normalised}' is already a forwarding address.", params,
        ))
    if len(existing) >= limits.max_forwarding_destinations:
        problems.append(Problem(
            "forward_limit",
            f"At most {limits.max_forwarding_destinations} forwarding addresses can be set.",
            {**params, "max_count": limits.max_forwarding_destinations},
        ))
    if problems:
        raise EntryError(problems)
    return normalised


def parse_header_conditions(values: Iterable[str]) -> frozenset[str]:
    """Header condition names (SPEC §4) from a form or file; unknown names are refused."""
    chosen: set[str] = set()
    problems: list[Problem] = []
    for value in values:
        name = value.strip().lower()
        if not name:
            continue
        if name in HEADER_CONDITIONS:
            chosen.add(name)
        else:
            problems.append(Problem(
                "header_condition_unknown",
                f"'{_clip(value.strip())}' is not a header condition "
                f"(known: {', '.join(HEADER_CONDITIONS)}).",
                {"name": value.strip()},
            ))
    if problems:
        raise EntryError(problems)
    return frozenset(chosen)


# ---------------------------------------------------------------- auto-reply (SPEC §6)


@dataclass(frozen=True, slots=True)
class AutoReplyText:
    """An auto-reply's settings as typed: its message, the per-sender messages
    ``(pattern, subject, body)`` and the period (dates in the policy's zone)."""

    enabled: bool
    subject: str
    body: str
    per_sender: tuple[tuple[str, str, str], ...] = ()
    start_date: dt.date | None = None
    end_date: dt.date | None = None


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
        return (prefixed(subject_problems, f"{where}.subject")
                + prefixed(body_problems, f"{where}.body"))
    return prefixed(subject_problems + body_problems, where)


def prefixed(problems: Iterable[Problem], prefix: str) -> list[Problem]:
    """``problems`` each named by where they are (a JSON path, "Per-sender message 2")."""
    if not prefix:
        return list(problems)
    return [Problem(p.code, f"{prefix}: {p.text}", {**p.params, "path": prefix}) for p in problems]


def check_auto_reply(
    auto_reply: AutoReplyText, limits: EntryLimits, path: str = ""
) -> tuple[tuple[str, ...], list[Problem]]:
    """The normalised per-sender patterns of ``auto_reply``, and every problem with it.

    ``path`` names where the settings came from in problem texts ("" for the
    page, ``auto_reply`` in an import document).  An invalid pattern is
    returned as typed, with its problems.
    """
    def at(field: str) -> str:
        return f"{path}.{field}" if path else ""

    in_document = bool(path)
    problems = _message_problems(auto_reply.subject, auto_reply.body, path, in_document)
    if auto_reply.enabled and not (auto_reply.subject.strip() and auto_reply.body.strip()):
        problems += prefixed([Problem(
            "auto_reply_message_empty",
            "An auto-reply needs a subject and a message to be turned on.",
        )], path)
    if len(auto_reply.per_sender) > limits.max_per_sender_replies:
        problems += prefixed([Problem(
            "auto_reply_too_many_senders",
            f"At most {limits.max_per_sender_replies} per-sender messages can be set.",
            {"max_count": limits.max_per_sender_replies, "count": len(auto_reply.per_sender)},
        )], at("per_sender"))
    patterns: list[str] = []
    seen: set[str] = set()
    for index, (raw_pattern, subject, body) in enumerate(auto_reply.per_sender):
        where = f"{path}.per_sender[{index}]" if in_document else f"Per-sender message {index + 1}"
        try:
            pattern = parse_sender_entry(raw_pattern, limits.entry_max_length)
        except EntryError as exc:
            problems += prefixed(exc.problems, where)
            pattern = raw_pattern
        else:
            key = sender_entry_key(pattern)
            if key in seen:
                problems += prefixed([Problem(
                    "duplicate_in_submission",
                    f"'{pattern}' has a per-sender message already (the first one wins).",
                    {"entry": pattern},
                )], where)
            seen.add(key)
        problems += _message_problems(subject, body, where, in_document)
        if not (subject.strip() and body.strip()):
            problems += prefixed([Problem(
                "auto_reply_message_empty", "A per-sender message needs a subject and a message.",
            )], where)
        patterns.append(pattern)
    if (auto_reply.start_date is not None and auto_reply.end_date is not None
            and auto_reply.start_date > auto_reply.end_date):
        problems += prefixed([Problem(
            "auto_reply_period_invalid",
            "The end date of the auto-reply period is before its start date.",
            {"start_date": auto_reply.start_date.isoformat(),
             "end_date": auto_reply.end_date.isoformat()},
        )], at("end_date"))
    return tuple(patterns), problems
