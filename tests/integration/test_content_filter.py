"""The after-queue SMTP content filter (SPEC §10) over a real socket, with a real
SQLite store, the real clamd and spamd, and an aiosmtpd relay on a free port:
copies to deliver are re-injected through the outbox, quarantined ones are not,
a scanner or store failure is a 451 with nothing stored, never a 5xx."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy.orm import Session

from mailadmin import jobs
from mailadmin.adapters.content_filter import parse_xforward, start_content_filter, xtext_decode
from mailadmin.config.model import Policy, ScannerConf, WebConf
from mailadmin.listeners import bound_address
from mailadmin.store import filtered, quarantine, rules
from mailadmin.store.models import OutboxMessage
from mailadmin.wiring import Runtime
from tests.fixtures.config import make_config
from tests.fixtures.databases import Backend
from tests.fixtures.relay import RelaySink
from tests.fixtures.runtime import build_runtime
from tests.fixtures.scanners import make_message

NOW = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.timezone.utc)

TAGGED = "tagged@example.jp"          # spam scan ON, quarantine OFF
QUARANTINED = "quarantined@example.jp"  # spam scan ON, quarantine ON
FORWARDER = "forwarder@example.jp"      # spam scan OFF, forwards without keeping a copy
ALLOWING = "allowing@example.jp"        # spam scan ON, the sender is on its allow list
OUTSIDE = "friend@elsewhere.example"    # not our mailbox
FORWARD_TO = "away@elsewhere.example"


@pytest.fixture
def database_url(backend: Backend, tmp_path: Path) -> str:
    """A migrated, empty database on SQLite or PostgreSQL (the ``backend`` parameter)."""
    return backend.migrated(tmp_path, "mail")


# ---------------------------------------------------------------- store, runtime, filter


def seed(s: Session, policy: Policy) -> None:
    rules.set_spam_settings(s, TAGGED, scan=True, quarantine=False, notice=False)
    rules.set_spam_settings(s, QUARANTINED, scan=True, quarantine=True, notice=False)
    rules.set_spam_settings(s, FORWARDER, scan=False, quarantine=False, notice=False)
    rules.add_forward(s, FORWARDER, FORWARD_TO, False, policy.limits)
    rules.set_spam_settings(s, ALLOWING, scan=True, quarantine=True, notice=False)
    rules.add_entries(s, ALLOWING, "allow_list", ["example.org"], policy.limits)


def filter_runtime(database_url: str, relay_port: int, clamd: str, spamd: str, mmdb: Path,
                   *, schema: bool = True) -> Runtime:
    """``schema``: False when ``database_url`` is a database without one (nothing to seed)."""
    config = make_config(database_url=database_url, relay_port=relay_port,
                         clamd=ScannerConf(clamd, 5.0, 25_000_000), spamd=ScannerConf(spamd, 10.0, 500_000),
                         geoip_path=mmdb, web=WebConf(base_url="https://mail.example.jp/admin/"))
    if not schema:
        return build_runtime(config, clock=lambda: NOW)
    return build_runtime(config, clock=lambda: NOW, mailboxes=(TAGGED, QUARANTINED, FORWARDER, ALLOWING),
                         seed=seed)


@pytest.fixture
def runtime(database_url: str, tmp_path: Path, sink: RelaySink, clamd_instance: Any, spamd_instance: Any,
            test_mmdb_path: Path) -> Runtime:
    return filter_runtime(database_url, sink.port, clamd_instance.unix_address, spamd_instance.tcp_address,
                         test_mmdb_path)


@pytest.fixture
async def filter_address(runtime: Runtime) -> AsyncIterator[tuple[str, int]]:
    server = await start_content_filter("inet:127.0.0.1:0", runtime)
    host, port = bound_address(server)[len("inet:"):].rsplit(":", 1)
    yield host, int(port)
    server.close()
    await server.wait_closed()


async def send(address: tuple[str, int], mail_from: str, rcpt_tos: list[str], raw: bytes,
               xforward: str | None = "NAME=mx.example.org ADDR=203.0.113.5 HELO=mx.example.org "
                                      "IDENT=4XbR1v0Jc4z9sVQ SOURCE=REMOTE PROTO=ESMTP") -> str:
    """Send like Postfix's smtp client to a content filter; returns the DATA reply."""
    client = aiosmtplib.SMTP(hostname=address[0], port=address[1], start_tls=False, timeout=30)
    await client.connect()
    try:
        await client.ehlo()
        assert client.supports_extension("xforward")
        if xforward is not None:
            reply = await client.execute_command(f"XFORWARD {xforward}".encode())
            assert reply.code == 250, reply
        try:
            await client.sendmail(mail_from, rcpt_tos, raw)
        except aiosmtplib.SMTPDataError as exc:
            return f"{exc.code} {exc.message}"
        return "250"
    finally:
        await client.quit()


