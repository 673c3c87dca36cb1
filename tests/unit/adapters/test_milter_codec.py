"""The milter protocol v6 codec without sockets: every command and response
round-trips, packets arrive in any pieces, negotiation offers only what was
offered, and malformed input is a ProtocolViolation."""

from __future__ import annotations

import struct

import pytest

from mailadmin.adapters import milter_codec as mc
from mailadmin.adapters.milter import NO_REPLY, SKIPPED_EVENTS, WANTED_ACTIONS, negotiate
from mailadmin.errors import ProtocolViolation

ALL_ACTIONS = mc.Action(0x1FF)
# What Postfix 3.7 offers with milter_protocol = 6: every event and NR flag
# (strace of the SMFIC_OPTNEG it writes: version 6, actions 0x3f, protocol 0x1fffff).
POSTFIX_OFFER = mc.OptNeg(6, mc.Action(0x3F), mc.Proto(0x1FFFFF))

COMMANDS: list[mc.Command] = [
    mc.OptNeg(6, ALL_ACTIONS, mc.Proto.NR_HDR | mc.Proto.NOEOH),
    mc.Macros(b"C", {"j": "mx.example.jp", "{daemon_name}": "mx"}),
    mc.Macros(b"M", {"i": "4Xyz1", "{auth_authen}": "taro@example.jp", "{auth_type}": ""}),
    mc.Macros(b"E", {}),
    mc.Connect("client.example.org", "4", 51234, "192.0.2.1"),
    mc.Connect("v6.example.org", "6", 25, "2001:db8::1"),
    mc.Connect("localhost", "L", 0, "/run/smtp.sock"),
    mc.Connect("unknown", "U", 0, ""),
    mc.Helo("client.example.org"),
    mc.Mail(("<alice@example.org>", "SIZE=1000", "BODY=8BITMIME")),
    mc.Mail(("<>",)),
    mc.Rcpt(("<taro@example.jp>",)),
    mc.Rcpt(("<太郎@例え.jp>", "ORCPT=rfc822;x@example.jp")),
    mc.Data(),
    mc.Header("Subject", "hello\n\tfolded"),
    mc.Header("X-Raw", "caf\udce9"),  # an undecodable 8-bit byte survives
    mc.Header("X-Empty", ""),
    mc.EndOfHeaders(),
    mc.Body(b"line 1\r\nline 2\r\n"),
    mc.Body(b""),
    mc.EndOfMessage(),
    mc.EndOfMessage(b"last chunk\r\n"),
    mc.Abort(),
    mc.Quit(),
    mc.QuitNewConnection(),
    mc.Unknown("XFOO bar"),
]

RESPONSES: list[mc.Response] = [
    mc.OptNegReply(6, WANTED_ACTIONS, NO_REPLY | SKIPPED_EVENTS),
    mc.OptNegReply(6, mc.Action.SETSYMLIST, mc.Proto(0),
                   {mc.MacroStage.ENVFROM: "{auth_authen} i", mc.MacroStage.EOM: "i"}),
    mc.Continue(), mc.Accept(), mc.Reject(), mc.Tempfail(), mc.Discard(), mc.Skip(), mc.Progress(),
    mc.ReplyCode(554, "5.7.1", "Sending from abroad is restricted: unlock it at https://mail.example.jp/"),
    mc.ReplyCode(451, "4.7.1", "100% sure, try again"),
    mc.AddHeader("X-Mailadmin-Not-Scanned", "clamd unavailable"),
    mc.ChangeHeader(1, "Subject", "[spam] hello"),
    mc.ChangeHeader(2, "X-Spam-Level", ""),
    mc.InsertHeader(0, "X-Spam-Status", "Yes, score=12.0 required=5.0 tests=A,\n\tB"),
    mc.AddRcpt("<new@example.jp>"),
    mc.DelRcpt("<taro@example.jp>"),
    mc.Quarantine("held for review"),
]


