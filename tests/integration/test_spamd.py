"""SpamdClient against Debian's real spamd and against fakes that refuse, hang,
answer garbage or drop the connection (SPEC §8: score, threshold and rules from
one REPORT; a spamd failure is an error the policy decides about)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from mailadmin.errors import ServiceProtocolError, ServiceUnavailable
from mailadmin.services.spamd import NOT_SCANNED_REPORT, SpamdClient
from tests.fixtures.fakes import garbage
from tests.fixtures.scanners import SpamdInstance, make_message

TRANSPORTS = ["tcp", "unix"]
FakeScanner = Callable[..., AbstractAsyncContextManager[str]]
# Longer than any client timeout below: a call still running then would never end.
# How long a failure takes is measured in bench/, not asserted here.
HANG_BOUND_SECONDS = 10.0


def client(instance: SpamdInstance, transport: str, *, max_size_bytes: int = 500_000,
           user: str | None = None) -> SpamdClient:
    address = instance.tcp_address if transport == "tcp" else instance.unix_address
    return SpamdClient(address, 30.0, max_size_bytes, user=user)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_gtube_is_spam_with_its_rule(spamd_instance: SpamdInstance, gtube: str,
                                           transport: str) -> None:
    report = await client(spamd_instance, transport).report(make_message(f"Hi\n{gtube}\n"))
    assert report.is_spam
    assert report.threshold == spamd_instance.required_score
    assert report.score >= report.threshold
    assert report.rules["GTUBE"] >= 1000.0
    assert "GTUBE" in report.report and report.scanned


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_personal_mail_is_ham(spamd_instance: SpamdInstance, transport: str) -> None:
    report = await client(spamd_instance, transport).report(make_message())
    assert not report.is_spam
    assert report.score < report.threshold == spamd_instance.required_score
    assert "GTUBE" not in report.rules
    assert "Content analysis details" in report.report


async def test_user_header_is_accepted(spamd_instance: SpamdInstance, gtube: str) -> None:
    report = await client(spamd_instance, "tcp", user="taro").report(make_message(gtube))
    assert report.is_spam and "GTUBE" in report.rules


async def test_japanese_mail_is_scanned(spamd_instance: SpamdInstance) -> None:
    raw = make_message("来週の会議は金曜日の午後にします。\nよろしくお願いします。\n",
                       subject="会議の件")
    report = await client(spamd_instance, "unix").report(raw)
    assert not report.is_spam and report.scanned


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ping(spamd_instance: SpamdInstance, transport: str) -> None:
    await client(spamd_instance, transport).ping()


async def test_oversize_mail_is_passed_unscanned(spamd_instance: SpamdInstance, gtube: str) -> None:
    raw = make_message(f"{gtube}\n" + "filler line\n" * 200)
    spamd = client(spamd_instance, "tcp", max_size_bytes=len(raw) - 1)
    report = await spamd.report(raw)
    assert (report.is_spam, report.score, report.rules, report.report) == (False, 0.0, {}, NOT_SCANNED_REPORT)
    assert not report.scanned
    # At exactly max_size_bytes it is scanned.
    assert (await client(spamd_instance, "tcp", max_size_bytes=len(raw)).report(raw)).is_spam


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("behaviour", "error"), [
    ("refuse", ServiceUnavailable),
    ("hang", ServiceUnavailable),
    ("stall", ServiceUnavailable),
    ("garbage", ServiceProtocolError),
    ("drop", ServiceUnavailable),
])
async def test_failures_map_to_service_errors(fake_scanner: FakeScanner, behaviour: str,
                                              error: type[Exception], transport: str) -> None:
    timeout_seconds = 0.25
    async with fake_scanner(behaviour, transport) as address:
        spamd = SpamdClient(address, timeout_seconds, 500_000)
        calls: list[Callable[[], Awaitable[object]]] = [lambda: spamd.report(make_message()), spamd.ping]
        for call in calls:
            # A hung spamd is an error at the client's timeout, not a wait forever.
            with pytest.raises(error) as caught:
                await asyncio.wait_for(call(), HANG_BOUND_SECONDS)
            assert caught.value.service == "spamd"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("reply", "error", "text"), [
    (b"SPAMD/1.5 76 Bad header line: (Content-length mismatch)\r\n", ServiceProtocolError, "76"),
    (b"SPAMD/1.5 75 EX_TEMPFAIL\r\n", ServiceUnavailable, "75"),
    (b"SPAMD/1.5 0 EX_OK\r\nContent-length: 2\r\n\r\nok", ServiceProtocolError, "Spam header"),
    (b"SPAMD/1.5 0 EX_OK\r\nContent-length: 200\r\nSpam: True ; 9.0 / 5.0\r\n\r\ncut",
     ServiceProtocolError, "Content-length"),
])
async def test_spamd_error_replies(reply: bytes, error: type[Exception], text: str) -> None:
    async with garbage(reply=reply) as address:
        with pytest.raises(error, match=text):
            await SpamdClient(address, 2.0, 500_000).report(make_message())


async def test_a_well_formed_reply_from_any_server_is_parsed() -> None:
    reply = (b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: False ; 1.5 / 5.0\r\n\r\n")
    async with garbage(reply=reply) as address:
        report = await SpamdClient(address, 2.0, 500_000).report(make_message())
    assert (report.is_spam, report.score, report.threshold, report.rules) == (False, 1.5, 5.0, {})
