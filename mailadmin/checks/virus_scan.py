"""virus_scan: clamd verdict for a recipient whose mailbox has virus scanning on (SPEC §7).

Returns ``Infected`` when clamd found a signature.  When clamd failed, the
domain policy's ``scanner_failure.virus`` decides: ``tempfail`` gives
``ScanFailed`` (the MTA retries; nothing passes unscanned), ``accept_tagged``
gives ``NotScanned`` (delivered with a header saying so).
"""

from __future__ import annotations

from mailadmin import metrics
from mailadmin.checks.context import RecipientContext
from mailadmin.verdicts import CheckResult, Infected, NotScanned, Pass, ScanFailed


async def check(ctx: RecipientContext) -> CheckResult:
    if not ctx.rules.virus_scan:
        return Pass("off")
    result = await ctx.scans.virus()
    if result.error is not None:
        mode = ctx.policy.scanner_failure.virus
        metrics.SCANNER_FAILURES.labels("clamd", mode).inc()
        if mode == "accept_tagged":
            return NotScanned("clamd", result.error)
        return ScanFailed("clamd", result.error)
    if result.virus is not None:
        return Infected(result.virus)
    return Pass("clean")
