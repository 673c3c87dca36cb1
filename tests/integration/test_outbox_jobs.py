"""The outbox sender and the quarantine jobs (SPEC §8, §10) against a real SQLite
store and an aiosmtpd relay on a free port: mail the daemon creates reaches the
relay; a relay that is down or answers 4xx keeps it queued and retried; a 5xx
keeps it without retrying; several senders never send one item twice;
quarantine notices are batched per mailbox and interval."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import email.policy
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from mailadmin import jobs
from mailadmin.config.model import Policy, WebConf
from mailadmin.store import db, outbox, quarantine, rules
from mailadmin.wiring import Runtime
from tests.fixtures.config import make_config
from tests.fixtures.databases import Backend
from tests.fixtures.relay import Received, RelaySink
from tests.fixtures.runtime import build_runtime

T0 = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.timezone.utc)
PAGE = "https://mail.example.jp/admin/"
BOX = "taro@example.jp"
QUIET = "hanako@example.jp"  # quarantine notices OFF


# ---------------------------------------------------------------- store and runtime


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def runtime(tmp_path: Path, backend: Backend, sink: RelaySink, test_mmdb_path: Path, clock: Clock) -> Runtime:
    config = make_config(database_url=backend.migrated(tmp_path, "mail"), relay_port=sink.port,
                         geoip_path=test_mmdb_path, web=WebConf(base_url=PAGE))
    return build_runtime(config, clock=clock, mailboxes=(BOX, QUIET), seed=seed)


def seed(s: Session, policy: Policy) -> None:
    rules.set_spam_settings(s, BOX, scan=True, quarantine=True, notice=True)
    rules.set_spam_settings(s, QUIET, scan=True, quarantine=True, notice=False)


def enqueue(rt: Runtime, purpose: str, mail_from: str, rcpt_tos: list[str], body: str = "hello") -> int:
    message = f"From: x@example.jp\r\nTo: {rcpt_tos[0]}\r\nSubject: {purpose}\r\n\r\n{body}\r\n".encode()
    with rt.store.session_factory.begin() as s:
        return outbox.enqueue(s, purpose=purpose, mail_from=mail_from, rcpt_tos=rcpt_tos,
                              message=message, now=rt.clock())


def rows(rt: Runtime) -> dict[int, outbox.OutboxItem]:
    with rt.store.session_factory() as s:
        due = outbox.due(s, dt.datetime.max.replace(tzinfo=dt.timezone.utc), limit=10_000)
        given_up = outbox.undeliverable(s)
    return {i.id: i for i in due + given_up}


def sent_at(rt: Runtime, item_id: int) -> dt.datetime | None:
    from mailadmin.store.models import OutboxMessage

    with rt.store.session_factory() as s:
        row = s.get(OutboxMessage, item_id)
        assert row is not None
        return row.sent_at


def quarantine_item(rt: Runtime, mailbox: str, subject: str, when: dt.datetime) -> int:
    raw = f"From: spammer@example.org\r\nTo: {mailbox}\r\nSubject: {subject}\r\n\r\nbuy\r\n".encode()
    with rt.store.session_factory.begin() as s:
        return quarantine.add_item(s, mailbox, raw, sender="spammer@example.org", subject=subject,
                                   rule="spam", entry="", queue_id=None, now=when, retention_days=7)


# ---------------------------------------------------------------- delivery


async def test_every_kind_of_daemon_mail_reaches_the_relay(runtime: Runtime, sink: RelaySink) -> None:
    ids = {
        "auto_reply": enqueue(runtime, "auto_reply", "", ["alice@example.org"]),
        "forward": enqueue(runtime, "forward", "alice@example.org", ["taro@elsewhere.example"]),
        "virus_report": enqueue(runtime, "virus_report", "", [BOX]),
        "reinject": enqueue(runtime, "reinject", "alice@example.org", [BOX, QUIET]),
    }
    held = quarantine_item(runtime, BOX, "held", T0)
    with runtime.store.session_factory.begin() as s:
        ids["release"] = quarantine.release_item(s, held, BOX, now=T0)

    assert await jobs.drain_outbox(runtime) == 5
    got = {email.message_from_bytes(r.data)["Subject"]: r for r in sink.received}
    assert set(got) == {"auto_reply", "forward", "virus_report", "reinject", "held"}
    # Auto-replies and reports go out with the null sender (RFC 3834 §3.3): MAIL FROM:<>.
    assert got["auto_reply"].mail_from == "<>" and got["virus_report"].mail_from == "<>"
    assert (got["forward"].mail_from, got["forward"].rcpt_tos) == ("alice@example.org", ["taro@elsewhere.example"])
    assert got["reinject"].rcpt_tos == [BOX, QUIET]
    assert (got["held"].mail_from, got["held"].rcpt_tos) == ("spammer@example.org", [BOX])
    for item_id in ids.values():
        assert sent_at(runtime, item_id) == T0
    assert await jobs.drain_outbox(runtime) == 0
    with runtime.store.session_factory() as s:
        assert outbox.pending_count(s) == 0


async def test_relay_down_keeps_mail_and_retries_with_backoff(runtime: Runtime, sink: RelaySink,
                                                              clock: Clock) -> None:
    await sink.stop()
    item = enqueue(runtime, "auto_reply", "", ["alice@example.org"])
    assert await jobs.drain_outbox(runtime) == 1
    kept = rows(runtime)[item]
    assert kept.attempts == 1 and kept.last_error and "cannot connect" in kept.last_error
    assert kept.next_attempt_at == T0 + dt.timedelta(seconds=60)
    clock.advance(seconds=30)
    assert await jobs.drain_outbox(runtime) == 0  # not due yet
    clock.advance(seconds=30)
    assert await jobs.drain_outbox(runtime) == 1  # due, relay still down: 2 minutes now
    assert rows(runtime)[item].next_attempt_at == clock.now + dt.timedelta(seconds=120)

    await sink.start()  # the relay is back, on the same port
    clock.advance(seconds=120)
    assert await jobs.drain_outbox(runtime) == 1
    assert [r.rcpt_tos for r in sink.received] == [["alice@example.org"]]
    assert sent_at(runtime, item) == clock.now


@pytest.mark.parametrize("refusal", ["data", "rcpt"])
async def test_relay_4xx_is_retried(runtime: Runtime, sink: RelaySink, clock: Clock, refusal: str) -> None:
    if refusal == "data":
        sink.data_reply = "451 4.3.0 Queue file write error"
    else:
        sink.rcpt_replies["alice@example.org"] = "450 4.2.0 Mailbox busy"
    item = enqueue(runtime, "auto_reply", "", ["alice@example.org"])
    await jobs.drain_outbox(runtime)
    kept = rows(runtime)[item]
    assert kept.attempts == 1 and kept.last_error is not None and "45" in kept.last_error
    assert sent_at(runtime, item) is None and sink.received == []
    sink.data_reply = None
    sink.rcpt_replies.clear()
    clock.advance(minutes=1)
    await jobs.drain_outbox(runtime)
    assert len(sink.received) == 1 and sent_at(runtime, item) == clock.now


async def test_partial_refusal_retries_only_the_deferred_recipient(runtime: Runtime, sink: RelaySink,
                                                                  clock: Clock) -> None:
    sink.rcpt_replies["gone@example.org"] = "550 5.1.1 No such user"
    sink.rcpt_replies["busy@example.org"] = "450 4.2.1 Try later"
    item = enqueue(runtime, "forward", "alice@example.org",
                   ["ok@example.org", "gone@example.org", "busy@example.org"])
    await jobs.drain_outbox(runtime)
    assert [r.rcpt_tos for r in sink.received] == [["ok@example.org"]]
    kept = rows(runtime)[item]
    assert kept.rcpt_tos == ["busy@example.org"]
    assert kept.last_error is not None and "gone@example.org: 550" in kept.last_error
    sink.rcpt_replies.clear()
    clock.advance(minutes=1)
    await jobs.drain_outbox(runtime)
    assert [r.rcpt_tos for r in sink.received] == [["ok@example.org"], ["busy@example.org"]]
    assert sent_at(runtime, item) == clock.now


async def test_a_permanent_refusal_is_kept_but_not_retried(runtime: Runtime, sink: RelaySink,
                                                          clock: Clock) -> None:
    sink.data_reply = "554 5.7.1 Relay access denied"
    item = enqueue(runtime, "auto_reply", "", ["alice@example.org"])
    await jobs.drain_outbox(runtime)
    with runtime.store.session_factory() as s:
        given_up = outbox.undeliverable(s)
        assert [i.id for i in given_up] == [item]
        assert given_up[0].last_error is not None and "554 5.7.1" in given_up[0].last_error
        assert outbox.pending_count(s) == 0  # not counted as waiting for the relay
    clock.advance(days=30)
    assert await jobs.drain_outbox(runtime) == 0
    # The postmaster fixed the relay and asks for it again.
    sink.data_reply = None
    with runtime.store.session_factory.begin() as s:
        outbox.requeue(s, item, clock.now)
    assert await jobs.drain_outbox(runtime) == 1
    assert len(sink.received) == 1


async def test_the_outbox_loop_wakes_on_enqueue_and_stops(runtime: Runtime, sink: RelaySink) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(jobs.run_outbox(runtime, stop))
    enqueue(runtime, "auto_reply", "", ["alice@example.org"])
    runtime.outbox_wakeup.set()
    await sink.wait_for(1)
    # Another process's enqueue (no wakeup here) is found by the poll.
    enqueue(runtime, "forward", "alice@example.org", ["bob@example.org"])
    await sink.wait_for(2, timeout_seconds=jobs.OUTBOX_POLL_SECONDS * 5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert [r.rcpt_tos for r in sink.received] == [["alice@example.org"], ["bob@example.org"]]


@pytest.mark.parametrize("behaviour", ["hang", "garbage", "drop", "refuse"])
async def test_a_broken_relay_keeps_the_mail_for_a_retry(
        runtime: Runtime, behaviour: str,
        fake_scanner: Callable[[str], AbstractAsyncContextManager[str]]) -> None:
    async with fake_scanner(behaviour) as address:
        host, port = address.rsplit(":", 1)
        base = runtime.config()
        relay = dataclasses.replace(base.conf.relay, host=host, port=int(port), timeout_seconds=0.5)
        config = dataclasses.replace(base, conf=dataclasses.replace(base.conf, relay=relay))
        broken = dataclasses.replace(runtime, config=lambda: config)
        item = enqueue(broken, "auto_reply", "", ["alice@example.org"])
        assert await jobs.drain_outbox(broken) == 1
    kept = rows(runtime)[item]
    assert kept.attempts == 1 and kept.last_error
    assert kept.next_attempt_at == T0 + dt.timedelta(seconds=60)  # retried, not given up
    assert sent_at(runtime, item) is None


# ---------------------------------------------------------------- several senders


async def test_a_sender_that_died_mid_send_leaves_the_item_to_the_next(runtime: Runtime, sink: RelaySink,
                                                                       clock: Clock) -> None:
    item = enqueue(runtime, "auto_reply", "", ["alice@example.org"])
    with runtime.store.session_factory.begin() as s:  # leased, then the process is killed
        assert [i.id for i in outbox.claim_due(s, T0, jobs.OUTBOX_LEASE_SECONDS)] == [item]
    assert await jobs.drain_outbox(runtime) == 0  # still leased: nobody sends it twice
    clock.advance(seconds=jobs.OUTBOX_LEASE_SECONDS)
    assert await jobs.drain_outbox(runtime) == 1  # a restarted sender picks it up
    assert len(sink.received) == 1 and sent_at(runtime, item) == clock.now


def test_concurrent_claims_never_share_an_item(runtime: Runtime) -> None:
    """Threads of separate engines lease from one SQLite file at the same instant."""
    url = runtime.config().conf.database.url
    ids = [enqueue(runtime, "forward", "alice@example.org", [f"r{n}@example.org"]) for n in range(60)]
    claimers = 6
    barrier = threading.Barrier(claimers)
    won: list[list[int]] = [[] for _ in range(claimers)]
    errors: list[BaseException] = []

    def claimer(index: int) -> None:
        factory = db.make_session_factory(db.make_engine(url))
        try:
            with factory() as s:
                s.connection()
                barrier.wait(30)
                items = outbox.claim_due(s, T0, 600, limit=25)
                s.commit()
            won[index] = [i.id for i in items]
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    taken = [i for w in won for i in w]
    assert len(taken) == len(set(taken))  # nobody got an item someone else got
    assert set(taken) <= set(ids)
    assert sum(1 for w in won if w) >= 1


async def test_two_senders_deliver_each_item_exactly_once(runtime: Runtime, sink: RelaySink,
                                                          tmp_path: Path) -> None:
    ids = [enqueue(runtime, "forward", "alice@example.org", [f"r{n}@example.org"]) for n in range(40)]
    other = other_process(runtime)
    leased = await asyncio.gather(*(jobs.drain_outbox(rt, limit=5) for rt in (runtime, other) for _ in range(4)))
    assert sum(leased) == 40  # eight drains of at most 5: a lost race still finds other items
    delivered = sorted(r.rcpt_tos[0] for r in sink.received)
    assert delivered == sorted(f"r{n}@example.org" for n in range(40))
    assert all(sent_at(runtime, i) == T0 for i in ids)


def other_process(runtime: Runtime) -> Runtime:
    """A second daemon on the same database: its own store and connection pool."""
    return build_runtime(runtime.config(), clock=runtime.clock, open_geoip=False)


# ---------------------------------------------------------------- quarantine notices


def notice_text(received: Received) -> str:
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


async def test_notices_are_batched_per_mailbox_and_interval(runtime: Runtime, sink: RelaySink,
                                                            clock: Clock) -> None:
    for n in range(3):
        quarantine_item(runtime, BOX, f"cheap pills {n}", T0 - dt.timedelta(minutes=5 - n))
    quarantine_item(runtime, QUIET, "not announced", T0)  # notices OFF for this mailbox

    assert await jobs.send_quarantine_notices(runtime) == 1
    assert await jobs.send_quarantine_notices(runtime) == 0  # nothing new
    await jobs.drain_outbox(runtime)
    assert len(sink.received) == 1
    first = sink.received[0]
    assert first.mail_from == "<>" and first.rcpt_tos == [BOX]
    text = notice_text(first)
    assert all(f"cheap pills {n}" in text for n in range(3))
    assert "https://mail.example.jp/admin/" in text
    assert "3" in email.message_from_bytes(first.data, policy=email.policy.default)["Subject"]

    # Another item within the interval (60 minutes by default) waits.
    clock.advance(minutes=10)
    quarantine_item(runtime, BOX, "more pills", clock.now)
    assert await jobs.send_quarantine_notices(runtime) == 0
    clock.advance(minutes=49)
    assert await jobs.send_quarantine_notices(runtime) == 0
    clock.advance(minutes=1)  # an hour after the first notice
    assert await jobs.send_quarantine_notices(runtime) == 1
    await jobs.drain_outbox(runtime)
    assert len(sink.received) == 2
    second = notice_text(sink.received[1])
    assert "more pills" in second and "cheap pills" not in second
    assert all(r.rcpt_tos == [BOX] for r in sink.received)


async def test_concurrent_notice_jobs_send_one_notice(runtime: Runtime) -> None:
    for n in range(3):
        quarantine_item(runtime, BOX, f"pills {n}", T0)
    others = [other_process(runtime) for _ in range(3)]
    counts = await asyncio.gather(*(jobs.send_quarantine_notices(rt) for rt in [runtime, *others]))
    assert sum(counts) == 1
    notices = [i for i in rows(runtime).values() if i.purpose == jobs.NOTICE_PURPOSE]
    assert len(notices) == 1


# ---------------------------------------------------------------- purge


async def test_purge_removes_only_what_is_past_keeping(runtime: Runtime, sink: RelaySink,
                                                       clock: Clock) -> None:
    old = quarantine_item(runtime, BOX, "old", T0 - dt.timedelta(days=8))
    fresh = quarantine_item(runtime, BOX, "fresh", T0 - dt.timedelta(days=6))
    sent = enqueue(runtime, "auto_reply", "", ["alice@example.org"])
    await jobs.drain_outbox(runtime)
    counts = await jobs.purge_once(runtime)
    assert counts["quarantine"] == 1 and counts["outbox_sent"] == 0
    with runtime.store.session_factory() as s:
        assert [i.id for i in quarantine.list_items(s, BOX)] == [fresh]
    clock.advance(days=jobs.SENT_KEPT_DAYS, seconds=1)
    counts = await jobs.purge_once(runtime)
    assert counts["outbox_sent"] == 1
    assert old not in {i.id for i in rows(runtime).values()} and sent not in rows(runtime)


async def test_purge_loop_runs_at_start_and_stops(runtime: Runtime) -> None:
    quarantine_item(runtime, BOX, "old", T0 - dt.timedelta(days=8))
    stop = asyncio.Event()
    task = asyncio.create_task(jobs.run_quarantine_purge(runtime, stop))
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        with runtime.store.session_factory() as s:
            if not quarantine.list_items(s, BOX):
                break
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=5)



async def test_a_store_outage_after_the_relay_took_the_mail_does_not_send_it_twice(
        runtime: Runtime, sink: RelaySink, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 10, tests/faults): the relay accepted the item, then
    marking it sent failed (the store locked); it used to stay unsent and go
    out again once its lease ran out.  The record is now retried instead."""
    item = enqueue(runtime, "forward", "alice@example.org", ["taro@elsewhere.example"])
    real_mark_sent = outbox.mark_sent
    failures = [2]

    def flaky_mark_sent(session: Any, *args: Any, **kwargs: Any) -> None:
        if failures[0]:
            failures[0] -= 1
            raise OSError("database is locked")
        real_mark_sent(session, *args, **kwargs)

    monkeypatch.setattr(jobs.outbox, "mark_sent", flaky_mark_sent)
    monkeypatch.setattr(jobs, "RECORD_RETRY_SECONDS", 0.01)
    assert await jobs.drain_outbox(runtime) == 1
    assert failures == [0] and len(sink.received) == 1
    assert sent_at(runtime, item) is not None
    assert await jobs.drain_outbox(runtime) == 0 and len(sink.received) == 1
