"""The check chains.  The order *is* the policy; each line says why it is where it is.

First verdict wins; every check's result goes into the trace, which is logged,
shown by ``mailadmin dry-run`` and usable as a header.
"""

from __future__ import annotations

import time

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mailadmin import metrics
from mailadmin.checks import (
    allow_list,
    header_conditions,
    overseas,
    reject_lists,
    site_filters,
    spam_scan,
    virus_scan,
)
from mailadmin.checks.context import RecipientContext
from mailadmin.verdicts import CheckResult, NotScanned, Pass, TraceStep, Trace, Verdict

C = TypeVar("C")
Check = Callable[[RecipientContext], Awaitable[CheckResult]]

INBOUND_CHAIN: tuple[tuple[str, Check], ...] = (
    # Virus first: nothing, not even the allow list, exempts from virus scanning (SPEC §5, §7).
    ("virus_scan", virus_scan.check),
    # Site-wide blocks from filters/ beat a subscriber's allow entry: they are abuse controls.
    ("site_block", site_filters.check_block),
    # An allowed sender skips every check below (SPEC §5).
    ("allow_list", allow_list.check),
    ("reject_sender", reject_lists.check_sender),
    ("reject_subject", reject_lists.check_subject),
    ("header_conditions", header_conditions.check),
    # Last: the most expensive check runs only when no cheaper rule has decided.
    ("spam_scan", spam_scan.check),
)


@dataclass(frozen=True, slots=True)
class SubmissionContext:
    """What the outbound chain sees: the sending client and the sender's own
    rules (``sender.recipient`` is the authenticated sender)."""

    client: overseas.OutboundContext
    sender: RecipientContext


async def _overseas(ctx: SubmissionContext) -> CheckResult:
    return await overseas.check(ctx.client)


async def _sender_virus_scan(ctx: SubmissionContext) -> CheckResult:
    return await virus_scan.check(ctx.sender)


SubmissionCheck = Callable[[SubmissionContext], Awaitable[CheckResult]]

# What can be decided before the message data (policy delegation at RCPT, the
# milter at MAIL): the overseas check.  First: a refused submission needs no scan (SPEC §9).
ENVELOPE_CHAIN: tuple[tuple[str, SubmissionCheck], ...] = (("overseas", _overseas),)

OUTBOUND_CHAIN: tuple[tuple[str, SubmissionCheck], ...] = ENVELOPE_CHAIN + (
    # The sender's own virus scan (SPEC §7: "mail it sends"); each recipient's
    # inbound chain runs after it, when the submission may go on.
    ("virus_scan", _sender_virus_scan),
)


_CHECK_SECONDS: dict[str, Any] = {}


def _check_seconds(name: str) -> Any:
    """The check's histogram child, looked up once (labels() costs more than observe())."""
    child = _CHECK_SECONDS.get(name)
    if child is None:
        child = _CHECK_SECONDS[name] = metrics.CHECK_SECONDS.labels(name)
    return child


async def run_chain(
    chain: tuple[tuple[str, Callable[[C], Awaitable[CheckResult]]], ...], ctx: C
) -> tuple[Verdict | None, Trace, tuple[NotScanned, ...]]:
    """Run ``chain`` until the first verdict; return it, the trace and any not-scanned notes."""
    trace: list[TraceStep] = []
    notes: list[NotScanned] = []
    for name, check in chain:
        started = time.perf_counter()
        result = await check(ctx)
        _check_seconds(name).observe(time.perf_counter() - started)
        if result is None:
            trace.append(TraceStep(name, "-"))
            continue
        trace.append(TraceStep(name, str(result)))
        if isinstance(result, NotScanned):
            notes.append(result)
            continue
        if isinstance(result, Pass):
            continue
        return result, tuple(trace), tuple(notes)
    return None, tuple(trace), tuple(notes)
