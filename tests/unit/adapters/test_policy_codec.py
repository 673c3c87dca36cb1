"""The Postfix policy delegation codec and its answers (SPEC §9, §10), without sockets:
request blocks as Postfix 3.7 writes them, replies as Postfix reads them, and the
action chosen for each kind of request."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from mailadmin.adapters.postfix_policy import (
    DUNNO,
    MAX_REQUEST_BYTES,
    TEMPFAIL_ACTION,
    PolicyConnection,
    envelope_of,
    format_reply,
    parse_request,
)
from mailadmin.engine.replies import Reject, SmtpReply
from mailadmin.message import Envelope
from mailadmin.errors import ProtocolViolation, ServiceUnavailable

# A RCPT-time request of an authenticated submission, as Postfix 3.7.11 sent it
# to a check_policy_service server (XCLIENT LOGIN= from a foreign address).
SUBMISSION_RCPT = (
    b"request=smtpd_access_policy\n"
    b"protocol_state=RCPT\n"
    b"protocol_name=ESMTP\n"
    b"client_address=8.8.8.8\n"
    b"client_name=unknown\n"
    b"client_port=51234\n"
    b"reverse_client_name=unknown\n"
    b"server_address=127.0.0.1\n"
    b"server_port=20587\n"
    b"helo_name=client.example.org\n"
    b"sender=taro@example.jp\n"
    b"recipient=friend@example.org\n"
    b"recipient_count=0\n"
    b"queue_id=4XbR1v0Jc4z9sVQ\n"
    b"instance=7a1.6741e3c2.2c3d6.0\n"
    b"size=0\n"
    b"etrn_domain=\n"
    b"stress=\n"
    b"sasl_method=PLAIN\n"
    b"sasl_username=taro@example.jp\n"
    b"sasl_sender=\n"
    b"ccert_subject=\n"
    b"ccert_issuer=\n"
    b"ccert_fingerprint=\n"
    b"ccert_pubkey_fingerprint=\n"
    b"encryption_protocol=\n"
    b"encryption_cipher=\n"
    b"encryption_keysize=0\n"
    b"policy_context=\n"
    b"\n"
)

# Inbound mail from the Internet: no login.
INBOUND_RCPT = (
    b"request=smtpd_access_policy\n"
    b"protocol_state=RCPT\n"
    b"protocol_name=SMTP\n"
    b"client_address=203.0.113.7\n"
    b"client_name=mx.example.org\n"
    b"helo_name=mx.example.org\n"
    b"sender=alice@example.org\n"
    b"recipient=taro@example.jp\n"
    b"queue_id=\n"
    b"instance=7a2.6741e3c2.2c3d7.0\n"
    b"sasl_method=\n"
    b"sasl_username=\n"
    b"sasl_sender=\n"
    b"\n"
)


def test_parse_a_recorded_submission_request() -> None:
    request = parse_request(SUBMISSION_RCPT)
    assert request["request"] == "smtpd_access_policy"
    assert request["protocol_state"] == "RCPT"
    assert request["sasl_username"] == "taro@example.jp"
    assert request["client_address"] == "8.8.8.8"
    assert request["recipient"] == "friend@example.org"
    assert request["etrn_domain"] == ""  # empty values are kept as empty strings
    assert len(request) == 29


def test_envelope_of_a_submission_request() -> None:
    assert envelope_of(parse_request(SUBMISSION_RCPT)) == Envelope(
        mail_from="taro@example.jp",
        rcpt_tos=("friend@example.org",),
        client_address="8.8.8.8",
        client_name="unknown",
        helo="client.example.org",
        sasl_username="taro@example.jp",
        queue_id="4XbR1v0Jc4z9sVQ",
    )
    inbound = envelope_of(parse_request(INBOUND_RCPT))
    assert inbound.sasl_username is None and inbound.queue_id is None


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        # A value may itself hold "=" (only the first one separates).
        (b"ccert_subject=CN=client,O=Example\n\n", {"ccert_subject": "CN=client,O=Example"}),
        # SMTPUTF8 addresses arrive as UTF-8.
        ("sender=太郎@example.jp\n\n".encode(), {"sender": "太郎@example.jp"}),
        # Bytes that are not UTF-8 are kept, not dropped or replaced.
        (b"helo_name=\xff\xfe\n\n", {"helo_name": "\udcff\udcfe"}),
        # CRLF line ends (hand-typed tests) are tolerated.
        (b"protocol_state=RCPT\r\nsasl_username=a@example.jp\r\n\n",
         {"protocol_state": "RCPT", "sasl_username": "a@example.jp"}),
        # A repeated name keeps the last value.
        (b"sender=a@example.org\nsender=b@example.org\n\n", {"sender": "b@example.org"}),
        (b"\n", {}),
    ],
)
def test_parse_edge_cases(block: bytes, expected: dict[str, str]) -> None:
    assert parse_request(block) == expected


@pytest.mark.parametrize("block", [b"request smtpd_access_policy\n\n", b"=value\n\n", b"junk\n\n"])
def test_a_line_without_name_and_value_is_a_protocol_violation(block: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        parse_request(block)


@pytest.mark.parametrize(
    ("action", "wire"),
    [
        (DUNNO, b"action=DUNNO\n\n"),
        (TEMPFAIL_ACTION, b"action=DEFER_IF_PERMIT Service temporarily unavailable\n\n"),
        ("554 5.7.1 Sending from outside\nthe home\r\ncountry", b"action=554 5.7.1 Sending from outside the home country\n\n"),
    ],
)
def test_format_reply_is_one_line_and_an_empty_line(action: str, wire: bytes) -> None:
    assert format_reply(action) == wire


# ---------------------------------------------------------------- choosing the action


@dataclass
class ScriptedEngine:
    refusal: SmtpReply | None = None
    error: Exception | None = None
    calls: list[Envelope] = field(default_factory=list)

    async def check_submission(self, envelope: Envelope) -> SmtpReply | None:
        self.calls.append(envelope)
        if self.error is not None:
            raise self.error
        return self.refusal


@dataclass
class ScriptedRuntime:
    engine: ScriptedEngine

    async def check_submission(self, envelope: Envelope) -> SmtpReply | None:
        return await self.engine.check_submission(envelope)


REFUSAL = Reject(554, "5.7.1", "Sending from outside the home country is restricted for this mailbox.")


def connection(engine: ScriptedEngine) -> PolicyConnection:
    runtime: Any = ScriptedRuntime(engine)
    return PolicyConnection(runtime)


async def test_overseas_refusal_is_a_554_5_7_1_with_the_text() -> None:
    engine = ScriptedEngine(refusal=REFUSAL)
    action = await connection(engine).decide(parse_request(SUBMISSION_RCPT))
    assert action == f"554 5.7.1 {REFUSAL.text}"
    assert engine.calls[0].sasl_username == "taro@example.jp"
    assert engine.calls[0].client_address == "8.8.8.8"


async def test_an_allowed_submission_is_dunno_never_ok() -> None:
    engine = ScriptedEngine(refusal=None)
    assert await connection(engine).decide(parse_request(SUBMISSION_RCPT)) == DUNNO
    assert len(engine.calls) == 1


async def test_without_login_the_engine_is_not_asked() -> None:
    engine = ScriptedEngine(error=AssertionError("must not be called"))
    assert await connection(engine).decide(parse_request(INBOUND_RCPT)) == DUNNO
    assert engine.calls == []


@pytest.mark.parametrize("state", ["CONNECT", "EHLO", "VRFY", "ETRN"])
async def test_states_without_a_submission_are_dunno(state: str) -> None:
    engine = ScriptedEngine(refusal=REFUSAL)
    request = parse_request(SUBMISSION_RCPT) | {"protocol_state": state}
    assert await connection(engine).decide(request) == DUNNO
    assert engine.calls == []


@pytest.mark.parametrize("error", [ServiceUnavailable("database", "locked"), RuntimeError("bug")])
async def test_an_internal_failure_is_defer_if_permit(error: Exception) -> None:
    engine = ScriptedEngine(error=error)
    assert await connection(engine).decide(parse_request(SUBMISSION_RCPT)) == TEMPFAIL_ACTION


async def test_one_answer_per_transaction_is_remembered_but_not_a_failure() -> None:
    engine = ScriptedEngine(refusal=REFUSAL)
    conn = connection(engine)
    first = parse_request(SUBMISSION_RCPT)
    second = first | {"recipient": "other@example.org"}
    assert await conn.decide(first) == await conn.decide(second)
    assert len(engine.calls) == 1
    # The next message (another instance) is asked again.
    assert await conn.decide(first | {"instance": "7a1.6741e3c2.2c3d6.1"}) == f"554 5.7.1 {REFUSAL.text}"
    assert len(engine.calls) == 2
    # A failure is not remembered: the next recipient asks again.
    failing = ScriptedEngine(error=ServiceUnavailable("database", "locked"))
    conn = connection(failing)
    assert await conn.decide(first) == TEMPFAIL_ACTION
    failing.error, failing.refusal = None, None
    assert await conn.decide(second) == DUNNO
    assert len(failing.calls) == 2


# ---------------------------------------------------------------- the connection loop


class MemoryWriter:
    """A StreamWriter stand-in that records what is written."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data.extend(data)

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