def outbox_rows(runtime: Runtime) -> list[OutboxMessage]:
    with runtime.store.session_factory() as s:
        return list(s.query(OutboxMessage).order_by(OutboxMessage.id))


def spam(gtube: str, subject: str = "Great offer") -> bytes:
    return make_message(f"Buy now.\n{gtube}\n", subject=subject, to="undisclosed-recipients:;")


# ---------------------------------------------------------------- tests


async def test_clean_mail_is_reinjected_unchanged_through_the_outbox(
        runtime: Runtime, filter_address: tuple[str, int], sink: RelaySink,
        caplog: pytest.LogCaptureFixture) -> None:
    raw = make_message("Lunch on Friday?\nこんにちは\n", to=TAGGED)
    caplog.set_level(logging.INFO)
    assert await send(filter_address, "alice@example.org", [TAGGED, OUTSIDE], raw) == "250"
    rows = outbox_rows(runtime)
    assert [(r.purpose, r.mail_from, r.rcpt_tos) for r in rows] == [
        ("reinject", "alice@example.org", [TAGGED, OUTSIDE])]
    # The queue ID came with XFORWARD IDENT and names the decision in the log.
    assert "decision queue_id=4XbR1v0Jc4z9sVQ rcpt=tagged@example.jp outcome=deliver" in caplog.text
    assert sink.received == []  # nothing leaves before the outbox job sends it
    await jobs.drain_outbox(runtime)
    [got] = sink.received
    assert got.mail_from == "alice@example.org" and got.rcpt_tos == [TAGGED, OUTSIDE]
    assert got.data.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")


async def test_spam_is_tagged_for_one_and_quarantined_for_another(
        runtime: Runtime, filter_address: tuple[str, int], sink: RelaySink, gtube: str) -> None:
    assert await send(filter_address, "alice@example.org", [TAGGED, QUARANTINED], spam(gtube)) == "250"
    with runtime.store.session_factory() as s:
        held = quarantine.list_items(s, QUARANTINED)
        assert [(i.subject, i.sender) for i in held] == [("Great offer", "alice@example.org")]
    await jobs.drain_outbox(runtime)
    got = sink.by_rcpt()
    assert set(got) == {TAGGED}  # the quarantined copy is not re-injected
    assert got[TAGGED]["Subject"] == "[spam] Great offer"
    assert got[TAGGED]["X-Spam-Flag"] == "YES"


