"""No message that a test or benchmark hands to a real scanner or MTA carries a
fixed calendar date: spamd scores a Date more than a few days old as spam
(DATE_IN_PAST_*), so such a test would pass today and fail next week.

Messages are dated with ``email.utils.formatdate()`` (or the test's own
clock).  Only the pure unit tests of mailtext, which never reach a scanner,
may quote a fixed Date as input."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# An RFC 5322 date with a literal year, as a header or as a formatted string.
FIXED_DATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                        r" \d{4} \d\d:\d\d")
# strftime patterns that turn a fixed datetime into a Date header.
DATE_FROM_LITERAL = re.compile(r"datetime\(\d{4}, .*\)\.strftime\(\"%a, %d %b %Y")
SCANNED_TREES = ("tests/integration", "tests/e2e", "tests/fixtures", "bench")


def test_messages_reaching_real_components_are_dated_now() -> None:
    offenders = []
    for tree in SCANNED_TREES:
        for path in sorted((ROOT / tree).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if FIXED_DATE.search(line) or DATE_FROM_LITERAL.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "fixed dates in messages:\n" + "\n".join(offenders)


def test_the_pattern_finds_what_it_is_for() -> None:
    assert FIXED_DATE.search('"Date: Mon, 23 Nov 2026 10:00:00 +0900\\r\\n"')
    assert DATE_FROM_LITERAL.search('dt.datetime(2026, 11, 23).strftime("%a, %d %b %Y %H:%M:%S +0000")')
    assert not FIXED_DATE.search('f"Date: {email.utils.formatdate()}"')
