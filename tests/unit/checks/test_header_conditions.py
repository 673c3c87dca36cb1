"""header_conditions, the five ヘッダー受信拒否 checkboxes (SPEC §4): From header
missing; From is ``<>``; From is empty; Subject header missing; Subject is
empty.  Only the boxes the subscriber checked count; a message meeting one is
``Blocked`` with the condition's name, the first in checkbox order."""

from __future__ import annotations

import pytest

from mailadmin.checks import header_conditions
from mailadmin.message import Message
from mailadmin.verdicts import Blocked, CheckResult, Pass

from .conftest import FROM, PLAIN, SUBJECT, TO, context, encoded_word, message, rules

ALL = frozenset({"from_missing", "from_empty_angle", "from_empty", "subject_missing", "subject_empty"})


def blocked(condition: str) -> Blocked:
    return Blocked("header_conditions", condition)


@pytest.mark.parametrize(
    ("conditions", "msg", "expected"),
    [
        # "From header missing"
        pytest.param({"from_missing"}, message(TO, SUBJECT), blocked("from_missing"), id="from-missing"),
        pytest.param({"from_missing"}, PLAIN, Pass(), id="from-missing-but-from-present"),
        pytest.param({"from_missing"}, message("from: a@example.org", TO, SUBJECT), Pass(),
                     id="from-missing-header-name-case-insensitive"),
        pytest.param({"from_missing"}, message("From:", TO, SUBJECT), Pass(),
                     id="from-missing-but-from-empty"),
        # "From is <>"
        pytest.param({"from_empty_angle"}, message("From: <>", TO, SUBJECT), blocked("from_empty_angle"),
                     id="from-empty-angle"),
        pytest.param({"from_empty_angle"}, message("From: < >", TO, SUBJECT), blocked("from_empty_angle"),
                     id="from-empty-angle-with-space"),
        pytest.param({"from_empty_angle"}, message("From:", TO, SUBJECT), Pass(),
                     id="from-empty-angle-but-from-empty"),
        pytest.param({"from_empty_angle"}, message(TO, SUBJECT), Pass(),
                     id="from-empty-angle-but-from-missing"),
        pytest.param({"from_empty_angle"}, PLAIN, Pass(), id="from-empty-angle-but-an-address"),
        # "From is empty"
        pytest.param({"from_empty"}, message("From:", TO, SUBJECT), blocked("from_empty"), id="from-empty"),
        pytest.param({"from_empty"}, message("From:   \t", TO, SUBJECT), blocked("from_empty"),
                     id="from-empty-white-space"),
        pytest.param({"from_empty"}, message(TO, SUBJECT), Pass(), id="from-empty-but-from-missing"),
        pytest.param({"from_empty"}, message("From: <>", TO, SUBJECT), Pass(), id="from-empty-but-angle"),
        pytest.param({"from_empty"}, PLAIN, Pass(), id="from-empty-but-an-address"),
        # "Subject header missing"
        pytest.param({"subject_missing"}, message(FROM, TO), blocked("subject_missing"), id="subject-missing"),
        pytest.param({"subject_missing"}, message(FROM, TO, "Subject:"), Pass(),
                     id="subject-missing-but-subject-empty"),
        pytest.param({"subject_missing"}, message(FROM, TO, "SUBJECT: hi"), Pass(),
                     id="subject-missing-header-name-case-insensitive"),
        # "Subject is empty" (after decoding)
        pytest.param({"subject_empty"}, message(FROM, TO, "Subject:"), blocked("subject_empty"),
                     id="subject-empty"),
        pytest.param({"subject_empty"}, message(FROM, TO, "Subject:    "), blocked("subject_empty"),
                     id="subject-empty-white-space"),
        pytest.param({"subject_empty"}, message(FROM, TO, f"Subject: {encoded_word(' ', 'utf-8')}"),
                     blocked("subject_empty"), id="subject-empty-after-decoding"),
        pytest.param({"subject_empty"}, message(FROM, TO, f"Subject: {encoded_word('', 'iso-2022-jp')}"),
                     blocked("subject_empty"), id="subject-empty-encoded-word"),
        pytest.param({"subject_empty"}, message(FROM, TO, f"Subject: {encoded_word('お知らせ', 'iso-2022-jp')}"),
                     Pass(), id="subject-empty-but-encoded-text"),
        pytest.param({"subject_empty"}, message(FROM, TO), Pass(), id="subject-empty-but-subject-missing"),
        pytest.param({"subject_empty"}, PLAIN, Pass(), id="subject-empty-but-a-subject"),
        # only checked boxes count; "Unchecking all removes the setting"
        pytest.param({"subject_missing"}, message(TO, SUBJECT), Pass(), id="unchecked-condition-met"),
        pytest.param(set(), message(TO), Pass(), id="nothing-checked"),
        pytest.param(ALL, PLAIN, Pass(), id="all-checked-ordinary-mail"),
        # several met: the first in checkbox order, whatever order the set holds
        pytest.param(ALL, message(TO), blocked("from_missing"), id="checkbox-order-from-first"),
        pytest.param({"subject_missing", "from_empty"}, message("From:", TO), blocked("from_empty"),
                     id="checkbox-order-from-empty-before-subject"),
        pytest.param({"subject_empty", "subject_missing", "from_empty_angle"}, message("From: <>", TO),
                     blocked("from_empty_angle"), id="checkbox-order-angle-before-subject"),
    ],
)
async def test_header_conditions(conditions: set[str], msg: Message, expected: CheckResult) -> None:
    ctx = context(rules=rules(header_conditions=frozenset(conditions)), message=msg)
    assert await header_conditions.check(ctx) == expected