async def test_four_recipients_four_outcomes(runtime: Runtime, filter_address: tuple[str, int],
                                             sink: RelaySink, gtube: str) -> None:
    rcpts = [TAGGED, QUARANTINED, FORWARDER, ALLOWING]
    assert await send(filter_address, "alice@example.org", rcpts, spam(gtube)) == "250"
    by_purpose: dict[str, list[list[str]]] = {}
    for row in outbox_rows(runtime):
        by_purpose.setdefault(row.purpose, []).append(row.rcpt_tos)
    # A tagged copy for TAGGED, an unchanged copy for ALLOWING, a forward for FORWARDER.
    assert sorted(by_purpose["reinject"]) == [[ALLOWING], [TAGGED]]
    assert by_purpose["forward"] == [[FORWARD_TO]]
    with runtime.store.session_factory() as s:
        assert len(quarantine.list_items(s, QUARANTINED)) == 1
        assert quarantine.list_items(s, TAGGED) == [] and quarantine.list_items(s, ALLOWING) == []
    await jobs.drain_outbox(runtime)
    got = sink.by_rcpt()
    assert set(got) == {TAGGED, ALLOWING, FORWARD_TO}
    assert got[TAGGED]["Subject"] == "[spam] Great offer"
    assert got[ALLOWING]["Subject"] == "Great offer" and got[ALLOWING]["X-Spam-Flag"] is None
    # The forward is the copy FORWARDER would have got (no spam scan: unchanged), marked against loops.
    assert got[FORWARD_TO]["Subject"] == "Great offer"
    assert got[FORWARD_TO]["X-Mailadmin-Loop"] == FORWARDER


async def test_an_infected_message_is_not_reinjected_and_reported(
        runtime: Runtime, filter_address: tuple[str, int], sink: RelaySink, eicar: str) -> None:
    raw = make_message(f"see this\n{eicar}\n", to=TAGGED)
    assert await send(filter_address, "alice@example.org", [TAGGED], raw) == "250"
    assert [r.purpose for r in outbox_rows(runtime)] == ["virus_report"]
    await jobs.drain_outbox(runtime)
    [report] = sink.received
    assert report.mail_from == "<>" and report.rcpt_tos == [TAGGED]
    assert eicar.encode() not in report.data


async def test_null_sender_mail_keeps_the_null_sender(
        runtime: Runtime, filter_address: tuple[str, int], sink: RelaySink) -> None:
    raw = make_message("Delivery report\n", sender="MAILER-DAEMON@example.org", to=TAGGED)
    assert await send(filter_address, "", [TAGGED], raw) == "250"
    await jobs.drain_outbox(runtime)
    [got] = sink.received
    assert got.mail_from == "<>"


# ---------------------------------------------------------------- handed over again


def effects(runtime: Runtime) -> list[tuple[str, list[str]]]:
    """Every stored effect: outbox rows and quarantine rows, as (kind, recipients)."""
    with runtime.store.session_factory() as s:
        held = [("quarantine", [box]) for box in (TAGGED, QUARANTINED, FORWARDER, ALLOWING)
                for _ in quarantine.list_items(s, box)]
    return sorted([(r.purpose, sorted(r.rcpt_tos)) for r in outbox_rows(runtime)] + held)


async def test_a_message_handed_over_again_is_not_applied_twice(
        runtime: Runtime, filter_address: tuple[str, int], sink: RelaySink, gtube: str) -> None:
    """Regression (issue 10, SIGKILL under load): a filter killed between its commit and its
    250 reaching Postfix gets the same queued message again (Postfix: "message may be sent
    more than once"); deciding it again stored every effect twice — a second re-injected copy,
    forward and quarantine row — and the fault tier saw a mailbox get the message twice.
    Postfix cannot tell a lost reply from a refused one, so neither can this test: it hands
    the message over twice with the same queue ID, as Postfix does after the lost reply."""
    rcpts = [TAGGED, QUARANTINED, FORWARDER]
    raw = spam(gtube)
    assert await send(filter_address, "alice@example.org", rcpts, raw) == "250"
    once = effects(runtime)
    assert once == [("forward", [FORWARD_TO]), ("quarantine", [QUARANTINED]), ("reinject", [TAGGED])]
    assert await send(filter_address, "alice@example.org", rcpts, raw) == "250"
    assert effects(runtime) == once
    await jobs.drain_outbox(runtime)
    assert sorted(r for item in sink.received for r in item.rcpt_tos) == [FORWARD_TO, TAGGED]


