"""reject_sender and reject_subject: the subscriber's 受信拒否 lists (SPEC §4).

A match quarantines the message (``Blocked``); it is never bounced.
- Sender entries match the envelope sender and every header From address,
  case-insensitively, as a suffix at a boundary (mailtext.addresses).
- Subject entries match as substrings of the decoded, unfolded subject after
  NFKC + casefold, so full-width and half-width forms match each other.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailadmin.checks.context import RecipientContext
from mailadmin.mailtext.headers import normalize_for_match
from mailadmin.verdicts import Blocked, CheckResult, Pass


def matching_subject_entry(entries: Iterable[str], subject: str | None) -> str | None:
    if not subject:
        return None
    haystack = normalize_for_match(subject)
    for entry in entries:
        needle = normalize_for_match(entry)
        if needle and needle in haystack:
            return entry
    return None


async def check_sender(ctx: RecipientContext) -> CheckResult:
    entry = ctx.rules.reject_sender_matcher.first_match(ctx.sender_addresses())
    if entry is not None:
        return Blocked("reject_sender", entry)
    return Pass()


async def check_subject(ctx: RecipientContext) -> CheckResult:
    entry = ctx.rules.reject_subject_matcher.first_match(ctx.message.subject)
    if entry is not None:
        return Blocked("reject_subject", entry)
    return Pass()
