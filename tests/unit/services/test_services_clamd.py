"""clamd INSTREAM framing and reply parsing (clamd(8)); oversize data is an
error before any connection, never "clean" (SPEC §7)."""

from __future__ import annotations

import struct

import pytest

from mailadmin.errors import ServiceProtocolError
from mailadmin.services.clamd import CHUNK_BYTES, ClamdClient, instream_frames, parse_scan_reply


@pytest.mark.parametrize(("reply", "signature"), [
    (b"stream: OK\0", None),
    (b"stream: OK", None),
    (b"stream: OK\n\0", None),
    (b"stream: Eicar-Test-Signature FOUND\0", "Eicar-Test-Signature"),
    (b"stream: Eicar-Test-Signature.NDB.UNOFFICIAL FOUND\0", "Eicar-Test-Signature.NDB.UNOFFICIAL"),
    (b"stream: Win.Test.EICAR_HDB-1 FOUND\0", "Win.Test.EICAR_HDB-1"),
    (b"stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0", "Heuristics.Limits.Exceeded.MaxFileSize"),
    (b"stream: Sanesecurity.Jurlbl.Auto.1 FOUND\n\0", "Sanesecurity.Jurlbl.Auto.1"),
])
def test_well_formed_replies(reply: bytes, signature: str | None) -> None:
    assert parse_scan_reply(reply) == signature


@pytest.mark.parametrize(("reply", "message"), [
    (b"INSTREAM size limit exceeded. ERROR\0", "size limit exceeded"),
    (b"stream: Can't allocate memory ERROR\0", "allocate memory"),
    (b"stream: lstat() failed: No such file or directory. ERROR\0", "lstat"),
    (b"COMMAND READ TIMED OUT ERROR\0", "TIMED OUT"),
])
def test_error_replies_are_protocol_errors(reply: bytes, message: str) -> None:
    with pytest.raises(ServiceProtocolError, match=message) as caught:
        parse_scan_reply(reply)
    assert caught.value.service == "clamd"


@pytest.mark.parametrize("reply", [
    b"\0", b"", b"PONG\0", b"stream:\0", b"stream: \0", b"stream: FOUND\0", b"stream:  FOUND\0",
    b"stream: two words FOUND\0", b"stream: ok\0", b"stream: OK FOUND extra\0",
    b"Eicar FOUND\0", b"HTTP/1.0 200 OK\r\n\r\n\0", b"stream: \xff\xfe FOUND\0",
    b"UNKNOWN COMMAND\0",
])
def test_anything_else_is_a_protocol_error_never_clean(reply: bytes) -> None:
    with pytest.raises(ServiceProtocolError):
        parse_scan_reply(reply)


def reassemble(frames: list[bytes | memoryview]) -> tuple[bytes, list[int]]:
    wire = b"".join(bytes(f) for f in frames)
    assert wire.startswith(b"zINSTREAM\0")
    rest, data, sizes = wire[len(b"zINSTREAM\0"):], b"", []
    while True:
        (size,) = struct.unpack("!L", rest[:4])
        sizes.append(size)
        if size == 0:
            assert rest[4:] == b""
            return data, sizes
        data, rest = data + rest[4:4 + size], rest[4 + size:]


@pytest.mark.parametrize(("length", "sizes"), [
    (0, [0]),
    (1, [1, 0]),
    (CHUNK_BYTES - 1, [CHUNK_BYTES - 1, 0]),
    (CHUNK_BYTES, [CHUNK_BYTES, 0]),
    (CHUNK_BYTES + 1, [CHUNK_BYTES, 1, 0]),
    (3 * CHUNK_BYTES + 7, [CHUNK_BYTES, CHUNK_BYTES, CHUNK_BYTES, 7, 0]),
])
def test_instream_chunks(length: int, sizes: list[int]) -> None:
    data = bytes(i % 251 for i in range(length))
    assert reassemble(instream_frames(data)) == (data, sizes)


async def test_oversize_data_is_refused_without_connecting() -> None:
    # Connecting to this socket would raise ServiceUnavailable, not a protocol error.
    clamd = ClamdClient("/nonexistent/mailadmin-test/clamd.sock", 5.0, max_size_bytes=10)
    with pytest.raises(ServiceProtocolError, match="max_size_bytes=10") as caught:
        await clamd.scan(b"x" * 11)
    assert caught.value.service == "clamd"
