"""site_block: the postmaster's site-wide blocks from filters/ (SPEC §11).

They run before a subscriber's allow list: they are abuse controls, and a
subscriber's allow entry must not open a hole in them.  Matching is the same as
the subscriber's lists (SPEC §4): sender entries against the envelope sender
and every header From, subject entries as NFKC/casefold substrings, and the
five header conditions.
"""

from __future__ import annotations

from mailadmin.checks.context import RecipientContext
from mailadmin.checks.header_conditions import first_condition
from mailadmin.checks.reject_lists import matching_subject_entry
from mailadmin.mailtext.addresses import first_matching_entry
from mailadmin.verdicts import Blocked, CheckResult, Pass


async def check_block(ctx: RecipientContext) -> CheckResult:
    filters = ctx.filters
    entry = first_matching_entry(filters.sender_block, ctx.sender_addresses())
    if entry is not None:
        return Blocked("site_block", entry)
    subject_entry = matching_subject_entry(filters.subject_block, ctx.message.subject)
    if subject_entry is not None:
        return Blocked("site_block", subject_entry)
    condition = first_condition(filters.header_conditions, ctx.message)
    if condition is not None:
        return Blocked("site_block", condition)
    return Pass()
