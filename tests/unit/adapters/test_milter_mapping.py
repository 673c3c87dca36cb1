"""From milter events to the engine and from decisions to milter actions,
without sockets: a MilterSession is fed the commands Postfix would send and
its answers are checked (SPEC §10).  The engine is the real one, with
in-memory rules and scripted scanners (tests/unit/engine/conftest.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from mailadmin.adapters import milter_codec as mc
from mailadmin.adapters.milter import MilterSession, choose_kept, header_actions, strip_address
from mailadmin.engine.decide import ContentGroup, Decision, Engine
from mailadmin.engine.replies import SmtpReply
from mailadmin.engine.effects import AddHeader, TagSpam
from mailadmin.mailtext.rewrite import header_fields, render_copy, tag_spam
from mailadmin.message import Envelope, Message
from mailadmin.config.model import Config, LimitsConf
from mailadmin.store.snapshots import Forward, MailboxRules
from tests.fixtures.config import make_config

from tests.unit.engine.conftest import ScriptedClamd, ScriptedSpamd, make_engine, rules_for

TARO = rules_for("taro@example.jp")                                # spam is tagged
HANAKO = rules_for("hanako@example.jp", spam_quarantine=True)      # spam is quarantined
JIRO = rules_for("jiro@example.jp", spam_scan=False)               # gets it unchanged
AWAY = rules_for("away@example.jp", forwarding=(Forward("elsewhere@example.org", False),))
POSTFIX_OFFER = mc.OptNeg(6, mc.Action(0x3F), mc.Proto(0x1FFFFF))
HEADERS = [("From", "Alice <alice@example.org>"), ("To", "taro@example.jp"),
           ("Subject", "Hello there"), ("X-Spam-Level", "*****"), ("Message-ID", "<m1@example.org>")]
BODY = b"Hello,\r\nsee you.\r\n"


@dataclass
class FakeRuntime:
    """The two things the adapter uses: the engine, and apply (recorded)."""

    engine: Engine
    fail_apply: bool = False
    applied: list[tuple[Decision, bytes, tuple[ContentGroup, ...]]] = field(default_factory=list)
    limits: LimitsConf = field(default_factory=LimitsConf)

    def config(self) -> Config:
        import dataclasses

        cfg = make_config()
        return dataclasses.replace(cfg, conf=dataclasses.replace(cfg.conf, limits=self.limits))

    async def check_submission(self, envelope: Envelope) -> SmtpReply | None:
        return await self.engine.check_submission(envelope)

    async def decide(self, envelope: Envelope, message: Message) -> Decision:
        return await self.engine.decide(envelope, message)

    async def apply(self, decision: Decision, message: Message, reinject: Sequence[ContentGroup] = ()) -> None:
        if self.fail_apply:
            raise OSError("database is locked")
        self.applied.append((decision, message.raw, tuple(reinject)))


def runtime(mailboxes: Sequence[MailboxRules] = (TARO, HANAKO, JIRO, AWAY), **kw: Any) -> FakeRuntime:
    fail_apply = kw.pop("fail_apply", False)
    return FakeRuntime(make_engine(mailboxes, **kw), fail_apply)


async def negotiated(rt: FakeRuntime, offer: mc.OptNeg = POSTFIX_OFFER) -> MilterSession:
    session = MilterSession(rt)  # type: ignore[arg-type]
    [reply] = await session.handle(offer)
    assert isinstance(reply, mc.OptNegReply)
    await session.handle(mc.Macros(b"C", {"j": "mx.example.jp"}))
    assert await session.handle(mc.Connect("mx.example.org", "4", 40000, "192.0.2.1")) == []
    assert await session.handle(mc.Helo("mx.example.org")) == []
    return session


async def transaction(session: MilterSession, rcpts: Sequence[str], *, headers: Sequence[tuple[str, str]] = HEADERS,
                      body: bytes = BODY, mail_macros: dict[str, str] | None = None,
                      queue_id: str = "4AbC1") -> list[mc.Response]:
    """One message; returns the end-of-message answer (asserts MAIL was continued)."""
    await session.handle(mc.Macros(b"M", mail_macros or {}))
    assert await session.handle(mc.Mail(("<alice@example.org>", "SIZE=100"))) == [mc.Continue()]
    for rcpt in rcpts:
        assert await session.handle(mc.Rcpt((f"<{rcpt}>",))) == []
    for name, value in headers:
        assert await session.handle(mc.Header(name, value)) == []
    half = len(body) // 2
    for chunk in (body[:half], body[half:]):
        assert await session.handle(mc.Body(chunk)) == []
    await session.handle(mc.Macros(b"E", {"i": queue_id}))
    return await session.handle(mc.EndOfMessage())


def apply_header_actions(fields: list[tuple[str, str]], actions: Sequence[mc.Response]) -> list[tuple[str, str]]:
    """libmilter's header semantics, to check the actions do what they claim."""
    out = list(fields)
    for action in actions:
        if isinstance(action, mc.ChangeHeader):
            positions = [i for i, (n, _) in enumerate(out) if n.lower() == action.name.lower()]
            position = positions[action.index - 1]
            if action.value:
                out[position] = (out[position][0], action.value)
            else:
                del out[position]
        elif isinstance(action, mc.InsertHeader):
            out.insert(action.index, (action.name, action.value))
        elif isinstance(action, mc.AddHeader):
            out.append((action.name, action.value))
    return out


