"""site_block, the postmaster's site-wide blocks from filters/ (SPEC §11): sender
and subject blocks and header conditions applied to every mailbox, matched as
the subscriber's lists are (SPEC §4).  A match is ``Blocked("site_block", …)``
whatever the mailbox has set; that it runs before the subscriber's allow list
is the chain's order (tests/unit/engine/test_decide.py, test_chain_order)."""

from __future__ import annotations

from typing import Any

import pytest

from mailadmin.checks import site_filters
from mailadmin.config.model import SiteFilters
from mailadmin.message import Message
from mailadmin.verdicts import Blocked, CheckResult, Pass

from .conftest import FROM, PLAIN, SENDER, SUBJECT, TO, context, encoded_word, message, rules

PROMO = "From: Promo <promo@spam.example>"


def blocked(entry: str) -> Blocked:
    return Blocked("site_block", entry)


@pytest.mark.parametrize(
    ("filters", "mailbox", "mail_from", "msg", "expected"),
    [
        # sender blocks: the From reject list's matching
        pytest.param(SiteFilters(sender_block=("example.org",)), {}, SENDER, PLAIN,
                     blocked("example.org"), id="sender-domain"),
        pytest.param(SiteFilters(sender_block=("example.org",)), {}, "a@mx.example.org", message(TO, SUBJECT),
                     blocked("example.org"), id="sender-domain-matches-a-subdomain"),
        pytest.param(SiteFilters(sender_block=("example.org",)), {}, "a@badexample.org", message(TO, SUBJECT),
                     Pass(), id="sender-domain-only-at-a-label-boundary"),
        pytest.param(SiteFilters(sender_block=("@example.org",)), {}, "a@mx.example.org", message(TO, SUBJECT),
                     Pass(), id="sender-at-domain-not-a-subdomain"),
        pytest.param(SiteFilters(sender_block=("ALICE@example.ORG",)), {}, "alice@EXAMPLE.org",
                     message(TO, SUBJECT), blocked("ALICE@example.ORG"), id="sender-case-insensitive"),
        pytest.param(SiteFilters(sender_block=("spam.example",)), {}, "bounce@mailer.example",
                     message(PROMO, TO, SUBJECT), blocked("spam.example"), id="sender-header-from"),
        pytest.param(SiteFilters(sender_block=("spam.example",)), {}, SENDER,
                     message(FROM, "Reply-To: promo@spam.example", TO), Pass(), id="reply-to-is-not-a-sender"),
        # subject blocks: decoded, NFKC + casefold substrings
        pytest.param(SiteFilters(subject_block=("sale",)), {}, SENDER, message(FROM, TO, "Subject: Big SALE"),
                     blocked("sale"), id="subject-case-insensitive"),
        pytest.param(SiteFilters(subject_block=("ｓａｌｅ",)), {}, SENDER,
                     message(FROM, TO, "Subject: Big SALE"), blocked("ｓａｌｅ"), id="subject-full-width-entry"),
        pytest.param(SiteFilters(subject_block=("未承諾広告",)), {}, SENDER,
                     message(FROM, TO, f"Subject: {encoded_word('【未承諾広告】', 'iso-2022-jp')}"),
                     blocked("未承諾広告"), id="subject-encoded-iso-2022-jp"),
        pytest.param(SiteFilters(subject_block=("sale",)), {}, SENDER, message(FROM, TO), Pass(),
                     id="subject-missing"),
        # header conditions, named by condition
        pytest.param(SiteFilters(header_conditions=frozenset({"from_missing"})), {}, SENDER,
                     message(TO, SUBJECT), blocked("from_missing"), id="header-condition"),
        pytest.param(SiteFilters(header_conditions=frozenset({"subject_empty", "from_empty_angle"})), {}, "",
                     message("From: <>", TO, "Subject:"), blocked("from_empty_angle"),
                     id="header-conditions-in-checkbox-order"),
        pytest.param(SiteFilters(header_conditions=frozenset({"from_missing"})), {}, SENDER, PLAIN, Pass(),
                     id="header-condition-not-met"),
        # within the check: sender, then subject, then header conditions
        pytest.param(SiteFilters(sender_block=("example.org",), subject_block=("hello",),
                                 header_conditions=frozenset({"subject_empty"})),
                     {}, SENDER, PLAIN, blocked("example.org"), id="sender-block-named-before-subject-block"),
        pytest.param(SiteFilters(subject_block=("hello",), header_conditions=frozenset({"from_missing"})),
                     {}, SENDER, message(TO, SUBJECT), blocked("hello"), id="subject-block-named-before-condition"),
        # "applied to every mailbox": the mailbox's own settings change nothing
        pytest.param(SiteFilters(sender_block=("example.org",)), {"allow_list": ("example.org",)}, SENDER, PLAIN,
                     blocked("example.org"), id="mailbox-allow-entry-opens-no-hole"),
        pytest.param(SiteFilters(sender_block=("example.org",)), {"allow_list": ("alice@example.org",)},
                     SENDER, PLAIN, blocked("example.org"), id="mailbox-allow-address-opens-no-hole"),
        pytest.param(SiteFilters(), {"reject_sender": ("example.org",), "reject_subject": ("hello",),
                                     "header_conditions": frozenset({"from_missing"})},
                     SENDER, message(TO, SUBJECT), Pass(), id="mailbox-lists-are-not-site-blocks"),
        # a site allow entry is the allow_list check's, not an exemption from site blocks
        pytest.param(SiteFilters(sender_block=("example.org",), allow=("example.org",)), {}, SENDER, PLAIN,
                     blocked("example.org"), id="site-allow-entry-is-no-exemption"),
        pytest.param(SiteFilters(), {}, "", message(TO), Pass(), id="no-filters"),
    ],
)
async def test_site_block(filters: SiteFilters, mailbox: dict[str, Any], mail_from: str, msg: Message,
                          expected: CheckResult) -> None:
    ctx = context(rules=rules(**mailbox), filters=filters, mail_from=mail_from, message=msg)
    assert await site_filters.check_block(ctx) == expected