def frames_of(data: bytes) -> list[tuple[bytes, bytes]]:
    return list(mc.iter_frames(data))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_round_trips(command: mc.Command) -> None:
    wire = mc.encode_command(command)
    (length,) = struct.unpack(">I", wire[:4])
    assert length == len(wire) - 4
    [(code, data)] = frames_of(wire)
    assert mc.decode_command(code, data) == command


@pytest.mark.parametrize("response", RESPONSES, ids=lambda r: type(r).__name__)
def test_every_response_round_trips(response: mc.Response) -> None:
    [(code, data)] = frames_of(mc.encode_response(response))
    assert mc.decode_response(code, data) == response


def test_wire_bytes_match_the_libmilter_layout() -> None:
    assert mc.encode_response(mc.Continue()) == b"\x00\x00\x00\x01c"
    assert mc.encode_response(mc.DelRcpt("<a@b>")) == b"\x00\x00\x00\x07-<a@b>\x00"
    assert mc.encode_response(mc.ChangeHeader(1, "Subject", "x")) == (
        b"\x00\x00\x00\x0fm\x00\x00\x00\x01Subject\x00x\x00")
    assert mc.encode_command(mc.Connect("h", "4", 25, "1.2.3.4")) == (
        b"\x00\x00\x00\x0eCh\x004\x00\x191.2.3.4\x00")
    assert mc.encode_response(mc.OptNegReply(6, mc.Action(0x19), mc.Proto(0x1000))) == (
        b"\x00\x00\x00\x0dO\x00\x00\x00\x06\x00\x00\x00\x19\x00\x00\x10\x00")
    assert mc.encode_response(mc.ReplyCode(554, "5.7.1", "50% off\r\nnow")) == (
        b"\x00\x00\x00\x18y554 5.7.1 50%% off now\x00")


def test_macros_as_postfix_sends_them() -> None:
    data = b"M" + b"i\x004Xyz1\x00{auth_authen}\x00taro@example.jp\x00{mail_addr}\x00a@b\x00"
    macros = mc.decode_command(b"D", data)
    assert macros == mc.Macros(b"M", {"i": "4Xyz1", "{auth_authen}": "taro@example.jp", "{mail_addr}": "a@b"})
    assert mc.decode_command(b"D", b"C") == mc.Macros(b"C", {})


def test_frames_split_across_reads_and_joined_in_one() -> None:
    stream = b"".join(mc.encode_command(c) for c in COMMANDS)
    for piece_size in (1, 3, 7, 64, len(stream)):
        decoder = mc.FrameDecoder()
        got: list[mc.Command] = []
        for start in range(0, len(stream), piece_size):
            got += [mc.decode_command(code, data) for code, data in decoder.feed(stream[start:start + piece_size])]
        assert got == COMMANDS, piece_size
        assert decoder.pending == 0


def test_a_partial_frame_waits_for_the_rest() -> None:
    wire = mc.encode_command(mc.Header("Subject", "hello"))
    decoder = mc.FrameDecoder()
    assert decoder.feed(wire[:2]) == []
    assert decoder.feed(wire[2:9]) == []
    assert decoder.pending == 9
    assert decoder.feed(wire[9:]) == [(b"L", b"Subject\x00hello\x00")]
    with pytest.raises(ProtocolViolation, match="inside a packet"):
        frames_of(wire[:-1])


@pytest.mark.parametrize("length", [0, mc.MAX_FRAME_BYTES + 1, 0xFFFFFFFF])
def test_bad_lengths_are_refused(length: int) -> None:
    header = struct.pack(">I", length)
    with pytest.raises(ProtocolViolation):
        mc.FrameDecoder().feed(header + b"L")
    with pytest.raises(ProtocolViolation):
        mc.parse_length(header)


