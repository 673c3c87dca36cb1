"""Fuzzing the milter side (SPEC §10; milter protocol v6): the packet decoder
fed arbitrary bytes in arbitrary chunks, and whole milter connections —
Postfix-like command streams, corrupted and cut anywhere — served by the
real MilterConnection over an in-memory stream.  The only outcomes: packets
or ProtocolViolation from the decoder; from a connection, well-formed
responses and then a closed connection."""

from __future__ import annotations

import asyncio

from hypothesis import given, strategies as st

from mailadmin.adapters import milter_codec as mc
from mailadmin.adapters.milter import MilterConnection, MilterService
from mailadmin.errors import ProtocolViolation
from tests.fuzz.harness import COUNTS, RECIPIENTS, PureRuntime, mutated_message

POSTFIX_OFFER = mc.OptNeg(6, mc.Action(0x1FF), mc.Proto(0x1FFFFF))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


@given(st.binary(max_size=2000), st.lists(st.integers(0, 4000), max_size=12))
def test_decoder_on_arbitrary_bytes_in_arbitrary_chunks(data: bytes, cuts: list[int]) -> None:
    COUNTS["milter.decoder"] += 1
    decoder = mc.FrameDecoder()
    packets: list[tuple[bytes, bytes]] = []
    try:
        for piece in chunked(data, cuts):
            packets.extend(decoder.feed(piece))
    except ProtocolViolation:
        return
    whole = mc.FrameDecoder()
    assert whole.feed(data) == packets, "chunking must not change the packets"
    for code, payload in packets:
        try:
            command = mc.decode_command(code, payload)
        except ProtocolViolation:
            continue
        assert command is not None


def commands(message: bytes, rcpts: list[str], sasl: bool) -> list[mc.Command]:
    head, _, body = message.partition(b"\r\n\r\n")
    out: list[mc.Command] = [
        POSTFIX_OFFER, mc.Macros(b"C", {"j": "mx.example.jp"}),
        mc.Connect("mx.example.org", "4", 25, "192.0.2.10"), mc.Helo("mx.example.org"),
        mc.Macros(b"M", {"{auth_authen}": "taro@example.jp"} if sasl else {}),
        mc.Mail(("<alice@example.org>", "SIZE=100")),
    ]
    out += [mc.Rcpt((f"<{r}>",)) for r in rcpts]
    for line in head.decode("utf-8", "surrogateescape").replace("\r\n\t", "\n\t").split("\r\n"):
        name, _, value = line.partition(":")
        if name and "\0" not in line:
            out.append(mc.Header(name, value.lstrip(" ")))
    out.append(mc.EndOfHeaders())
    out += [mc.Body(body[i:i + 700]) for i in range(0, len(body), 700)]
    out += [mc.Macros(b"E", {"i": "4AbC1"}), mc.EndOfMessage(), mc.Quit()]
    return out


class MemoryWriter:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def get_extra_info(self, name: str) -> None:
        return None

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


async def serve(stream: bytes, cuts: list[int]) -> MemoryWriter:
    reader = asyncio.StreamReader()
    for piece in chunked(stream, cuts):
        reader.feed_data(piece)
    reader.feed_eof()
    writer = MemoryWriter()
    connection = MilterConnection(MilterService(PureRuntime()), reader, writer)  # type: ignore[arg-type]
    await asyncio.wait_for(connection.serve(), timeout=5)
    return writer


corruption = st.lists(st.tuples(st.sampled_from(("flip", "insert", "cut", "length")), st.integers(0, 10**6),
                                st.binary(min_size=1, max_size=8)), max_size=3)


@given(mutated_message(), st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=3), st.booleans(),
       corruption, st.lists(st.integers(0, 10**6), max_size=8))
def test_milter_connection_on_corrupted_command_streams(message: bytes, rcpts: list[str], sasl: bool,
                                                        damage: list[tuple[str, int, bytes]],
                                                        cuts: list[int]) -> None:
    COUNTS["milter.connection"] += 1
    stream = bytearray(b"".join(mc.encode_command(c) for c in commands(message, rcpts, sasl)))
    for kind, at, data in damage:
        at %= len(stream) + 1
        if kind == "flip" and at < len(stream):
            stream[at] ^= data[0]
        elif kind == "insert":
            stream[at:at] = data
        elif kind == "cut":
            del stream[at:]
        else:  # a length prefix of anything, up to 2**32-1
            stream[at:at] = data.rjust(4, b"\0")[:4] + b"M"
    writer = asyncio.run(serve(bytes(stream), cuts))
    assert writer.closed, "the connection always ends closed"
    responses = [mc.decode_response(code, data) for code, data in mc.iter_frames(bytes(writer.data))]
    finals = [r for r in responses if isinstance(r, (mc.Accept, mc.Discard, mc.Tempfail, mc.ReplyCode))]
    # One message: decided at most at MAIL (refused) and at its end of message.
    # Damage that forges another end of message (a flipped command byte) gets
    # a tempfail for it, never a second decision.
    decided = [r for r in finals if not isinstance(r, mc.Tempfail)]
    assert len(decided) <= 2
    for r in finals:
        if isinstance(r, mc.ReplyCode):
            assert r.code in (451, 552, 554), r


def test_a_forged_end_of_message_is_tempfailed_and_the_message_decided_once() -> None:
    """Found by the long run (bench/fuzz_fast.py): a flipped byte turned the
    end-of-message macros ('D') into an end of message ('E') of their own, so
    two came.  The first ends the message and decides it; the second, without
    a transaction, gets a tempfail, never a second decision."""
    frames = [mc.encode_command(c) for c in commands(b"Subject: x\r\n\r\nbody\r\n", ["taro@example.jp"], True)]
    at = next(i for i, f in enumerate(frames) if f[4:6] == b"DE")  # Macros(stage=b"E")
    frames[at] = frames[at][:4] + b"E" + frames[at][5:]
    writer = asyncio.run(serve(b"".join(frames), []))
    responses = [mc.decode_response(code, data) for code, data in mc.iter_frames(bytes(writer.data))]
    finals = [r for r in responses if isinstance(r, (mc.Accept, mc.Discard, mc.Tempfail, mc.ReplyCode))]
    assert [type(r) for r in finals] == [mc.Accept, mc.Tempfail]
    assert writer.closed


def test_an_undamaged_stream_gets_one_verdict_per_message() -> None:
    """The fuzz target's baseline: without damage every message is decided."""
    from tests.fuzz.harness import CORPUS

    for message in CORPUS:
        writer = asyncio.run(serve(b"".join(mc.encode_command(c) for c in commands(message, ["jiro@example.jp"],
                                                                                    False)), []))
        responses = [mc.decode_response(code, data) for code, data in mc.iter_frames(bytes(writer.data))]
        assert isinstance(responses[0], mc.OptNegReply)
        assert isinstance(responses[-1], (mc.Accept, mc.Discard)), responses
