"""Applying a decision: quarantine rows, outbox rows and the auto-reply claim in one transaction."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.config.model import Policy
from mailadmin.message import Envelope, Message
from mailadmin.engine.execute import execute
from mailadmin.store import db, mailboxes, outbox, quarantine, rules
from mailadmin.store.snapshots import AutoReply
from tests.fixtures.databases import Backend

from .conftest import NOW, ScriptedClamd, ScriptedSpamd, make_engine, make_message, rules_for


@pytest.fixture
def factory(tmp_path: Path, backend: Backend) -> sessionmaker[Session]:
    f = db.make_session_factory(db.make_engine(backend.migrated(tmp_path)))
    with f.begin() as s:
        mailboxes.add_domain(s, "example.jp", smtp_server="smtp.example.jp", pop_server="pop.example.jp")
        for name in ("q", "r", "t"):
            mailboxes.add_mailbox(s, f"{name}@example.jp", Policy())
    return f


async def test_execute_writes_every_db_effect(factory: sessionmaker[Session]) -> None:
    with factory.begin() as s:
        rules.add_entries(s, "q@example.jp", "reject_sender", ["example.org"], Policy().limits)
        rules.set_auto_reply(s, "r@example.jp", AutoReply(enabled=True, subject="不在", body="休暇中です"),
                             Policy().limits)
        rules.add_forward(s, "r@example.jp", "fw@elsewhere.example", True, Policy().limits)
    with factory() as s:
        boxes = [rules.load_rules(s, a) for a in ("q@example.jp", "r@example.jp", "t@example.jp")]
    engine = make_engine([b for b in boxes if b is not None], spamd=ScriptedSpamd())
    envelope = Envelope("alice@example.org", ("q@example.jp", "r@example.jp", "t@example.jp"), queue_id="QID1")
    message = Message(make_message(subject="会議の件", to="q@example.jp, r@example.jp, t@example.jp"))
    decision = await engine.decide(envelope, message)
    groups = decision.content_groups()
    await execute(decision, message, session_factory=factory, clamd=ScriptedClamd(), now=NOW,
                  reinject=groups)

    with factory() as s:
        items = quarantine.list_items(s, "q@example.jp")
        assert [(i.sender, i.subject, i.reason) for i in items] == [
            ("alice@example.org", "会議の件", "reject_sender:example.org")]
        assert items[0].expires_at - items[0].received_at == dt.timedelta(days=7)
        queued = outbox.due(s, NOW + dt.timedelta(seconds=1))
    by_purpose: dict[str, list[outbox.OutboxItem]] = {}
    for item in queued:
        by_purpose.setdefault(item.purpose, []).append(item)
    assert set(by_purpose) == {"auto_reply", "forward", "reinject"}
    reply = by_purpose["auto_reply"][0]
    assert reply.mail_from == "" and reply.rcpt_tos == ["alice@example.org"]
    parsed = email.message_from_bytes(reply.message, policy=email.policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied" and parsed["In-Reply-To"] == "<orig-1@example.org>"
    fwd = by_purpose["forward"][0]
    assert fwd.rcpt_tos == ["fw@elsewhere.example"] and b"X-Mailadmin-Loop: r@example.jp" in fwd.message
    assert sorted(r for g in by_purpose["reinject"] for r in g.rcpt_tos) == ["r@example.jp", "t@example.jp"]

    # the second message from the same sender within 24 h gets no second reply
    decision2 = await engine.decide(envelope, message)
    await execute(decision2, message, session_factory=factory, clamd=ScriptedClamd(), now=NOW + dt.timedelta(hours=1))
    with factory() as s:
        replies = [i for i in outbox.due(s, NOW + dt.timedelta(hours=2)) if i.purpose == "auto_reply"]
    assert len(replies) == 1


async def test_virus_report_leaves_out_the_infected_part(factory: sessionmaker[Session]) -> None:
    raw = (b"From: alice@example.org\r\nTo: t@example.jp\r\nSubject: file\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'
           b"see attached\r\n--b\r\nContent-Type: application/octet-stream; name=x.bin\r\n\r\n"
           b"VIRUS-MARKER payload\r\n--b--\r\n")
    engine = make_engine([rules_for("t@example.jp")], clamd=ScriptedClamd(virus="Test-Sig"))
    message = Message(raw)
    decision = await engine.decide(Envelope("alice@example.org", ("t@example.jp",)), message)
    await execute(decision, message, session_factory=factory, clamd=ScriptedClamd(virus="Test-Sig"), now=NOW)
    with factory() as s:
        (report,) = outbox.due(s, NOW + dt.timedelta(seconds=1))
    assert report.purpose == "virus_report" and report.rcpt_tos == ["t@example.jp"] and report.mail_from == ""
    assert b"VIRUS-MARKER" not in report.message
    assert b"Test-Sig" in report.message


async def test_through_the_batch_writer_a_repeated_sender_costs_no_statement(
        factory: sessionmaker[Session]) -> None:
    from mailadmin.engine.execute import has_store_effects
    from mailadmin.store.batch import BatchWriter
    from mailadmin.store.claims import KnownClaims

    with factory.begin() as s:
        rules.set_auto_reply(s, "r@example.jp", AutoReply(enabled=True, subject="不在", body="休暇中です"),
                             Policy().limits)
    with factory() as s:
        box = rules.load_rules(s, "r@example.jp")
    assert box is not None
    engine = make_engine([box], spamd=ScriptedSpamd())
    envelope = Envelope("alice@example.org", ("r@example.jp",), queue_id="QID2")
    message = Message(make_message(subject="会議の件", to="r@example.jp"))
    writer, known = BatchWriter(factory), KnownClaims()

    decision = await engine.decide(envelope, message)
    assert has_store_effects(decision, (), known, NOW)
    await execute(decision, message, session_factory=factory, clamd=ScriptedClamd(), now=NOW,
                  writer=writer, known_claims=known)
    assert writer.writes == 1 and known.claimed("r@example.jp", "alice@example.org", NOW, dt.timedelta(hours=24))

    # within the window: nothing to write, so neither the writer nor the store is asked
    later = NOW + dt.timedelta(hours=1)
    decision2 = await engine.decide(envelope, message)
    assert not has_store_effects(decision2, (), known, later)
    await execute(decision2, message, session_factory=factory, clamd=ScriptedClamd(), now=later,
                  writer=writer, known_claims=known)
    assert writer.writes == 1

    # a claim another process took is learnt from the store, and then known
    other = KnownClaims()
    await execute(decision2, message, session_factory=factory, clamd=ScriptedClamd(), now=later,
                  writer=writer, known_claims=other)
    assert writer.writes == 2 and other.claimed("r@example.jp", "alice@example.org", later, dt.timedelta(hours=24))

    # after the window the reply is due again, through the store
    next_day = NOW + dt.timedelta(hours=25)
    decision3 = await engine.decide(envelope, message)
    assert has_store_effects(decision3, (), known, next_day)
    await execute(decision3, message, session_factory=factory, clamd=ScriptedClamd(), now=next_day,
                  writer=writer, known_claims=known)
    with factory() as s:
        replies = [i for i in outbox.due(s, next_day + dt.timedelta(seconds=1)) if i.purpose == "auto_reply"]
    assert len(replies) == 2
    writer.close()
