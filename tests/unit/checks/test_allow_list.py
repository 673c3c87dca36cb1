"""allow_list, 受信許可設定 (SPEC §5) and the site's allow entries from filters/
(SPEC §11): "same entry syntax and matching as the From reject list"; a sender
on it is ``Allowed``, which ends the chain before the reject lists, header
conditions and spam scan.  That the chain puts virus_scan and site_block before
it is tested in tests/unit/engine/test_decide.py (test_chain_order,
test_infected_is_dropped_with_a_report_even_from_an_allowed_sender)."""

from __future__ import annotations

from typing import Any

import pytest

from mailadmin.checks import allow_list
from mailadmin.config.model import SiteFilters
from mailadmin.message import Message
from mailadmin.verdicts import Allowed, CheckResult, Pass

from .conftest import FROM, PLAIN, SENDER, SUBJECT, TO, context, message, rules

FRIEND = "From: Friend <friend@partner.example>"


@pytest.mark.parametrize(
    ("mailbox", "site", "mail_from", "msg", "expected"),
    [
        # the From reject list's syntax and matching: domain, @domain, address
        pytest.param({"allow_list": ("example.org",)}, (), SENDER, PLAIN,
                     Allowed("example.org", "mailbox"), id="domain"),
        pytest.param({"allow_list": ("example.org",)}, (), "a@mx.example.org", message(TO, SUBJECT),
                     Allowed("example.org", "mailbox"), id="domain-matches-a-subdomain"),
        pytest.param({"allow_list": ("example.org",)}, (), "a@badexample.org", message(TO, SUBJECT),
                     Pass(), id="domain-only-at-a-label-boundary"),
        pytest.param({"allow_list": ("@example.org",)}, (), SENDER, PLAIN,
                     Allowed("@example.org", "mailbox"), id="at-domain"),
        pytest.param({"allow_list": ("@example.org",)}, (), "a@mx.example.org", message(TO, SUBJECT),
                     Pass(), id="at-domain-not-a-subdomain"),
        pytest.param({"allow_list": ("alice@example.org",)}, (), SENDER, PLAIN,
                     Allowed("alice@example.org", "mailbox"), id="address"),
        pytest.param({"allow_list": ("alice@example.org",)}, (), "bob@example.org", message(TO, SUBJECT),
                     Pass(), id="address-not-another-local-part"),
        pytest.param({"allow_list": ("ALICE@Example.ORG",)}, (), "Alice@EXAMPLE.org", message(TO, SUBJECT),
                     Allowed("ALICE@Example.ORG", "mailbox"), id="case-insensitive"),
        # the envelope sender and every header From address
        pytest.param({"allow_list": ("partner.example",)}, (), "bounce@mailer.example",
                     message(FRIEND, TO, SUBJECT), Allowed("partner.example", "mailbox"), id="header-from"),
        pytest.param({"allow_list": ("partner.example",)}, (), "", message(FRIEND, TO, SUBJECT),
                     Allowed("partner.example", "mailbox"), id="header-from-of-a-null-sender"),
        pytest.param({"allow_list": ("partner.example",)}, (), SENDER,
                     message(FROM, "Reply-To: friend@partner.example", TO), Pass(), id="reply-to-is-not-a-sender"),
        pytest.param({}, (), SENDER, PLAIN, Pass(), id="empty-lists"),
        # "never quarantined or tagged by reject lists, header conditions or spam scanning":
        # what else the mailbox has set does not change this check's answer
        pytest.param({"allow_list": ("example.org",), "reject_sender": ("example.org",)}, (), SENDER, PLAIN,
                     Allowed("example.org", "mailbox"), id="also-on-the-reject-list"),
        pytest.param({"allow_list": ("alice@example.org",), "reject_subject": ("hello",),
                      "header_conditions": frozenset({"from_missing", "subject_missing"})},
                     (), SENDER, message(TO), Allowed("alice@example.org", "mailbox"),
                     id="also-meets-reject-subject-and-header-conditions"),
        # filters/ allow entries work like a subscriber's; the mailbox's own entry is named first
        pytest.param({}, ("example.org",), SENDER, PLAIN, Allowed("example.org", "site"), id="site-entry"),
        pytest.param({}, ("@partner.example",), "bounce@mailer.example", message(FRIEND, TO),
                     Allowed("@partner.example", "site"), id="site-entry-header-from"),
        pytest.param({}, ("partner.example",), SENDER, PLAIN, Pass(), id="site-entry-no-match"),
        pytest.param({"allow_list": ("alice@example.org",)}, ("example.org",), SENDER, PLAIN,
                     Allowed("alice@example.org", "mailbox"), id="mailbox-entry-before-site-entry"),
        pytest.param({"allow_list": ("other.example",)}, ("example.org",), SENDER, PLAIN,
                     Allowed("example.org", "site"), id="site-entry-when-the-mailbox-has-none-matching"),
        # the first entry in list order is the one reported
        pytest.param({"allow_list": ("other.example", "@example.org", "example.org")}, (), SENDER, PLAIN,
                     Allowed("@example.org", "mailbox"), id="first-entry-in-list-order"),
    ],
)
async def test_allow_list(mailbox: dict[str, Any], site: tuple[str, ...], mail_from: str, msg: Message,
                          expected: CheckResult) -> None:
    ctx = context(rules=rules(**mailbox), filters=SiteFilters(allow=site), mail_from=mail_from, message=msg)
    assert await allow_list.check(ctx) == expected
