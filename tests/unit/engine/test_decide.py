"""The engine decides per recipient, from each mailbox's own rules (SPEC §3–§9, §10)."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest

from mailadmin.config.model import SiteFilters
from mailadmin.engine.effects import (
    ALLOWED_EFFECTS,
    AddHeader,
    AutoReplyTo,
    ForwardTo,
    StoreQuarantine,
    TagSpam,
    VirusReportTo,
)
from mailadmin.message import Envelope, Message
from mailadmin.store.snapshots import AutoReply, Forward, SenderReply
from mailadmin.verdicts import Disposition

from tests.fixtures.config import make_config

from .conftest import (
    NOW,
    ScriptedClamd,
    ScriptedSpamd,
    make_engine,
    make_message,
    rules_for,
    with_policy,
)


def env(*rcpts: str, mail_from: str = "alice@example.org", **kw: object) -> Envelope:
    return Envelope(mail_from=mail_from, rcpt_tos=rcpts, **kw)  # type: ignore[arg-type]


async def test_four_recipients_four_outcomes() -> None:
    """SPEC §10: each recipient gets exactly its own mailbox's outcome."""
    boxes = [
        rules_for("a@example.jp", reject_sender=("example.org",)),
        rules_for("b@example.jp"),  # spam scan on, quarantine off -> [spam] tag
        rules_for("c@example.jp", spam_scan=False,
                  forwarding=(Forward("c@elsewhere.example", keep_copy=False),)),
        rules_for("d@example.jp", spam_scan=False),
    ]
    spamd = ScriptedSpamd(score=9.0)
    engine = make_engine(boxes, spamd=spamd)
    decision = await engine.decide(env(*(b.address for b in boxes)), Message(make_message()))

    a, b, c, d = (decision.outcome(x.address) for x in boxes)
    assert a.disposition is Disposition.QUARANTINE and a.reason == "reject_sender:example.org"
    assert not a.deliver_local
    assert b.disposition is Disposition.DELIVER_TAGGED
    assert any(isinstance(e, TagSpam) and e.prefix == "[spam] " for e in b.effects)
    assert c.disposition is Disposition.DELIVER and not c.deliver_local
    assert ForwardTo(("c@elsewhere.example",), False) in c.effects
    assert d.disposition is Disposition.DELIVER and d.deliver_local and d.effects == ()

    groups = {g.recipients: g.changes for g in decision.content_groups()}
    assert set(groups) == {("b@example.jp",), ("d@example.jp",)}
    assert groups[("d@example.jp",)] == ()
    assert isinstance(groups[("b@example.jp",)][0], TagSpam)
    # spam scanned once for the message, not once per recipient
    assert spamd.calls == 1 and decision.scans["spam"] == 1


async def test_scans_run_once_per_message_and_only_when_asked() -> None:
    boxes = [rules_for(f"u{i}@example.jp") for i in range(5)]
    clamd, spamd = ScriptedClamd(), ScriptedSpamd()
    engine = make_engine(boxes, clamd=clamd, spamd=spamd)
    await engine.decide(env(*(b.address for b in boxes)), Message(make_message()))
    assert (clamd.calls, spamd.calls) == (1, 1)

    off = [rules_for("x@example.jp", virus_scan=False, spam_scan=False)]
    clamd, spamd = ScriptedClamd(), ScriptedSpamd()
    await make_engine(off, clamd=clamd, spamd=spamd).decide(env("x@example.jp"), Message(make_message()))
    assert (clamd.calls, spamd.calls) == (0, 0)


async def test_infected_is_dropped_with_a_report_even_from_an_allowed_sender() -> None:
    box = rules_for("taro@example.jp", allow_list=("example.org",),
                    forwarding=(Forward("f@elsewhere.example", True),),
                    auto_reply=AutoReply(enabled=True, subject="away", body="away"))
    engine = make_engine([box], clamd=ScriptedClamd(virus="Eicar-Test"))
    o = (await engine.decide(env(box.address), Message(make_message(body="VIRUS-MARKER")))).outcome(box.address)
    assert o.disposition is Disposition.DROP_INFECTED
    assert o.effects == (VirusReportTo("taro@example.jp", "Eicar-Test", "inbound"),)
    assert not o.deliver_local


