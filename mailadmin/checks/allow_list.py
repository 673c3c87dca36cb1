"""allow_list: a sender on the mailbox's (or the site's) allow list skips every
later check — reject lists, header conditions and spam scanning — but never the
virus scan, which runs before it (SPEC §5).

Matching is that of the From reject list: the envelope sender or any header
From address, as a suffix at a label boundary.
"""

from __future__ import annotations

from mailadmin.checks.context import RecipientContext
from mailadmin.mailtext.addresses import first_matching_entry
from mailadmin.verdicts import Allowed, CheckResult, Pass


async def check(ctx: RecipientContext) -> CheckResult:
    senders = ctx.sender_addresses()
    entry = ctx.rules.allow_list_matcher.first_match(senders)
    if entry is not None:
        return Allowed(entry, "mailbox")
    entry = first_matching_entry(ctx.filters.allow, senders)
    if entry is not None:
        return Allowed(entry, "site")
    return Pass()
