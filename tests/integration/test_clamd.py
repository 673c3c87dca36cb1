"""ClamdClient against Debian's real clamd and against fakes that refuse, hang,
answer garbage or drop the connection (SPEC §7: infected mail is found wherever
the virus sits; a clamd failure is an error, never "clean")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import pytest

from mailadmin.errors import ServiceProtocolError, ServiceUnavailable
from mailadmin.services.clamd import CHUNK_BYTES, ClamdClient
from tests.fixtures.scanners import (
    CLAM_TEST_FILE,
    Attachment,
    ClamdInstance,
    make_message,
    zip_bytes,
)

TRANSPORTS = ["tcp", "unix"]
FakeScanner = Callable[..., AbstractAsyncContextManager[str]]
# Longer than any client timeout below: a call still running then would never end.
# How long a failure takes is measured in bench/, not asserted here.
HANG_BOUND_SECONDS = 10.0


def client(instance: ClamdInstance, transport: str, *, max_size_bytes: int = 25_000_000,
           timeout_seconds: float = 30.0) -> ClamdClient:
    address = instance.tcp_address if transport == "tcp" else instance.unix_address
    return ClamdClient(address, timeout_seconds, max_size_bytes)


def infected_messages(eicar: str) -> dict[str, bytes]:
    virus = eicar.encode("ascii")
    return {
        "inline in the body": make_message(f"Hello,\n{eicar}\nbye\n"),
        "base64 attachment": make_message(attachments=[Attachment("eicar.com", virus)]),
        "zip attachment": make_message(attachments=[
            Attachment("eicar.zip", zip_bytes({"docs/eicar.com": virus}), "application/zip")]),
        "bare file": virus,
    }


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_eicar_is_found_wherever_it_is(clamd_instance: ClamdInstance, eicar: str,
                                             transport: str) -> None:
    clamd = client(clamd_instance, transport)
    for where, raw in infected_messages(eicar).items():
        found = await clamd.scan(raw)
        assert found is not None and found.startswith("Eicar-Test-Signature"), where


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_clean_mail_is_none(clamd_instance: ClamdInstance, transport: str) -> None:
    clamd = client(clamd_instance, transport)
    assert await clamd.scan(make_message()) is None
    assert await clamd.scan(make_message(attachments=[
        Attachment("notes.zip", zip_bytes({"notes.txt": b"nothing to see"}), "application/zip")])) is None
    assert await clamd.scan(b"") is None


async def test_clamav_test_file_attachment_is_found(clamd_instance: ClamdInstance) -> None:
    assert CLAM_TEST_FILE.is_file(), "install Debian's clamav-testfiles"
    raw = make_message(attachments=[Attachment("clam.exe", CLAM_TEST_FILE.read_bytes())])
    assert await client(clamd_instance, "unix").scan(raw) == "ClamAV-Test-File.HDB.UNOFFICIAL"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_eicar_across_a_chunk_boundary_of_a_big_message(
        clamd_instance: ClamdInstance, eicar: str, transport: str) -> None:
    # The pattern straddles the first 64 KiB chunk, in a message of several chunks.
    padding = b"a" * (CHUNK_BYTES - len(eicar) // 2)
    data = padding + eicar.encode("ascii") + b"b" * (3 * CHUNK_BYTES)
    found = await client(clamd_instance, transport).scan(data)
    assert found == "Eicar-Test-Signature.NDB.UNOFFICIAL"
    assert await client(clamd_instance, transport).scan(padding + b"b" * (3 * CHUNK_BYTES)) is None


async def test_concurrent_scans_each_get_their_own_answer(clamd_instance: ClamdInstance,
                                                          eicar: str) -> None:
    clamd = client(clamd_instance, "tcp")
    messages = [make_message(f"mail {i}\n{eicar if i % 3 == 0 else 'clean'}\n") for i in range(24)]
    results = await asyncio.gather(*(clamd.scan(m) for m in messages))
    assert [r is not None for r in results] == [i % 3 == 0 for i in range(24)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_ping(clamd_instance: ClamdInstance, transport: str) -> None:
    await client(clamd_instance, transport).ping()


async def test_data_at_max_size_is_scanned_and_one_byte_more_is_refused(
        clamd_instance: ClamdInstance, eicar: str) -> None:
    data = eicar.encode("ascii") + b"x" * 1000
    clamd = client(clamd_instance, "tcp", max_size_bytes=len(data))
    assert await clamd.scan(data) == "Eicar-Test-Signature.NDB.UNOFFICIAL"
    with pytest.raises(ServiceProtocolError, match="max_size_bytes"):
        await clamd.scan(data + b"x")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_over_clamd_stream_limit_is_a_scan_failure(clamd_instance: ClamdInstance,
                                                         transport: str) -> None:
    # Our limit is above clamd's StreamMaxLength: clamd's refusal must surface as an error.
    # clamd answers "size limit exceeded" and closes while we still send; when our
    # next write meets the closed socket first (EPIPE/ECONNRESET over TCP), the
    # kernel drops the unread reply and all that is left is the lost connection.
    # Either way it is a scan failure, handled by the fail mode (SPEC §7).
    clamd = client(clamd_instance, transport, max_size_bytes=4 * clamd_instance.stream_max_length_bytes)
    with pytest.raises((ServiceProtocolError, ServiceUnavailable),
                       match="size limit|Broken pipe|Connection reset|without a reply"):
        await clamd.scan(b"x" * (clamd_instance.stream_max_length_bytes + CHUNK_BYTES))
    # clamd is still fine afterwards.
    assert await clamd.scan(b"clean") is None


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("behaviour", "error"), [
    ("refuse", ServiceUnavailable),
    ("hang", ServiceUnavailable),
    ("garbage", ServiceProtocolError),
    ("drop", ServiceUnavailable),
])
async def test_failures_map_to_service_errors(fake_scanner: FakeScanner, behaviour: str,
                                              error: type[Exception], transport: str) -> None:
    timeout_seconds = 0.25
    async with fake_scanner(behaviour, transport) as address:
        clamd = ClamdClient(address, timeout_seconds, 1_000_000)
        calls: list[Callable[[], Awaitable[object]]] = [lambda: clamd.scan(make_message()), clamd.ping]
        for call in calls:
            # A hung clamd is an error at the client's timeout, not a wait forever.
            with pytest.raises(error) as caught:
                await asyncio.wait_for(call(), HANG_BOUND_SECONDS)
            assert caught.value.service == "clamd"  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_peer_that_stops_reading_is_cut_at_the_timeout(fake_scanner: FakeScanner,
                                                               transport: str) -> None:
    # The upload itself blocks (socket buffers full): the deadline covers it too.
    async with fake_scanner("stall", transport) as address:
        clamd = ClamdClient(address, 0.25, 50_000_000)
        with pytest.raises(ServiceUnavailable, match="within 0.25 s"):
            await asyncio.wait_for(clamd.scan(b"y" * 20_000_000), HANG_BOUND_SECONDS)
