"""virus_scan, ウィルススキャン設定 (SPEC §7): clamd's answer for a mailbox whose
scanning is on, received mail and (with the sender's mailbox) sent mail alike.
An infected message is ``Infected``; clamd down or timing out follows the
domain policy's ``scanner_failure.virus``: ``tempfail`` (the MTA retries,
nothing passes unscanned) or ``accept_tagged`` (delivered with a header).
clamd's answer is given here as a value; the real clamd is in tests/integration
and tests/e2e."""

from __future__ import annotations

from typing import Any

import pytest

from mailadmin.checks import virus_scan
from mailadmin.checks.context import VirusScanResult
from mailadmin.verdicts import CheckResult, Infected, NotScanned, Pass, ScanFailed

from .conftest import FakeScans, failures, context, policy, rules

DOWN = "clamd unavailable: connection refused"
TIMED_OUT = "clamd unavailable: timed out"


@pytest.mark.parametrize(
    ("mailbox", "answer", "fail_mode", "expected"),
    [
        # "ON/OFF toggle"
        pytest.param({}, VirusScanResult(), "tempfail", Pass("clean"), id="on-clean"),
        pytest.param({}, VirusScanResult(virus="Eicar-Test-Signature"), "tempfail",
                     Infected("Eicar-Test-Signature"), id="on-infected"),
        pytest.param({"virus_scan": False}, VirusScanResult(virus="Eicar-Test-Signature"), "tempfail",
                     Pass("off"), id="off-infected-is-not-scanned"),
        pytest.param({"virus_scan": False}, VirusScanResult(error=DOWN), "tempfail",
                     Pass("off"), id="off-clamd-down-does-not-matter"),
        # "clamd unreachable or timing out: ... temporary failure; a postmaster may choose accept-and-tag"
        pytest.param({}, VirusScanResult(error=DOWN), "tempfail", ScanFailed("clamd", DOWN),
                     id="down-tempfail"),
        pytest.param({}, VirusScanResult(error=TIMED_OUT), "tempfail", ScanFailed("clamd", TIMED_OUT),
                     id="timed-out-tempfail"),
        pytest.param({}, VirusScanResult(error=DOWN), "accept_tagged", NotScanned("clamd", DOWN),
                     id="down-accept-tagged"),
        pytest.param({}, VirusScanResult(error=TIMED_OUT), "accept_tagged", NotScanned("clamd", TIMED_OUT),
                     id="timed-out-accept-tagged"),
        pytest.param({}, VirusScanResult(virus="Eicar-Test-Signature"), "accept_tagged",
                     Infected("Eicar-Test-Signature"), id="fail-mode-does-not-touch-a-found-virus"),
        # "nothing, not even the allow list, exempts from virus scanning" (SPEC §5)
        pytest.param({"allow_list": ("example.org",)}, VirusScanResult(virus="Eicar-Test-Signature"),
                     "tempfail", Infected("Eicar-Test-Signature"), id="allowed-sender-still-scanned"),
        pytest.param({"spam_scan": False}, VirusScanResult(virus="Eicar-Test-Signature"), "tempfail",
                     Infected("Eicar-Test-Signature"), id="spam-scan-off-virus-scan-on"),
    ],
)
async def test_virus_scan(mailbox: dict[str, Any], answer: VirusScanResult, fail_mode: str,
                          expected: CheckResult) -> None:
    scans = FakeScans(virus=answer)
    ctx = context(rules=rules(**mailbox), scans=scans, policy=policy(scanner_failure={"virus": fail_mode}))
    before = failures("clamd", fail_mode)
    assert await virus_scan.check(ctx) == expected
    # clamd is asked only for a mailbox that scans, and a failure is counted under its fail mode
    assert scans.virus_calls == (0 if expected == Pass("off") else 1)
    assert scans.spam_calls == 0
    assert failures("clamd", fail_mode) - before == (1 if isinstance(expected, ScanFailed | NotScanned) else 0)