@pytest.mark.parametrize(
    "box_kw, filters, expected, reason",
    [
        ({"allow_list": ("example.org",), "reject_sender": ("example.org",)}, SiteFilters(),
         Disposition.DELIVER, "allowed:example.org"),
        # allow list beats spam tagging and header conditions
        ({"allow_list": ("alice@example.org",), "header_conditions": frozenset({"subject_missing"})},
         SiteFilters(), Disposition.DELIVER, "allowed:alice@example.org"),
        # a site-wide block beats a subscriber's allow entry
        ({"allow_list": ("example.org",)}, SiteFilters(sender_block=("example.org",)),
         Disposition.QUARANTINE, "site_block:example.org"),
        # a site-wide allow entry works like a subscriber's
        ({"reject_sender": ("example.org",)}, SiteFilters(allow=("example.org",)),
         Disposition.DELIVER, "allowed:example.org"),
        ({"reject_subject": ("ｓａｌｅ",)}, SiteFilters(), Disposition.QUARANTINE, "reject_subject:ｓａｌｅ"),
        ({"header_conditions": frozenset({"subject_missing"})}, SiteFilters(),
         Disposition.QUARANTINE, "header_conditions:subject_missing"),
    ],
)
async def test_chain_order(box_kw: dict[str, object], filters: SiteFilters,
                           expected: Disposition, reason: str) -> None:
    box = rules_for("taro@example.jp", **box_kw)  # type: ignore[arg-type]
    engine = make_engine([box], spamd=ScriptedSpamd(score=50.0), config=make_config(filters=filters))
    subject = None if "subject_missing" in str(box_kw) else "Big SALE today"
    o = (await engine.decide(env(box.address), Message(make_message(subject=subject)))).outcome(box.address)
    assert (o.disposition, o.reason) == (expected, reason)


async def test_header_from_is_matched_as_well_as_envelope_sender() -> None:
    box = rules_for("taro@example.jp", reject_sender=("@spam.example",))
    engine = make_engine([box])
    msg = Message(make_message(sender="Promo <promo@spam.example>"))
    o = (await engine.decide(env(box.address, mail_from="bounce@mailer.example"), msg)).outcome(box.address)
    assert o.disposition is Disposition.QUARANTINE
    assert StoreQuarantine("reject_sender", "@spam.example", 7) in o.effects


async def test_spam_with_quarantine_on_is_quarantined_not_tagged() -> None:
    box = rules_for("taro@example.jp", spam_quarantine=True)
    o = (await make_engine([box], spamd=ScriptedSpamd(score=6.0)).decide(
        env(box.address), Message(make_message()))).outcome(box.address)
    assert o.disposition is Disposition.QUARANTINE and o.reason.startswith("spam:")


async def test_threshold_is_policy() -> None:
    box = rules_for("taro@example.jp")
    cfg = make_config(with_policy(spam_scan={"threshold": 10.0}))
    o = (await make_engine([box], spamd=ScriptedSpamd(score=6.0), config=cfg).decide(
        env(box.address), Message(make_message()))).outcome(box.address)
    assert o.disposition is Disposition.DELIVER


@pytest.mark.parametrize("scanner", ["clamd", "spamd"])
async def test_scanner_down_tempfails_by_default(scanner: str) -> None:
    box = rules_for("taro@example.jp")
    engine = make_engine([box], clamd=ScriptedClamd(fail=scanner == "clamd"),
                         spamd=ScriptedSpamd(fail=scanner == "spamd"))
    decision = await engine.decide(env(box.address), Message(make_message()))
    assert decision.outcome(box.address).disposition is Disposition.TEMPFAIL
    assert decision.tempfail is not None and decision.tempfail.code == 451


async def test_scanner_down_accept_tagged_delivers_with_header() -> None:
    box = rules_for("taro@example.jp")
    cfg = make_config(with_policy(scanner_failure={"virus": "accept_tagged", "spam": "accept_tagged"}))
    engine = make_engine([box], clamd=ScriptedClamd(fail=True), spamd=ScriptedSpamd(fail=True), config=cfg)
    o = (await engine.decide(env(box.address), Message(make_message()))).outcome(box.address)
    assert o.disposition is Disposition.DELIVER
    headers = [e for e in o.effects if isinstance(e, AddHeader)]
    assert {h.value for h in headers} == {"clamd unavailable", "spamd unavailable"}


async def test_forwarding_keep_copy_and_loop() -> None:
    box = rules_for("taro@example.jp", forwarding=(Forward("a@elsewhere.example", True),
                                                   Forward("b@elsewhere.example", False)))
    engine = make_engine([box])
    o = (await engine.decide(env(box.address), Message(make_message()))).outcome(box.address)
    assert ForwardTo(("a@elsewhere.example", "b@elsewhere.example"), True) in o.effects
    assert o.deliver_local  # one destination keeps a copy

    looped = Message(make_message(headers={"X-Mailadmin-Loop": "Taro@example.jp"}))
    o = (await engine.decide(env(box.address), looped)).outcome(box.address)
    assert not any(isinstance(e, ForwardTo) for e in o.effects) and o.deliver_local


