"""The one validator per kind of subscriber input: password (SPEC §1),
forwarding destination (SPEC §3), From and Subject entries (SPEC §4, §5) and
header conditions (SPEC §4).

The web form, the CLI import, the ``filters/`` files and the database all
call these, so an entry accepted in one place is accepted everywhere.  Each
broken rule is one :class:`~mailadmin.errors.Problem` with a stable ``code``
and ``params`` (the web UI translates them); ``text`` is the English message.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Literal

from mailadmin.config.model import LimitsPolicy, PasswordPolicy
from mailadmin.errors import EntryError, Problem
from mailadmin.mailtext.addresses import (
    canonical_address,
    canonical_domain,
    is_valid_address,
    is_valid_local_part,
)
from mailadmin.mailtext.headers import contains_half_width_katakana, normalize_for_match
from mailadmin.store.snapshots import HEADER_CONDITIONS

_PASSWORD_LETTERS = frozenset(string.ascii_letters)
_PASSWORD_DIGITS = frozenset(string.digits)


def _describe_character(char: str) -> str:
    if char == " ":
        return "space"
    if char.isprintable() and not char.isspace():
        return f"'{char}'"
    return f"U+{ord(char):04X}"


def check_password(password: str, policy: PasswordPolicy) -> None:
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


def new_password_problems(new: str, again: str, policy: PasswordPolicy) -> list[Problem]:
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


def validate_entries(
    kind: Literal["sender", "subject"],
    lines: Sequence[str],
    existing: Sequence[str],
    limits: LimitsPolicy,
) -> list[str]:
    """One submission of From or Subject entries, one per line (SPEC §4).

    Blank lines are ignored.  Every invalid entry, every duplicate (within
    the submission or with ``existing``) and every exceeded limit is its own
    problem; nothing is accepted unless everything is.  Returns the new
    entries, normalised, in the order typed.
    """
    problems: list[Problem] = []
    accepted: list[str] = []
    seen: dict[str, str] = {}
    if kind == "sender":
        key = sender_entry_key
    else:
        key = subject_entry_key
    existing_keys = {key(e) for e in existing}
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
    for number, line in typed:
        try:
            if kind == "sender":
                entry = parse_sender_entry(line, limits.entry_max_length)
            else:
                entry = parse_subject_entry(
                    line, limits.subject_entry_min_length, limits.entry_max_length
                )
        except EntryError as error:
            problems.extend(_with_line(p, number) for p in error.problems)
            continue
        entry_key = key(entry)
        params: dict[str, str | int] = {"entry": entry, "line": number}
        if entry_key in existing_keys:
            problems.append(Problem(
                "duplicate_existing", f"'{_clip(entry)}' is already registered.", params,
            ))
        elif entry_key in seen:
            problems.append(Problem(
                "duplicate_in_submission",
                f"'{_clip(entry)}' is entered more than once.",
                {**params, "first": seen[entry_key]},
            ))
        else:
            seen[entry_key] = entry
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
    limits: LimitsPolicy,
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