async def test_recipients_merged_into_a_later_hand_over_are_decided_once_each(
        runtime: Runtime, filter_address: tuple[str, int], gtube: str) -> None:
    """Postfix may hand the recipients of one queue file over in other groups on a retry:
    only the ones not taken yet are decided."""
    raw = spam(gtube)
    assert await send(filter_address, "alice@example.org", [TAGGED], raw) == "250"
    assert await send(filter_address, "alice@example.org", [TAGGED, QUARANTINED], raw) == "250"
    assert effects(runtime) == [("quarantine", [QUARANTINED]), ("reinject", [TAGGED])]


async def test_another_message_under_a_reused_queue_id_or_without_one_is_decided(
        runtime: Runtime, filter_address: tuple[str, int]) -> None:
    """The key is the queue ID *and* the bytes (short Postfix queue IDs are reused); without
    XFORWARD there is no queue ID and every hand-over is decided, as before."""
    first, second = make_message("one\n", to=TAGGED), make_message("two\n", to=TAGGED)
    assert await send(filter_address, "alice@example.org", [TAGGED], first) == "250"
    assert await send(filter_address, "alice@example.org", [TAGGED], second) == "250"
    assert await send(filter_address, "alice@example.org", [TAGGED], first, xforward=None) == "250"
    assert await send(filter_address, "alice@example.org", [TAGGED], first, xforward=None) == "250"
    assert [r.rcpt_tos for r in outbox_rows(runtime)] == [[TAGGED]] * 4


async def test_the_records_of_taken_messages_are_purged_after_their_keeping(
        runtime: Runtime, filter_address: tuple[str, int]) -> None:
    assert await send(filter_address, "alice@example.org", [TAGGED], make_message(to=TAGGED)) == "250"
    with runtime.store.session_factory.begin() as s:
        assert filtered.purge(s, NOW) == 0  # recorded at NOW: not older than NOW
        assert filtered.purge(s, NOW + dt.timedelta(days=filtered.KEPT_DAYS, seconds=1)) == 1
    counts = await jobs.purge_once(runtime)
    assert counts["filtered"] == 0


async def test_clamd_down_is_451_and_nothing_is_stored(database_url: str, 
        tmp_path: Path, sink: RelaySink, spamd_instance: Any, test_mmdb_path: Path,
        fake_scanner: Callable[[str], AbstractAsyncContextManager[str]]) -> None:
    async with fake_scanner("refuse") as dead_clamd:
        runtime = filter_runtime(database_url, sink.port, dead_clamd, spamd_instance.tcp_address, test_mmdb_path)
        server = await start_content_filter("inet:127.0.0.1:0", runtime)
        try:
            host, port = bound_address(server)[len("inet:"):].rsplit(":", 1)
            reply = await send((host, int(port)), "alice@example.org", [TAGGED, QUARANTINED],
                               make_message(to=TAGGED))
        finally:
            server.close()
            await server.wait_closed()
    assert reply.startswith("451 4.7.1"), reply
    assert outbox_rows(runtime) == []


async def test_store_down_is_451_never_5xx(backend: Backend, tmp_path: Path, sink: RelaySink, clamd_instance: Any,
                                           spamd_instance: Any, test_mmdb_path: Path) -> None:
    # A database without the schema: every read fails as the store being unavailable.
    runtime = filter_runtime(backend.new_url(tmp_path, "mail"), sink.port, clamd_instance.unix_address, spamd_instance.tcp_address,
                             test_mmdb_path, schema=False)
    server = await start_content_filter("inet:127.0.0.1:0", runtime)
    try:
        host, port = bound_address(server)[len("inet:"):].rsplit(":", 1)
        reply = await send((host, int(port)), "alice@example.org", [TAGGED], make_message(to=TAGGED))
    finally:
        server.close()
        await server.wait_closed()
    assert reply.startswith("451 4.3.0"), reply


