"""spam_scan: spamd's score against the policy threshold (SPEC §8).

The threshold is postmaster policy (``spam_scan.threshold``), not spamd's own
``required_score``.  What a ``Spam`` verdict does (quarantine or ``[spam]``
tag) is decided by the effects table from the mailbox's quarantine setting.
When spamd failed, ``scanner_failure.spam`` decides as for viruses.
"""

from __future__ import annotations

from mailadmin import metrics
from mailadmin.checks.context import RecipientContext
from mailadmin.verdicts import CheckResult, NotScanned, Pass, ScanFailed, Spam


async def check(ctx: RecipientContext) -> CheckResult:
    if not ctx.rules.spam_scan:
        return Pass("off")
    result = await ctx.scans.spam()
    if result.error is not None:
        mode = ctx.policy.scanner_failure.spam
        metrics.SCANNER_FAILURES.labels("spamd", mode).inc()
        if mode == "accept_tagged":
            return NotScanned("spamd", result.error)
        return ScanFailed("spamd", result.error)
    threshold = ctx.policy.spam_scan.threshold
    if result.score >= threshold:
        return Spam(result.score, threshold, result.rules)
    return Pass(f"{result.score:.1f}")
