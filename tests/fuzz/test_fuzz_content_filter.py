"""Fuzzing the after-queue SMTP content filter (SPEC §10): its end-of-DATA
handler on mutated messages and envelopes (XFORWARD attributes included),
and whole SMTP dialogues with arbitrary command lines sent to the real
aiosmtpd server on a loopback port.  Outcomes: 250 (stored) or 451 (the MTA
keeps it) for a message, never 5xx after DATA and never an unhandled
exception; the server keeps answering afterwards."""

from __future__ import annotations

import asyncio

from aiosmtpd.smtp import Envelope as SmtpEnvelope, Session as SmtpSession
from hypothesis import given, settings, strategies as st

from mailadmin.adapters.content_filter import ContentFilterHandler, FilterSMTP, parse_xforward, start_content_filter
from mailadmin.config.model import LimitsConf
from mailadmin.listeners import bound_address
from tests.fuzz.harness import COUNTS, HUGE, RECIPIENTS, PureRuntime, mutated_message

xforward_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.tuples(st.sampled_from(["NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE", "LOGIN", "X"]),
                       st.sampled_from(["[UNAVAILABLE]", "IPV6:::1", "192.0.2.10", "a+2Bb", "+", "+ZZ", "",
                                        "taro@example.jp", "4AbC1"])),
             max_size=6).map(lambda ps: " ".join(f"{k}={v}" for k, v in ps)),
)


async def end_of_data(runtime: PureRuntime, raw: bytes, mail_from: str, rcpts: list[str], xforward: str) -> str:
    handler = ContentFilterHandler(runtime)  # type: ignore[arg-type]
    server = FilterSMTP(handler)
    try:
        server.xforward = parse_xforward(xforward)
    except ValueError:
        server.xforward = {}
    envelope = SmtpEnvelope()
    envelope.mail_from = mail_from
    envelope.rcpt_tos = rcpts
    envelope.original_content = raw
    envelope.content = raw
    session = SmtpSession(asyncio.get_running_loop())
    session.peer = ("127.0.0.1", 40000)  # type: ignore[assignment]  # aiosmtpd types it as str
    return await handler.handle_DATA(server, session, envelope)


@given(mutated_message(), st.sampled_from(["alice@example.org", "<>", "", "x@example.net"]),
       st.lists(st.sampled_from(RECIPIENTS), min_size=1, max_size=4), xforward_text)
def test_end_of_data_on_mutated_messages(raw: bytes, mail_from: str, rcpts: list[str], xforward: str) -> None:
    COUNTS["content_filter.data"] += 1
    reply = asyncio.run(end_of_data(PureRuntime(), raw, mail_from, rcpts, xforward))
    assert reply.startswith(("250 ", "451 ")), reply


def test_messages_past_the_limits_stay_in_the_queue() -> None:
    """Regression (issue 10): after queue a message past [limits] gets 451, never a 5xx or a crash."""
    for name, make in HUGE.items():
        reply = asyncio.run(end_of_data(PureRuntime(), make(), "alice@example.org", ["taro@example.jp"], ""))
        assert reply.startswith("451 4.3.4 ") and "max_" in reply, (name, reply)
    small = PureRuntime(limits=LimitsConf(max_message_bytes=65_536))
    reply = asyncio.run(end_of_data(small, HUGE["10 MB header line"](), "a@example.org", ["taro@example.jp"], ""))
    assert "max_message_bytes" in reply


command_line = st.one_of(
    st.sampled_from([b"EHLO mx.example.jp", b"HELO x", b"MAIL FROM:<alice@example.org>", b"MAIL FROM:<>",
                     b"RCPT TO:<taro@example.jp>", b"RCPT TO:<jiro@example.jp> NOTIFY=NEVER", b"DATA", b"RSET",
                     b"NOOP", b"XFORWARD ADDR=192.0.2.10 NAME=mx IDENT=Q1", b"XFORWARD BAD", b"VRFY x",
                     b"MAIL FROM:<a@b> SMTPUTF8 BODY=8BITMIME", b"STARTTLS", b"AUTH PLAIN AAAA", b"."]),
    st.binary(max_size=100).map(lambda b: b.replace(b"\n", b"")),
)


async def dialogue(lines: list[bytes], message: bytes) -> list[bytes]:
    server = await start_content_filter("inet:127.0.0.1:0", PureRuntime())  # type: ignore[arg-type]
    port = int(bound_address(server).rsplit(":", 1)[1])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = b"".join(line + b"\r\n" for line in lines)
        payload += (b"EHLO mx\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<taro@example.jp>\r\nDATA\r\n"
                    + message.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\nQUIT\r\n")
        writer.write(payload)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        # The server still serves a new connection.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        banner = await asyncio.wait_for(reader.readline(), timeout=10)
        writer.write(b"NOOP\r\nQUIT\r\n")
        await writer.drain()
        after = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert banner.startswith(b"220 ") and b"250 " in after
        return received.split(b"\r\n")
    finally:
        server.close()
        await server.wait_closed()


@settings(max_examples=max(10, settings().max_examples // 5))
@given(st.lists(command_line, max_size=8), mutated_message())
def test_smtp_dialogues_with_arbitrary_commands(lines: list[bytes], message: bytes) -> None:
    COUNTS["content_filter.smtp"] += 1
    replies = [r for r in asyncio.run(dialogue(lines, message)) if r]
    assert replies and replies[0].startswith(b"220 ")
    for reply in replies:
        assert reply[:3].isdigit() and reply[3:4] in (b" ", b"-"), reply
        assert b"Error: (" not in reply, f"an unhandled exception answered: {reply!r}"
    if any(r.startswith((b"421 ", b"502 5.5.1 Too many unrecognized")) for r in replies):
        return  # aiosmtpd hung up on the client (too many bad commands): a closed connection
    # The final transaction's message: stored or left queued, never refused.
    end_of_message = [r for r in replies if r.startswith((b"250 2.0.0 Ok: filtered", b"451 "))]
    assert end_of_message, replies