# ---------------------------------------------------------------- header edits


SPAM = TagSpam("[spam] ", 12.3, 5.0, ("GTUBE", "A_VERY_LONG_RULE_NAME_NUMBER_ONE", "A_VERY_LONG_RULE_NAME_NUMBER_TWO"))


@pytest.mark.parametrize("changes", [
    (SPAM,),
    (AddHeader("X-Mailadmin-Not-Scanned", "spamd unavailable"),),
    (SPAM, AddHeader("X-Mailadmin-Not-Scanned", "clamd unavailable")),
    (AddHeader("X-Note", "日本語の値"),),
], ids=["tag", "add", "tag+add", "non-ascii"])
@pytest.mark.parametrize("original", [
    b"From: a@example.org\r\nSubject: Hello\r\nX-Spam-Flag: NO\r\nX-Spam-Level: *\r\n\r\nbody\r\n",
    b"From: a@example.org\r\nSubject: =?UTF-8?B?5pel5pys?=\r\n\r\nbody\r\n",
    b"From: a@example.org\r\nTo: b@example.jp\r\n\r\nno subject\r\n",
    b"From: a@example.org\r\nSubject: [spam] already\r\nX-Mailadmin-Not-Scanned: forged\r\n\r\nb\r\n",
    b"Subject: folded\r\n\tsubject line\r\nReceived: one\r\nReceived: two\r\n\r\nb\r\n",
], ids=["spam-headers", "encoded", "no-subject", "already-tagged", "folded"])
def test_header_actions_turn_the_original_into_the_rendered_copy(original: bytes, changes: Any) -> None:
    target = render_copy(original, changes)
    actions = header_actions(original, target)
    result = apply_header_actions(header_fields(original), actions)
    assert sorted(result) == sorted(header_fields(target))
    # New fields go to the top, in the copy's order.
    inserted = [(a.name, a.value) for a in reversed(actions) if isinstance(a, mc.InsertHeader)]
    assert result[:len(inserted)] == inserted
    assert inserted == [f for f in header_fields(target) if f in inserted]
    for action in actions:
        if isinstance(action, (mc.ChangeHeader, mc.InsertHeader)):
            assert "\r" not in action.value  # continuation lines are "\n\t" on the wire


