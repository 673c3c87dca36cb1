"""Fuzzing the engine's decide() and the effects an adapter composes after it
(SPEC §10): mutated real messages (truncation, byte flips, NUL, invalid
UTF-8, broken ISO-2022-JP escapes) and the huge ones (a 10 MB header line,
100,000 header fields, MIME nested 1,000 deep).  The outcome is a decision
(every recipient has one) or a documented MessageLimitExceeded."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import given, strategies as st

from mailadmin.message import Envelope
from mailadmin.errors import MessageLimitExceeded
from tests.fuzz.harness import COUNTS, HUGE, RECIPIENTS, make_engine, mutated_message, process

ENGINE = make_engine()
senders = st.sampled_from(["alice@example.org", "", "MAILER-DAEMON@example.org", "x@example.net",
                           "bob@example.com", "\udcff@example.org", "no-at-sign"])


@given(mutated_message(), senders, st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=4),
       st.sampled_from([None, "taro@example.jp"]))
def test_decide_on_mutated_messages(raw: bytes, mail_from: str, rcpts: list[str], sasl: str | None) -> None:
    COUNTS["engine.decide"] += 1
    envelope = Envelope(mail_from, tuple(rcpts), client_address="192.0.2.10", sasl_username=sasl, queue_id="Q1")
    outcome = asyncio.run(process(ENGINE, envelope, raw))
    if outcome.refused is None:
        assert outcome.decision is not None
        assert {o.recipient for o in outcome.decision.outcomes} == {r.lower() for r in rcpts}
        assert all(isinstance(m, bytes) for m in outcome.composed)


@pytest.mark.parametrize("name", sorted(HUGE))
def test_huge_messages_are_refused_by_the_limits_quickly(name: str) -> None:
    raw = HUGE[name]()
    envelope = Envelope("alice@example.org", ("taro@example.jp", "saburo@example.jp"))
    started = time.monotonic()
    outcome = asyncio.run(process(ENGINE, envelope, raw))
    elapsed = time.monotonic() - started
    assert isinstance(outcome.refused, MessageLimitExceeded), name
    print(f"{name}: refused ({outcome.refused}) in {elapsed:.3f} s")


@pytest.mark.parametrize("name", sorted(HUGE))
def test_decide_alone_survives_the_huge_messages(name: str) -> None:
    """The dry-run CLI and any caller that skips the limits still get a decision."""
    raw = HUGE[name]()
    decision = asyncio.run(ENGINE.decide(Envelope("alice@example.org", ("taro@example.jp",)),
                                         __import__("mailadmin.message", fromlist=["Message"]).Message(raw)))
    assert [o.recipient for o in decision.outcomes] == ["taro@example.jp"]