def test_the_largest_allowed_frame_passes() -> None:
    chunk = b"x" * (mc.MAX_FRAME_BYTES - 1)
    assert mc.FrameDecoder().feed(mc.encode_command(mc.Body(chunk))) == [(b"B", chunk)]


@pytest.mark.parametrize(("code", "data"), [
    (b"Z", b""),                              # unknown command
    (b"O", b"\x00\x00\x00\x06"),              # negotiation cut short
    (b"D", b""),                              # macros without their command
    (b"D", b"Mi\x00"),                        # a name without a value
    (b"D", b"Mi\x00x"),                       # value not NUL-terminated
    (b"C", b"host"),                          # no family
    (b"C", b"host\x004\x00"),                 # no port
    (b"C", b"host\x004\x00\x19addr"),         # address not terminated
    (b"H", b"a\x00b\x00"),                    # two strings
    (b"M", b""),                              # no address
    (b"R", b"\x00"),                          # empty address
    (b"L", b"Subject\x00"),                   # header without a value
    (b"L", b"Subject"),                       # not terminated
    (b"U", b"cmd"),
])
def test_malformed_commands_are_protocol_violations(code: bytes, data: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        mc.decode_command(code, data)


@pytest.mark.parametrize(("code", "data"), [
    (b"x", b""), (b"O", b"\x00"), (b"O", b"\x00" * 12 + b"\x00\x00"), (b"y", b"hello\x00"),
    (b"h", b"name\x00"), (b"m", b"\x00\x00"), (b"i", b"\x00\x00\x00\x00name\x00"), (b"-", b"a\x00b\x00"),
])
def test_malformed_responses_are_protocol_violations(code: bytes, data: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        mc.decode_response(code, data)


def test_strings_with_nul_and_bad_reply_codes_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError):
        mc.encode_response(mc.AddHeader("X-A", "a\0b"))
    with pytest.raises(ValueError):
        mc.encode_response(mc.ReplyCode(250, "2.0.0", "ok"))


def test_negotiation_with_postfix_asks_only_what_is_used() -> None:
    reply = negotiate(POSTFIX_OFFER)
    assert reply.version == 6
    assert reply.actions == mc.Action.ADDHDRS | mc.Action.CHGHDRS | mc.Action.DELRCPT
    for skipped in (mc.Proto.NODATA, mc.Proto.NOEOH, mc.Proto.NOUNKNOWN):
        assert reply.protocol & skipped
    for no_reply in (mc.Proto.NR_CONN, mc.Proto.NR_HELO, mc.Proto.NR_RCPT, mc.Proto.NR_HDR, mc.Proto.NR_BODY):
        assert reply.protocol & no_reply
    # MAIL is answered (the submission check) and every event we read is sent.
    for needed in (mc.Proto.NR_MAIL, mc.Proto.NOCONNECT, mc.Proto.NOHELO, mc.Proto.NOMAIL,
                   mc.Proto.NORCPT, mc.Proto.NOHDRS, mc.Proto.NOBODY, mc.Proto.SKIP):
        assert not reply.protocol & needed
    assert reply.macros == {}


def test_negotiation_never_claims_what_was_not_offered() -> None:
    # A version 2 MTA: no NR flags, no NODATA/NOUNKNOWN, only some actions.
    old = mc.OptNeg(2, mc.Action.ADDHDRS | mc.Action.DELRCPT, mc.Proto(0x7F))
    reply = negotiate(old)
    assert reply.version == 2
    assert reply.actions == mc.Action.ADDHDRS | mc.Action.DELRCPT
    assert reply.protocol == mc.Proto.NOEOH
    newer = negotiate(mc.OptNeg(7, ALL_ACTIONS, mc.Proto(0)))
    assert newer.version == mc.PROTOCOL_VERSION and newer.protocol == mc.Proto(0)
    with pytest.raises(ProtocolViolation):
        negotiate(mc.OptNeg(1, ALL_ACTIONS, mc.Proto(0x7F)))
