"""spam_scan, 迷惑メールスキャン設定 (SPEC §8): spamd's score against the
postmaster's threshold (``spam_scan.threshold``), for a mailbox whose scanning
is on.  At or above it the verdict is ``Spam``; whether that is quarantined or
tagged ``[spam] `` is the effects' choice from the quarantine setting, not this
check's.  spamd down follows ``scanner_failure.spam`` as for viruses.  spamd's
answer is given here as a value; the real spamd is in tests/integration and
tests/e2e."""

from __future__ import annotations

from typing import Any

import pytest

from mailadmin.checks import spam_scan
from mailadmin.checks.context import SpamScanResult
from mailadmin.verdicts import CheckResult, NotScanned, Pass, ScanFailed, Spam

from .conftest import FakeScans, failures, context, policy, rules

DOWN = "spamd unavailable: timed out"
GTUBE = ("GTUBE",)


@pytest.mark.parametrize(
    ("mailbox", "answer", "spam_policy", "expected"),
    [
        # "scan ON/OFF"
        pytest.param({}, SpamScanResult(score=1.2), {}, Pass("1.2"), id="on-ham"),
        pytest.param({}, SpamScanResult(score=1000.0, rules=GTUBE), {}, Spam(1000.0, 5.0, GTUBE), id="on-spam"),
        pytest.param({"spam_scan": False}, SpamScanResult(score=1000.0, rules=GTUBE), {}, Pass("off"),
                     id="off-spam-is-not-scanned"),
        pytest.param({"spam_scan": False}, SpamScanResult(error=DOWN), {}, Pass("off"),
                     id="off-spamd-down-does-not-matter"),
        # "the threshold is postmaster policy" (default 5.0), reached at equality
        pytest.param({}, SpamScanResult(score=4.9), {}, Pass("4.9"), id="just-below-default-threshold"),
        pytest.param({}, SpamScanResult(score=5.0, rules=("BAYES_99",)), {}, Spam(5.0, 5.0, ("BAYES_99",)),
                     id="at-default-threshold"),
        pytest.param({}, SpamScanResult(score=-2.5), {}, Pass("-2.5"), id="negative-score"),
        pytest.param({}, SpamScanResult(score=6.0), {"spam_scan": {"threshold": 10.0}}, Pass("6.0"),
                     id="policy-threshold-raised"),
        pytest.param({}, SpamScanResult(score=3.5, rules=("URIBL_BLACK",)), {"spam_scan": {"threshold": 3.0}},
                     Spam(3.5, 3.0, ("URIBL_BLACK",)), id="policy-threshold-lowered"),
        # "Spam with quarantine OFF: [spam] tag; ON: quarantined": the same verdict, the effects differ
        pytest.param({"spam_quarantine": True}, SpamScanResult(score=8.0), {}, Spam(8.0, 5.0), id="quarantine-on"),
        pytest.param({"spam_quarantine": False}, SpamScanResult(score=8.0), {}, Spam(8.0, 5.0), id="quarantine-off"),
        # "Same fail-safe rule as virus scan when spamd is down"
        pytest.param({}, SpamScanResult(error=DOWN), {}, ScanFailed("spamd", DOWN), id="down-tempfail-by-default"),
        pytest.param({}, SpamScanResult(error=DOWN), {"scanner_failure": {"spam": "tempfail"}},
                     ScanFailed("spamd", DOWN), id="down-tempfail"),
        pytest.param({}, SpamScanResult(error=DOWN), {"scanner_failure": {"spam": "accept_tagged"}},
                     NotScanned("spamd", DOWN), id="down-accept-tagged"),
        pytest.param({}, SpamScanResult(error=DOWN), {"scanner_failure": {"virus": "accept_tagged"}},
                     ScanFailed("spamd", DOWN), id="down-the-virus-fail-mode-is-not-spams"),
    ],
)
async def test_spam_scan(mailbox: dict[str, Any], answer: SpamScanResult, spam_policy: dict[str, dict[str, Any]],
                         expected: CheckResult) -> None:
    scans = FakeScans(spam=answer)
    ctx = context(rules=rules(**mailbox), scans=scans, policy=policy(**spam_policy))
    mode = ctx.policy.scanner_failure.spam
    before = failures("spamd", mode)
    assert await spam_scan.check(ctx) == expected
    # spamd is asked only for a mailbox that scans, and a failure is counted under its fail mode
    assert scans.spam_calls == (0 if expected == Pass("off") else 1)
    assert scans.virus_calls == 0
    assert failures("spamd", mode) - before == (1 if isinstance(expected, ScanFailed | NotScanned) else 0)