async def test_auto_reply_planned_with_per_sender_text_and_suppressed_for_lists() -> None:
    ar = AutoReply(enabled=True, subject="Away", body="I am away",
                   per_sender=(SenderReply("example.org", "Away (partners)", "Partner text"),))
    box = rules_for("taro@example.jp", auto_reply=ar)
    engine = make_engine([box])
    o = (await engine.decide(env(box.address), Message(make_message()))).outcome(box.address)
    assert AutoReplyTo("alice@example.org", "Away (partners)", "Partner text", 24) in o.effects

    o = (await engine.decide(env(box.address, mail_from="bob@other.example"),
                             Message(make_message(sender="bob@other.example")))).outcome(box.address)
    assert AutoReplyTo("bob@other.example", "Away", "I am away", 24) in o.effects

    listmail = Message(make_message(headers={"List-Id": "<news.example.org>"}))
    o = (await engine.decide(env(box.address), listmail)).outcome(box.address)
    assert not any(isinstance(e, AutoReplyTo) for e in o.effects)

    o = (await engine.decide(env(box.address, mail_from=""), Message(make_message()))).outcome(box.address)
    assert not any(isinstance(e, AutoReplyTo) for e in o.effects)


async def test_auto_reply_period() -> None:
    ar = AutoReply(enabled=True, subject="Away", body="x",
                   start_date=dt.date(2026, 12, 1), end_date=dt.date(2026, 12, 31))
    box = rules_for("taro@example.jp", auto_reply=ar)
    before = make_engine([box], now=NOW)
    inside = make_engine([box], now=NOW + dt.timedelta(days=10))
    msg = Message(make_message())
    o1 = (await before.decide(env(box.address), msg)).outcome(box.address)
    o2 = (await inside.decide(env(box.address), msg)).outcome(box.address)
    assert not any(isinstance(e, AutoReplyTo) for e in o1.effects)
    assert any(isinstance(e, AutoReplyTo) for e in o2.effects)


async def test_no_forward_or_reply_for_spam_quarantine_or_infected() -> None:
    extras = dict(forwarding=(Forward("f@elsewhere.example", True),),
                  auto_reply=AutoReply(enabled=True, subject="s", body="b"))
    tagged = rules_for("t@example.jp", **extras)
    quarantined = rules_for("q@example.jp", reject_sender=("example.org",), **extras)
    engine = make_engine([tagged, quarantined], spamd=ScriptedSpamd(score=8.0))
    d = await engine.decide(env(tagged.address, quarantined.address), Message(make_message()))
    t, q = d.outcome(tagged.address), d.outcome(quarantined.address)
    assert t.disposition is Disposition.DELIVER_TAGGED
    assert not any(isinstance(e, AutoReplyTo) for e in t.effects)
    assert any(isinstance(e, ForwardTo) for e in t.effects)  # tagged spam reaches the inbox
    assert q.effects == (StoreQuarantine("reject_sender", "example.org", 7),)


def test_effects_table_never_forwards_or_replies_to_unwanted_mail() -> None:
    for disposition in (Disposition.QUARANTINE, Disposition.DROP_INFECTED,
                        Disposition.TEMPFAIL, Disposition.REJECT):
        assert ForwardTo not in ALLOWED_EFFECTS[disposition]
        assert AutoReplyTo not in ALLOWED_EFFECTS[disposition]
    assert AutoReplyTo not in ALLOWED_EFFECTS[Disposition.DELIVER_TAGGED]
    assert set(ALLOWED_EFFECTS) == set(Disposition)


async def test_unknown_recipient_is_left_to_the_mta() -> None:
    o = (await make_engine([]).decide(env("nobody@example.net"), Message(make_message()))).outcome("nobody@example.net")
    assert (o.disposition, o.reason, o.deliver_local, o.is_local_mailbox) == (Disposition.DELIVER, "not_local", True, False)


# ---------------------------------------------------------------- outbound (SPEC §7, §9)

SENDER = "taro@example.jp"


