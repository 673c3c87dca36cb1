"""Fuzzing Postfix policy delegation (SPEC §9, §10; SMTPD_POLICY_README):
the request parser on arbitrary bytes, and whole connections (requests
valid, damaged, oversized, cut) served by the real PolicyConnection over an
in-memory stream in arbitrary chunks.  Outcomes: a dict or ProtocolViolation
from the parser; from a connection, ``action=…`` replies (DUNNO, a 554
refusal, DEFER_IF_PERMIT) and a closed connection."""

from __future__ import annotations

import asyncio

from hypothesis import given, strategies as st

from mailadmin.adapters.postfix_policy import PolicyConnection, parse_request
from mailadmin.errors import ProtocolViolation
from tests.fuzz.harness import COUNTS, PureRuntime
from tests.fuzz.test_fuzz_milter import MemoryWriter, chunked

ATTRIBUTES = ("request", "protocol_state", "protocol_name", "sasl_username", "client_address", "sender",
              "recipient", "instance", "queue_id", "helo_name", "client_name", "size")
values = st.one_of(st.sampled_from(["smtpd_access_policy", "RCPT", "MAIL", "taro@example.jp", "192.0.2.10",
                                    "203.0.113.9", "::1", "", "abc.123", "x" * 300]),
                   st.text(max_size=30).filter(lambda v: "\n" not in v))


@st.composite
def request_block(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(st.sampled_from(ATTRIBUTES), values), max_size=14))
    lines = [f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in pairs]
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.binary(max_size=60)).replace(b"\n", b""))
    return b"\n".join(lines) + b"\n\n"


@given(st.binary(max_size=3000))
def test_parser_on_arbitrary_bytes(block: bytes) -> None:
    COUNTS["policy.parser"] += 1
    try:
        request = parse_request(block)
    except ProtocolViolation:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in request.items())


async def serve(stream: bytes, cuts: list[int]) -> MemoryWriter:
    reader = asyncio.StreamReader()
    for piece in chunked(stream, cuts):
        reader.feed_data(piece)
    reader.feed_eof()
    writer = MemoryWriter()
    await asyncio.wait_for(PolicyConnection(PureRuntime()).serve(reader, writer), timeout=5)  # type: ignore[arg-type]
    return writer


@given(st.lists(request_block(), min_size=1, max_size=5), st.sampled_from([b"", b"x" * 70_000, b"\n", b"a=b"]),
       st.lists(st.integers(0, 10**6), max_size=8))
def test_policy_connection_on_request_streams(blocks: list[bytes], tail: bytes, cuts: list[int]) -> None:
    COUNTS["policy.connection"] += 1
    writer = asyncio.run(serve(b"".join(blocks) + tail, cuts))
    assert writer.closed
    replies = bytes(writer.data).split(b"\n\n")
    assert replies[-1] == b""
    for reply in replies[:-1]:
        assert reply.startswith(b"action=") and b"\n" not in reply
        action = reply[len(b"action="):]
        assert action == b"DUNNO" or action.startswith((b"554 5.7.1 ", b"DEFER_IF_PERMIT")), reply