def test_tag_spam_becomes_a_subject_change_and_spam_headers() -> None:
    original = b"From: a@example.org\r\nSubject: Hello\r\nX-Spam-Level: *****\r\n\r\nbody\r\n"
    actions = header_actions(original, tag_spam(original, prefix="[spam] ", score=12.3, threshold=5.0, rules=("GTUBE",)))
    assert mc.ChangeHeader(1, "Subject", "[spam] Hello") in actions
    names = [a.name for a in actions if isinstance(a, mc.InsertHeader)]
    assert names == ["X-Spam-Status", "X-Spam-Flag"]  # inserted at 0, last first
    assert mc.InsertHeader(0, "X-Spam-Flag", "YES") in actions
    level = [a for a in actions if isinstance(a, mc.ChangeHeader) and a.name == "X-Spam-Level"]
    assert level == [mc.ChangeHeader(1, "X-Spam-Level", "************")]


def test_surplus_fields_are_deleted_from_the_last_index_up() -> None:
    original = b"X-Spam-Flag: a\r\nX-Spam-Flag: b\r\nX-Spam-Flag: c\r\nSubject: s\r\n\r\n"
    target = b"Subject: s\r\nX-Spam-Flag: YES\r\n\r\n"
    actions = header_actions(original, target)
    assert actions == [mc.ChangeHeader(1, "X-Spam-Flag", "YES"), mc.ChangeHeader(3, "X-Spam-Flag", ""),
                       mc.ChangeHeader(2, "X-Spam-Flag", "")]


def test_header_fields_read_values_as_the_mta_sends_them() -> None:
    raw = b"Subject: a\r\n\tb\r\nX-A:no-space\r\nX-B:  two\r\n\r\nbody: not a header\r\n"
    assert header_fields(raw) == [("Subject", "a\n\tb"), ("X-A", "no-space"), ("X-B", " two")]


def test_choose_kept_prefers_the_unchanged_group_then_the_largest() -> None:
    tagged = ContentGroup((SPAM,), ("a@x", "b@x"))
    plain = ContentGroup((), ("c@x",))
    noted = ContentGroup((AddHeader("X", "y"),), ("d@x",))
    assert choose_kept([tagged, plain, noted]) is plain
    assert choose_kept([noted, tagged]) is tagged
    assert choose_kept([]) is None
    assert strip_address("<>") == "" and strip_address(" <A@x> ") == "A@x" and strip_address("a@x") == "a@x"


# ---------------------------------------------------------------- sessions


async def test_clean_mail_is_accepted_unchanged_and_applied() -> None:
    rt = runtime()
    session = await negotiated(rt)
    assert await transaction(session, ["taro@example.jp", "friend@example.org"]) == [mc.Accept()]
    [(decision, raw, reinject)] = rt.applied
    assert reinject == ()
    assert decision.envelope.rcpt_tos == ("taro@example.jp", "friend@example.org")
    assert decision.envelope.mail_from == "alice@example.org"
    assert decision.envelope.client_address == "192.0.2.1"
    assert decision.envelope.client_name == "mx.example.org"
    assert decision.envelope.helo == "mx.example.org"
    assert decision.envelope.queue_id == "4AbC1"
    assert decision.envelope.sasl_username is None
    assert raw == (b"From: Alice <alice@example.org>\r\nTo: taro@example.jp\r\nSubject: Hello there\r\n"
                   b"X-Spam-Level: *****\r\nMessage-ID: <m1@example.org>\r\n\r\n" + BODY)


async def test_spam_for_one_tagged_recipient_changes_headers_and_drops_the_quarantined_one() -> None:
    rt = runtime(spamd=ScriptedSpamd(score=12.0))
    session = await negotiated(rt)
    answer = await transaction(session, ["taro@example.jp", "hanako@example.jp"])
    assert answer[-1] == mc.Accept()
    assert mc.DelRcpt("<hanako@example.jp>") in answer
    assert mc.ChangeHeader(1, "Subject", "[spam] Hello there") in answer
    assert mc.InsertHeader(0, "X-Spam-Flag", "YES") in answer
    assert not any(isinstance(a, mc.DelRcpt) and "taro" in a.rcpt for a in answer)
    [(decision, _, reinject)] = rt.applied
    assert reinject == ()  # taro's copy stays in the MTA's transaction
    assert decision.outcome("hanako@example.jp").disposition.value == "quarantine"