def outbound(ip: str, **kw: object) -> Envelope:
    return Envelope(mail_from=SENDER, rcpt_tos=("friend@example.net",), client_address=ip,
                    sasl_username=SENDER, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "ip, unlocked_until, policy_kw, expected",
    [
        ("8.8.8.8", None, {}, Disposition.REJECT),                              # US, restricted
        ("133.0.0.1", None, {}, Disposition.DELIVER),                           # JP
        ("8.8.8.8", NOW + dt.timedelta(days=1), {}, Disposition.DELIVER),       # unlocked
        ("8.8.8.8", NOW, {}, Disposition.REJECT),                               # unlock ended just now
        ("8.8.8.8", NOW - dt.timedelta(seconds=1), {}, Disposition.REJECT),     # expired by itself
        ("192.168.1.10", None, {}, Disposition.DELIVER),                        # private = domestic
        ("127.0.0.1", None, {}, Disposition.DELIVER),                           # loopback = domestic
        ("::1", None, {}, Disposition.DELIVER),
        ("2001:4860::1", None, {}, Disposition.REJECT),                         # v6, US
        ("2001:200::1", None, {}, Disposition.DELIVER),                         # v6, JP
        ("203.0.113.9", None, {}, Disposition.REJECT),                          # unknown -> restricted
        ("203.0.113.9", None, {"unknown_country": "domestic"}, Disposition.DELIVER),
        ("8.8.8.8", None, {"exempt_networks": (ipaddress.ip_network("8.8.8.0/24"),)}, Disposition.DELIVER),
        ("8.8.8.8", None, {"home_countries": ("JP", "US")}, Disposition.DELIVER),
    ],
)
async def test_overseas_restriction(ip: str, unlocked_until: dt.datetime | None,
                                    policy_kw: dict[str, object], expected: Disposition) -> None:
    box = rules_for(SENDER, overseas_unlocked_until=unlocked_until)
    countries = {"8.8.8.8": "US", "133.0.0.1": "JP", "2001:4860::1": "US", "2001:200::1": "JP"}
    cfg = make_config(with_policy(overseas=policy_kw))
    engine = make_engine([box], config=cfg, countries=countries)
    decision = await engine.decide(outbound(ip), Message(make_message(sender=SENDER)))
    o = decision.outcome("friend@example.net")
    assert o.disposition is expected
    if expected is Disposition.REJECT:
        assert o.reply is not None and o.reply.code == 554 and o.reply.status.startswith("5.")
        assert "https://mail.example.jp/" in o.reply.text and "nlock" in o.reply.text
        assert decision.rejected == o.reply


async def test_outbound_virus_dropped_with_one_report_to_the_sender() -> None:
    box = rules_for(SENDER)
    engine = make_engine([box], clamd=ScriptedClamd(virus="Eicar-Test"))
    envelope = Envelope(mail_from=SENDER, rcpt_tos=("a@example.net", "b@example.net"),
                        client_address="127.0.0.1", sasl_username=SENDER)
    d = await engine.decide(envelope, Message(make_message(body="VIRUS-MARKER")))
    assert {o.disposition for o in d.outcomes} == {Disposition.DROP_INFECTED}
    assert d.message_effects == (VirusReportTo(SENDER, "Eicar-Test", "outbound"),)


async def test_receiving_is_never_restricted() -> None:
    box = rules_for("taro@example.jp")
    engine = make_engine([box], countries={"8.8.8.8": "US"})
    o = (await engine.decide(env(box.address, client_address="8.8.8.8"), Message(make_message()))).outcome(box.address)
    assert o.disposition is Disposition.DELIVER


@pytest.mark.parametrize("charset", ["shift_jis", "euc_jp", "utf-8"])
async def test_raw_8bit_japanese_subject_matches(charset: str) -> None:
    box = rules_for("taro@example.jp", reject_subject=("未承諾広告",))
    raw = "From: a@example.org\nSubject: ［未承諾広告］セール\n\nbody\n".encode(charset)
    o = (await make_engine([box]).decide(env(box.address), Message(raw))).outcome(box.address)
    assert o.disposition is Disposition.QUARANTINE


async def test_check_submission_before_data() -> None:
    """The overseas check alone, as policy delegation (RCPT) and the milter (MAIL) ask it."""
    box = rules_for(SENDER)
    engine = make_engine([box], countries={"8.8.8.8": "US", "133.0.0.1": "JP"})
    refused = await engine.check_submission(outbound("8.8.8.8"))
    assert refused is not None and refused.code == 554 and "https://mail.example.jp/" in refused.text
    assert await engine.check_submission(outbound("133.0.0.1")) is None
    # not authenticated: receiving is never restricted
    assert await engine.check_submission(Envelope("a@example.org", ("taro@example.jp",), client_address="8.8.8.8")) is None


async def test_auto_reply_dates_are_local_dates() -> None:
    """An auto-reply ending 2026-11-30 still answers at 23:30 in Tokyo that day (14:30 UTC)."""
    ar = AutoReply(enabled=True, subject="Away", body="x", end_date=dt.date(2026, 11, 30))
    box = rules_for("taro@example.jp", auto_reply=ar)
    late_in_tokyo = dt.datetime(2026, 11, 30, 14, 30, tzinfo=dt.timezone.utc)
    next_day_in_tokyo = dt.datetime(2026, 11, 30, 15, 30, tzinfo=dt.timezone.utc)
    for when, expected in ((late_in_tokyo, True), (next_day_in_tokyo, False)):
        o = (await make_engine([box], now=when).decide(env(box.address), Message(make_message()))).outcome(box.address)
        assert any(isinstance(e, AutoReplyTo) for e in o.effects) is expected