async def test_unix_socket_listener(runtime: Runtime, sink: RelaySink, tmp_path: Path) -> None:
    path = tmp_path / "filter.sock"
    server = await start_content_filter(f"unix:{path}", runtime)
    try:
        client = aiosmtplib.SMTP(socket_path=str(path), hostname="localhost", start_tls=False, timeout=30)
        await client.connect()
        await client.sendmail("alice@example.org", [TAGGED], make_message(to=TAGGED))
        await client.quit()
    finally:
        server.close()
        await server.wait_closed()
    assert [r.rcpt_tos for r in outbox_rows(runtime)] == [[TAGGED]]


async def test_xforward_rules(filter_address: tuple[str, int]) -> None:
    client = aiosmtplib.SMTP(hostname=filter_address[0], port=filter_address[1], start_tls=False, timeout=30)
    await client.connect()
    try:
        await client.ehlo()
        advertised = client.esmtp_extensions["xforward"].split()
        assert {"NAME", "ADDR", "HELO", "IDENT", "SOURCE", "PROTO"} <= set(advertised)
        assert (await client.execute_command(b"XFORWARD ADDR=[UNAVAILABLE] NAME=x")).code == 250
        assert (await client.execute_command(b"XFORWARD COLOR=blue")).code == 501
        assert (await client.execute_command(b"XFORWARD")).code == 501
        await client.mail("alice@example.org")
        # Not in the middle of a transaction (XFORWARD_README).
        assert (await client.execute_command(b"XFORWARD ADDR=192.0.2.1")).code == 503
    finally:
        await client.quit()


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("NAME=mx.example.org ADDR=203.0.113.5", {"NAME": "mx.example.org", "ADDR": "203.0.113.5"}),
        ("ADDR=IPV6:2001:db8::1 PORT=25", {"ADDR": "2001:db8::1", "PORT": "25"}),
        ("name=[UNAVAILABLE] helo=[TEMPUNAVAIL]", {"NAME": None, "HELO": None}),
        ("HELO=a+2Bb+3Dc IDENT=4XbR1v0Jc4z9sVQ", {"HELO": "a+b=c", "IDENT": "4XbR1v0Jc4z9sVQ"}),
    ],
)
def test_parse_xforward(arg: str, expected: dict[str, str | None]) -> None:
    assert parse_xforward(arg) == expected


@pytest.mark.parametrize(("text", "decoded"), [("plain", "plain"), ("a+2B+3D", "a+="), ("a+zz", "a+zz"), ("+4", "+4")])
def test_xtext_decode(text: str, decoded: str) -> None:
    assert xtext_decode(text) == decoded


async def test_xforward_login_and_address_reach_the_engine_for_one_transaction(
        runtime: Runtime, filter_address: tuple[str, int], caplog: pytest.LogCaptureFixture) -> None:
    """An MTA that forwards the login: an overseas submission is refused by the engine, which an
    after-queue filter cannot bounce, so nothing is delivered; the next transaction on the same
    connection has no XFORWARD attributes left and is plain inbound mail."""
    client = aiosmtplib.SMTP(hostname=filter_address[0], port=filter_address[1], start_tls=False, timeout=30)
    await client.connect()
    try:
        await client.ehlo()
        reply = await client.execute_command(b"XFORWARD LOGIN=tagged@example.jp ADDR=8.8.8.8 IDENT=4XAAA")
        assert reply.code == 250
        await client.sendmail(TAGGED, [OUTSIDE], make_message(sender=TAGGED, to=OUTSIDE))
        assert outbox_rows(runtime) == []
        assert "refused submission not delivered queue_id=4XAAA" in caplog.text
        await client.sendmail(TAGGED, [OUTSIDE], make_message(sender=TAGGED, to=OUTSIDE))
    finally:
        await client.quit()
    assert [(r.purpose, r.rcpt_tos) for r in outbox_rows(runtime)] == [("reinject", [OUTSIDE])]