async def test_the_unchanged_group_stays_and_the_tagged_group_is_reinjected() -> None:
    rt = runtime(spamd=ScriptedSpamd(score=12.0))
    session = await negotiated(rt)
    answer = await transaction(session, ["taro@example.jp", "jiro@example.jp", "hanako@example.jp"])
    assert answer == [mc.DelRcpt("<taro@example.jp>"), mc.DelRcpt("<hanako@example.jp>"), mc.Accept()]
    [(_, _, reinject)] = rt.applied
    assert [g.recipients for g in reinject] == [("taro@example.jp",)]
    assert isinstance(reinject[0].changes[0], TagSpam)


async def test_nobody_keeps_a_copy_so_the_message_is_discarded_after_apply() -> None:
    rt = runtime(spamd=ScriptedSpamd(score=12.0))
    session = await negotiated(rt)
    assert await transaction(session, ["hanako@example.jp"]) == [mc.Discard()]
    assert len(rt.applied) == 1
    # forwarded away without a kept copy: the forward is in the outbox, the MTA drops it
    clean = runtime()
    session = await negotiated(clean)
    assert await transaction(session, ["away@example.jp"]) == [mc.Discard()]
    [(decision, _, _)] = clean.applied
    assert any("forward" in str(e) for e in decision.outcome("away@example.jp").effects)


async def test_infected_mail_is_discarded_for_the_mailbox() -> None:
    rt = runtime(clamd=ScriptedClamd(virus="Eicar-Test"))
    session = await negotiated(rt)
    body = b"VIRUS-MARKER\r\n"
    answer = await transaction(session, ["taro@example.jp", "friend@example.org"], body=body)
    assert answer == [mc.DelRcpt("<taro@example.jp>"), mc.Accept()]
    assert rt.applied[0][0].outcome("taro@example.jp").disposition.value == "drop_infected"


async def test_scanner_down_is_a_451_and_nothing_is_applied() -> None:
    rt = runtime(clamd=ScriptedClamd(fail=True))
    session = await negotiated(rt)
    [answer] = await transaction(session, ["taro@example.jp"])
    assert isinstance(answer, mc.ReplyCode)
    assert (answer.code, answer.status) == (451, "4.7.1")
    assert rt.applied == []


async def test_apply_failure_tempfails_never_accepts(caplog: pytest.LogCaptureFixture) -> None:
    rt = runtime(spamd=ScriptedSpamd(score=12.0), fail_apply=True)
    session = await negotiated(rt)
    with caplog.at_level(logging.ERROR):
        assert await transaction(session, ["taro@example.jp", "hanako@example.jp"], queue_id="Q77") == [mc.Tempfail()]
    assert "Q77" in caplog.text and "database is locked" in caplog.text


async def test_an_engine_exception_is_logged_with_the_queue_id_and_tempfailed(caplog: pytest.LogCaptureFixture) -> None:
    def broken(addresses: Sequence[str]) -> dict[str, MailboxRules]:
        raise RuntimeError("rules table missing")

    rt = runtime()
    rt.engine._load_rules = broken
    session = await negotiated(rt)
    with caplog.at_level(logging.ERROR):
        assert await transaction(session, ["taro@example.jp"], queue_id="Q88") == [mc.Tempfail()]
    assert "Q88" in caplog.text and "rules table missing" in caplog.text
    # the connection goes on: the next message is decided normally
    rt.engine._load_rules = lambda addrs: {}
    assert await transaction(session, ["taro@example.jp"]) == [mc.Accept()]