async def serve(engine: ScriptedEngine, *chunks: bytes) -> MemoryWriter:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    writer = MemoryWriter()
    await connection(engine).serve(reader, writer)  # type: ignore[arg-type]
    assert writer.closed
    return writer


async def test_many_requests_on_one_connection_are_answered_in_order() -> None:
    engine = ScriptedEngine(refusal=REFUSAL)
    other = SUBMISSION_RCPT.replace(b"instance=7a1.6741e3c2.2c3d6.0", b"instance=x")
    writer = await serve(engine, INBOUND_RCPT + SUBMISSION_RCPT[:100], SUBMISSION_RCPT[100:] + other)
    assert bytes(writer.data) == (
        b"action=DUNNO\n\n"
        + format_reply(f"554 5.7.1 {REFUSAL.text}") * 2
    )


async def test_a_malformed_request_closes_the_connection_without_an_answer() -> None:
    writer = await serve(ScriptedEngine(), INBOUND_RCPT + b"request=smtpd_access_policy\nnonsense\n\n" + INBOUND_RCPT)
    assert bytes(writer.data) == b"action=DUNNO\n\n"


async def test_an_oversized_request_closes_the_connection() -> None:
    huge = b"ccert_subject=" + b"x" * MAX_REQUEST_BYTES + b"\n\n"
    writer = await serve(ScriptedEngine(), huge + INBOUND_RCPT)
    assert bytes(writer.data) == b""
    endless = b"ccert_subject=" + b"x" * (200 * 1024)
    writer = await serve(ScriptedEngine(), endless)
    assert bytes(writer.data) == b""


async def test_a_request_cut_short_by_eof_gets_no_answer() -> None:
    writer = await serve(ScriptedEngine(), INBOUND_RCPT + SUBMISSION_RCPT[:50])
    assert bytes(writer.data) == b"action=DUNNO\n\n"
