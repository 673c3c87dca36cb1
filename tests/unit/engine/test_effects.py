"""The effects table (engine/effects.py), row by row: for each disposition, the
effects a mailbox with every effect switched on gets, inbound and outbound.

"Never forward or auto-reply quarantined, spam or infected mail" (SPEC §3, §6)
is this table alone: the planner's output is checked against ALLOWED_EFFECTS,
and a planner that asked for more would fail loudly instead of forwarding.
"""

from __future__ import annotations

import pytest

from mailadmin.checks.context import RecipientContext
from mailadmin.engine.effects import (
    ALLOWED_EFFECTS,
    AddHeader,
    AutoReplyTo,
    Direction,
    ForwardTo,
    StoreQuarantine,
    TagSpam,
    VirusReportTo,
    check_allowed,
    disposition_for,
    plan_effects,
)
from mailadmin.engine.scans import MessageScans
from mailadmin.message import Envelope, Message
from mailadmin.store.snapshots import AutoReply, Forward
from mailadmin.verdicts import (
    Allowed,
    Blocked,
    Disposition,
    Infected,
    NotScanned,
    Refused,
    ScanFailed,
    Spam,
    Verdict,
)

from .conftest import NOW, make_config, make_message, rules_for

BOX = "taro@example.jp"
CLAMD_DOWN = (NotScanned("clamd", "connection refused"),)


def context(*, spam_quarantine: bool = False) -> RecipientContext:
    """A mailbox that forwards (keeping a copy) and auto-replies: every effect is possible."""
    rules = rules_for(BOX, forwarding=(Forward("away@elsewhere.example", keep_copy=True),),
                      auto_reply=AutoReply(enabled=True, subject="Away", body="Back on Monday"),
                      spam_quarantine=spam_quarantine)
    envelope = Envelope(mail_from="alice@example.org", rcpt_tos=(BOX,))
    message = Message(make_message())
    config = make_config()
    return RecipientContext(envelope, message, BOX, rules, config.policies.default, config.filters,
                            MessageScans(message, envelope, None, None), NOW)


ROWS = [
    # (verdict, spam_quarantine, notes, direction) -> disposition, effect types, mailbox keeps a copy
    pytest.param(None, False, (), "inbound",
                 Disposition.DELIVER, {ForwardTo, AutoReplyTo}, True, id="no-rule-forward-and-reply"),
    pytest.param(Allowed("alice@example.org"), False, (), "inbound",
                 Disposition.DELIVER, {ForwardTo, AutoReplyTo}, True, id="allowed-like-no-rule"),
    pytest.param(None, False, CLAMD_DOWN, "inbound",
                 Disposition.DELIVER, {AddHeader, ForwardTo, AutoReplyTo}, True, id="not-scanned-header"),
    pytest.param(Spam(9.0, 5.0), False, (), "inbound",
                 Disposition.DELIVER_TAGGED, {TagSpam, ForwardTo}, True, id="spam-tagged-forwarded-no-reply"),
    pytest.param(Spam(9.0, 5.0), True, (), "inbound",
                 Disposition.QUARANTINE, {StoreQuarantine}, False, id="spam-quarantined"),
    pytest.param(Blocked("reject_sender", "example.org"), False, (), "inbound",
                 Disposition.QUARANTINE, {StoreQuarantine}, False, id="blocked-quarantined"),
    pytest.param(Infected("Eicar-Test-Signature"), False, (), "inbound",
                 Disposition.DROP_INFECTED, {VirusReportTo}, False, id="infected-dropped-reported"),
    pytest.param(ScanFailed("spamd", "timed out"), False, (), "inbound",
                 Disposition.TEMPFAIL, set(), False, id="scan-failed-deferred"),
    pytest.param(Refused("overseas", "unlock first"), False, (), "outbound",
                 Disposition.REJECT, set(), False, id="outbound-refused"),
    pytest.param(Infected("Eicar-Test-Signature"), False, (), "outbound",
                 Disposition.DROP_INFECTED, {VirusReportTo}, False, id="outbound-infected-reported"),
    pytest.param(ScanFailed("clamd", "refused"), False, (), "outbound",
                 Disposition.TEMPFAIL, set(), False, id="outbound-scan-failed"),
    pytest.param(None, False, CLAMD_DOWN, "outbound",
                 Disposition.DELIVER, {AddHeader}, False, id="outbound-not-scanned"),
    pytest.param(None, False, (), "outbound",
                 Disposition.DELIVER, set(), False, id="outbound-passed"),
]


@pytest.mark.parametrize("verdict, spam_quarantine, notes, direction, disposition, types, keeps_copy", ROWS)
def test_effects_table_row(verdict: Verdict | None, spam_quarantine: bool, notes: tuple[NotScanned, ...],
                           direction: Direction, disposition: Disposition, types: set[type],
                           keeps_copy: bool) -> None:
    ctx = context(spam_quarantine=spam_quarantine)
    assert disposition_for(verdict, ctx if direction == "inbound" else None) is disposition
    effects, deliver_local = plan_effects(disposition, verdict, ctx, notes, direction)
    assert {type(e) for e in effects} == types
    assert types <= ALLOWED_EFFECTS[disposition]
    assert deliver_local is keeps_copy


def test_every_row_names_a_disposition_and_every_disposition_has_a_row() -> None:
    assert set(ALLOWED_EFFECTS) == set(Disposition)
    assert {row.values[4] for row in ROWS} == set(Disposition)


def test_quarantine_effect_carries_the_rule_and_entry_of_the_verdict() -> None:
    effects, _ = plan_effects(Disposition.QUARANTINE, Blocked("reject_subject", "未承諾広告"), context(), ())
    assert effects == (StoreQuarantine("reject_subject", "未承諾広告", 7),)
    effects, _ = plan_effects(Disposition.QUARANTINE, Spam(9.04, 5.0), context(spam_quarantine=True), ())
    assert effects == (StoreQuarantine("spam", "9.0/5.0", 7),)


def test_the_virus_report_goes_to_the_owner_inbound_and_to_the_sender_outbound() -> None:
    inbound, _ = plan_effects(Disposition.DROP_INFECTED, Infected("X"), context(), ())
    outbound, _ = plan_effects(Disposition.DROP_INFECTED, Infected("X"), context(), (), "outbound")
    assert [(e.to, e.direction) for e in inbound if isinstance(e, VirusReportTo)] == [(BOX, "inbound")]
    assert [(e.to, e.direction) for e in outbound if isinstance(e, VirusReportTo)] == [(BOX, "outbound")]


@pytest.mark.parametrize("disposition", [Disposition.QUARANTINE, Disposition.DROP_INFECTED,
                                         Disposition.DELIVER_TAGGED, Disposition.TEMPFAIL, Disposition.REJECT])
def test_a_planner_asking_to_reply_to_unwanted_mail_fails_loudly(disposition: Disposition) -> None:
    reply = AutoReplyTo("alice@example.org", "Away", "Back on Monday", 24)
    with pytest.raises(AssertionError, match="AutoReplyTo is not allowed"):
        check_allowed(disposition, [reply])