async def test_overseas_submission_is_refused_at_mail_with_the_unlock_text() -> None:
    calls: list[str | None] = []
    rt = runtime(countries={"203.0.113.9": "US"})
    original = rt.engine.check_submission

    async def counting(envelope: Any) -> Any:
        calls.append(envelope.sasl_username)
        return await original(envelope)

    rt.engine.check_submission = counting  # type: ignore[method-assign]
    session = MilterSession(rt)  # type: ignore[arg-type]
    await session.handle(POSTFIX_OFFER)
    await session.handle(mc.Connect("unknown", "4", 5555, "203.0.113.9"))
    await session.handle(mc.Macros(b"M", {"{auth_authen}": "taro@example.jp", "{auth_type}": "PLAIN"}))
    [answer] = await session.handle(mc.Mail(("<taro@example.jp>",)))
    assert isinstance(answer, mc.ReplyCode)
    assert (answer.code, answer.status) == (554, "5.7.1")
    assert "https://mail.example.jp/" in answer.text
    assert calls == ["taro@example.jp"]
    # Postfix aborts the refused transaction; an unauthenticated one is not checked.
    await session.handle(mc.Abort())
    assert await session.handle(mc.Mail(("<other@example.org>",))) == [mc.Continue()]
    assert calls == ["taro@example.jp"]


async def test_domestic_submission_continues_at_mail_and_is_decided_at_eom() -> None:
    rt = runtime(countries={"192.0.2.1": "JP"})
    session = await negotiated(rt)
    answer = await transaction(session, ["friend@example.org"], mail_macros={"{auth_authen}": "taro@example.jp"})
    assert answer == [mc.Accept()]
    assert rt.applied[0][0].envelope.sasl_username == "taro@example.jp"


async def test_a_failing_submission_check_tempfails_mail_and_its_message(caplog: pytest.LogCaptureFixture) -> None:
    rt = runtime()

    async def broken(envelope: Any) -> Any:
        raise ConnectionError("database gone")

    rt.engine.check_submission = broken  # type: ignore[method-assign]
    session = await negotiated(rt)
    await session.handle(mc.Macros(b"M", {"auth_authen": "taro@example.jp", "i": "Q9"}))
    with caplog.at_level(logging.ERROR):
        assert await session.handle(mc.Mail(("<taro@example.jp>",))) == [mc.Tempfail()]
    assert "Q9" in caplog.text
    assert await session.handle(mc.EndOfMessage()) == [mc.Tempfail()]
    assert rt.applied == []


async def test_state_is_reset_between_messages_and_at_abort() -> None:
    rt = runtime()
    session = await negotiated(rt)
    await session.handle(mc.Mail(("<first@example.org>",)))
    await session.handle(mc.Rcpt(("<jiro@example.jp>",)))
    await session.handle(mc.Header("Subject", "aborted"))
    await session.handle(mc.Abort())
    assert not session.in_message
    await transaction(session, ["taro@example.jp"], queue_id="Q1")
    await transaction(session, ["jiro@example.jp"], queue_id="Q2",
                      headers=[("Subject", "second")], body=b"2\r\n")
    first, second = (d for d, _, _ in rt.applied)
    assert first.envelope.rcpt_tos == ("taro@example.jp",) and first.envelope.queue_id == "Q1"
    assert second.envelope.rcpt_tos == ("jiro@example.jp",) and second.envelope.queue_id == "Q2"
    assert rt.applied[1][1] == b"Subject: second\r\n\r\n2\r\n"
    assert session.macro("i") is None  # message macros went with the message
    assert session.macro("j") == "mx.example.jp"  # connection macros stay


async def test_without_no_reply_flags_every_event_is_answered() -> None:
    rt = runtime()
    session = MilterSession(rt)  # type: ignore[arg-type]
    await session.handle(mc.OptNeg(2, mc.Action(0x3F), mc.Proto(0x7F)))
    assert await session.handle(mc.Connect("h", "6", 25, "2001:db8::1")) == [mc.Continue()]
    assert await session.handle(mc.Helo("h")) == [mc.Continue()]
    assert await session.handle(mc.Mail(("<>",))) == [mc.Continue()]
    assert await session.handle(mc.Rcpt(("<taro@example.jp>",))) == [mc.Continue()]
    assert await session.handle(mc.Header("Subject", "x")) == [mc.Continue()]
    assert await session.handle(mc.Body(b"x\r\n")) == [mc.Continue()]
    assert await session.handle(mc.EndOfMessage()) == [mc.Accept()]
    assert rt.applied[0][0].envelope.mail_from == ""
    assert rt.applied[0][0].envelope.client_address == "2001:db8::1"


async def test_quit_nc_starts_a_new_smtp_session_on_the_same_connection() -> None:
    rt = runtime()
    session = await negotiated(rt)
    assert await session.handle(mc.QuitNewConnection()) == []
    assert session.macro("j") is None
    await session.handle(mc.Connect("other.example.org", "4", 1, "198.51.100.7"))
    await transaction(session, ["taro@example.jp"])
    env = rt.applied[0][0].envelope
    assert env.client_address == "198.51.100.7" and env.helo is None


async def test_end_of_message_without_a_transaction_is_never_accepted() -> None:
    rt = runtime(countries={"203.0.113.9": "US"})
    session = MilterSession(rt)  # type: ignore[arg-type]
    await session.handle(POSTFIX_OFFER)
    assert await session.handle(mc.EndOfMessage()) == [mc.Tempfail()]
    # a refused MAIL ends the transaction: a stray end of message is not decided
    await session.handle(mc.Connect("unknown", "4", 5555, "203.0.113.9"))
    await session.handle(mc.Macros(b"M", {"{auth_authen}": "taro@example.jp"}))
    [refusal] = await session.handle(mc.Mail(("<taro@example.jp>",)))
    assert isinstance(refusal, mc.ReplyCode) and not session.in_message
    assert await session.handle(mc.EndOfMessage()) == [mc.Tempfail()]
    assert rt.applied == []


# ---------------------------------------------------------------- [limits] (found by tests/fuzz)


SMALL_LIMITS = LimitsConf(max_message_bytes=65_536, max_header_fields=50, max_header_bytes=16_384,
                          max_mime_depth=5)


@pytest.mark.parametrize(("headers", "body", "limit"), [
    (HEADERS + [(f"X-Filler-{i}", "v") for i in range(60)], BODY, "max_header_fields"),
    (HEADERS + [("X-Long", "a" * 20_000)], BODY, "max_header_bytes"),
    (HEADERS, b"x" * 70_000, "max_message_bytes"),
    (HEADERS + [("MIME-Version", "1.0"), ("Content-Type", 'multipart/mixed; boundary="b0"')],
     b"".join(b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i, i + 1) for i in range(8))
     + b"--b8\r\nContent-Type: text/plain\r\n\r\nhi\r\n", "max_mime_depth"),
])
async def test_a_message_past_a_limit_is_refused_before_queue_and_not_buffered(
        headers: list[tuple[str, str]], body: bytes, limit: str) -> None:
    """The milter keeps at most the limits' worth of one message and answers
    552 5.3.4 (the sender's MTA reports it); nothing is decided or applied."""
    rt = runtime()
    rt.limits = SMALL_LIMITS
    session = await negotiated(rt)
    [answer] = await transaction(session, ["taro@example.jp"], headers=headers, body=body)
    assert isinstance(answer, mc.ReplyCode) and (answer.code, answer.status) == (552, "5.3.4")
    assert limit in answer.text
    assert rt.applied == []
    # The next message on the same connection is decided as usual.
    assert await transaction(session, ["jiro@example.jp"]) == [mc.Accept()]


async def test_the_milter_stops_buffering_past_the_size_limit() -> None:
    rt = runtime()
    rt.limits = SMALL_LIMITS
    session = await negotiated(rt)
    await session.handle(mc.Macros(b"M", {}))
    await session.handle(mc.Mail(("<alice@example.org>",)))
    await session.handle(mc.Rcpt(("<taro@example.jp>",)))
    for _ in range(200):
        await session.handle(mc.Header("X-Many", "v" * 100))
    for _ in range(100):
        await session.handle(mc.Body(b"y" * 60_000))
    assert len(session.message_bytes()) <= SMALL_LIMITS.max_message_bytes
    [answer] = await session.handle(mc.EndOfMessage())
    assert isinstance(answer, mc.ReplyCode) and answer.code == 552
