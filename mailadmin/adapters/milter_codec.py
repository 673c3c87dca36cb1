"""The milter wire protocol, version 6 (SPEC §10; Sendmail's libmilter
``mfdef.h``/``mfapi.h`` and the protocol notes shipped with it).

Why our own codec: no maintained asyncio milter library exists.  pymilter
and python-libmilter are GPL and thread-per-connection; purepythonmilter is
a single unmaintained alpha whose server cancels every task of the loop on
SIGTERM; kilter cannot send a custom reply text (COMPONENTS.md §3).  The
protocol itself is small, so it lives here, typed and tested, and the
adapter (:mod:`mailadmin.adapters.milter`) owns the state machine.

Wire format: every packet is a 4-byte big-endian length, then one command
byte, then ``length - 1`` bytes of data.  Strings are NUL-terminated.

- MTA → milter: :class:`OptNeg` (``O``: version, actions, protocol flags),
  :class:`Macros` (``D``: the command they belong to, then name/value
  pairs), :class:`Connect` (``C``), :class:`Helo` (``H``), :class:`Mail`
  (``M``), :class:`Rcpt` (``R``), :class:`Data` (``T``), :class:`Header`
  (``L``), :class:`EndOfHeaders` (``N``), :class:`Body` (``B``),
  :class:`EndOfMessage` (``E``), :class:`Abort` (``A``), :class:`Quit`
  (``Q``), :class:`QuitNewConnection` (``K``), :class:`Unknown` (``U``).
- milter → MTA: :class:`OptNegReply` (with optional per-stage macro
  lists), the verdicts :class:`Continue`, :class:`Accept`, :class:`Reject`,
  :class:`Tempfail`, :class:`Discard`, :class:`Skip`, :class:`ReplyCode`,
  and the end-of-message changes :class:`AddHeader`, :class:`ChangeHeader`
  (an empty value deletes), :class:`InsertHeader`, :class:`AddRcpt`,
  :class:`DelRcpt`, :class:`Quarantine` and :class:`Progress`.

Both directions are encoded and decoded, so tests (and the end-to-end
tier) can play the MTA with the same code.  :class:`FrameDecoder` splits a
byte stream into packets and refuses a length of 0 or above
:data:`MAX_FRAME_BYTES`; any malformed packet raises
:class:`~mailadmin.errors.ProtocolViolation`, after which the connection
cannot be resynchronised and is closed.

"No reply" flags (``SMFIP_NR_*``): the milter may tell the MTA not to wait
for an answer to an event.  Fewer round trips, but over TCP the MTA then
writes small packets back to back, which meets Nagle's algorithm on its side
and a delayed ACK on ours (a 40 ms stall per message, bench-harness
README); the adapter sets ``TCP_QUICKACK`` after each read to avoid it.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from mailadmin.errors import ProtocolViolation

PROTOCOL_VERSION = 6
# The oldest version with the option negotiation we rely on.
MIN_PROTOCOL_VERSION = 2
# Body chunks are at most 64 KiB unless SMFIP_MDS_256K/1M is negotiated
# (which we never ask for); 1 MiB leaves room and still bounds memory.
MAX_FRAME_BYTES = 1024 * 1024 + 1024
_LENGTH = struct.Struct(">I")
_U32x3 = struct.Struct(">III")


class Action(enum.IntFlag):
    """What the milter may do at end of message (``SMFIF_*``)."""

    ADDHDRS = 0x01
    CHGBODY = 0x02
    ADDRCPT = 0x04
    DELRCPT = 0x08
    CHGHDRS = 0x10
    QUARANTINE = 0x20
    CHGFROM = 0x40
    ADDRCPT_PAR = 0x80
    SETSYMLIST = 0x100


class Proto(enum.IntFlag):
    """Events the MTA leaves out (``SMFIP_NO*``) or sends without waiting
    for a reply (``SMFIP_NR_*``), and protocol options (``SMFIP_*``)."""

    NOCONNECT = 0x01
    NOHELO = 0x02
    NOMAIL = 0x04
    NORCPT = 0x08
    NOBODY = 0x10
    NOHDRS = 0x20
    NOEOH = 0x40
    NR_HDR = 0x80
    NOUNKNOWN = 0x100
    NODATA = 0x200
    SKIP = 0x400
    RCPT_REJ = 0x800
    NR_CONN = 0x1000
    NR_HELO = 0x2000
    NR_MAIL = 0x4000
    NR_RCPT = 0x8000
    NR_DATA = 0x10000
    NR_UNKN = 0x20000
    NR_EOH = 0x40000
    NR_BODY = 0x80000
    HDR_LEADSPC = 0x100000
    MDS_256K = 0x10000000
    MDS_1M = 0x20000000


class MacroStage(enum.IntEnum):
    """Where a macro list requested in the negotiation reply applies (``SMFIM_*``)."""

    CONNECT = 0
    HELO = 1
    ENVFROM = 2
    ENVRCPT = 3
    DATA = 4
    EOM = 5
    EOH = 6


# ---------------------------------------------------------------- MTA → milter


@dataclass(frozen=True, slots=True)
class OptNeg:
    version: int
    actions: Action
    protocol: Proto


@dataclass(frozen=True, slots=True)
class Macros:
    """Macro values sent before the command ``stage`` (a command byte, e.g. ``b"M"``)."""

    stage: bytes
    values: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Connect:
    hostname: str
    family: str  # "4", "6", "L" (unix), "U" (unknown)
    port: int
    address: str


@dataclass(frozen=True, slots=True)
class Helo:
    name: str


@dataclass(frozen=True, slots=True)
class Mail:
    """``args[0]`` is the address as given (``<a@b>``), the rest ESMTP parameters."""

    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Rcpt:
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Data:
    pass


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class EndOfHeaders:
    pass


@dataclass(frozen=True, slots=True)
class Body:
    chunk: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    # libmilter allows a last body chunk here; Postfix never sends one.
    chunk: bytes = b""


@dataclass(frozen=True, slots=True)
class Abort:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    pass


@dataclass(frozen=True, slots=True)
class QuitNewConnection:
    pass


@dataclass(frozen=True, slots=True)
class Unknown:
    command: str


Command = (OptNeg | Macros | Connect | Helo | Mail | Rcpt | Data | Header | EndOfHeaders | Body
           | EndOfMessage | Abort | Quit | QuitNewConnection | Unknown)

# ---------------------------------------------------------------- milter → MTA


@dataclass(frozen=True, slots=True)
class OptNegReply:
    version: int
    actions: Action
    protocol: Proto
    macros: Mapping[MacroStage, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Continue:
    pass


@dataclass(frozen=True, slots=True)
class Accept:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    pass


@dataclass(frozen=True, slots=True)
class Tempfail:
    pass


@dataclass(frozen=True, slots=True)
class Discard:
    pass


@dataclass(frozen=True, slots=True)
class Skip:
    pass


@dataclass(frozen=True, slots=True)
class Progress:
    pass


@dataclass(frozen=True, slots=True)
class ReplyCode:
    code: int
    status: str
    text: str


@dataclass(frozen=True, slots=True)
class AddHeader:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class ChangeHeader:
    """Set the ``index``-th (1-based) field called ``name``; ``value=""`` deletes it."""

    index: int
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class InsertHeader:
    """Insert a field before position ``index`` (0 = at the top)."""

    index: int
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class AddRcpt:
    rcpt: str


@dataclass(frozen=True, slots=True)
class DelRcpt:
    rcpt: str


@dataclass(frozen=True, slots=True)
class Quarantine:
    reason: str


Response = (OptNegReply | Continue | Accept | Reject | Tempfail | Discard | Skip | Progress
            | ReplyCode | AddHeader | ChangeHeader | InsertHeader | AddRcpt | DelRcpt | Quarantine)

_SIMPLE_COMMANDS: dict[bytes, Command] = {
    b"T": Data(), b"N": EndOfHeaders(), b"A": Abort(), b"Q": Quit(), b"K": QuitNewConnection(),
}
_SIMPLE_RESPONSES: dict[bytes, Response] = {
    b"c": Continue(), b"a": Accept(), b"r": Reject(), b"t": Tempfail(), b"d": Discard(), b"s": Skip(),
    b"p": Progress(),
}
_SIMPLE_RESPONSE_CODES: dict[type, bytes] = {type(kind): code for code, kind in _SIMPLE_RESPONSES.items()}
_SIMPLE_COMMAND_CODES: dict[type, bytes] = {type(kind): code for code, kind in _SIMPLE_COMMANDS.items()}

# ---------------------------------------------------------------- strings and frames


def _text(value: str) -> bytes:
    data = value.encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise ValueError(f"NUL in a milter string: {value!r}")
    return data + b"\0"


def _strings(data: bytes, what: str) -> list[str]:
    """NUL-terminated strings; the data must end with a NUL."""
    if not data.endswith(b"\0"):
        raise ProtocolViolation(f"milter {what}: string not NUL-terminated")
    return [s.decode("utf-8", "surrogateescape") for s in data[:-1].split(b"\0")]


def _exact(data: bytes, count: int, what: str) -> list[str]:
    parts = _strings(data, what)
    if len(parts) != count:
        raise ProtocolViolation(f"milter {what}: expected {count} strings, got {len(parts)}")
    return parts


def frame(code: bytes, data: bytes = b"") -> bytes:
    """One packet: length, command byte, data."""
    return _LENGTH.pack(len(data) + 1) + code + data


class FrameDecoder:
    """Splits a byte stream into ``(command byte, data)`` packets.

    Bytes may arrive in any pieces; :meth:`feed` returns the packets
    completed so far and keeps the rest.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        buffer = self._buffer
        buffer += data
        out: list[tuple[bytes, bytes]] = []
        start, size = 0, len(buffer)
        while size - start >= 4:
            (length,) = _LENGTH.unpack_from(buffer, start)
            check_length(length, self._max)
            end = start + 4 + length
            if end > size:
                break
            out.append((bytes(buffer[start + 4:start + 5]), bytes(buffer[start + 5:end])))
            start = end
        # One cut per read, not per packet: Postfix writes many packets at a time.
        del buffer[:start]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete packet (non-zero at EOF means a cut-off packet)."""
        return len(self._buffer)


def check_length(length: int, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
    if length == 0:
        raise ProtocolViolation("milter packet of length 0 (no command byte)")
    if length > max_frame_bytes:
        raise ProtocolViolation(f"milter packet of {length} bytes (limit {max_frame_bytes})")


def parse_length(header: bytes, max_frame_bytes: int = MAX_FRAME_BYTES) -> int:
    """The packet length from its 4-byte prefix, checked."""
    length: int = _LENGTH.unpack(header)[0]
    check_length(length, max_frame_bytes)
    return length


# ---------------------------------------------------------------- commands


def decode_command(code: bytes, data: bytes) -> Command:
    """One MTA → milter packet."""
    if code == b"L":  # one packet per header field: the most frequent by far
        name, sep, value = data.partition(b"\0")
        if not sep or not value.endswith(b"\0") or b"\0" in value[:-1]:
            raise ProtocolViolation("milter header: expected 2 strings")
        return Header(name.decode("utf-8", "surrogateescape"), value[:-1].decode("utf-8", "surrogateescape"))
    simple = _SIMPLE_COMMANDS.get(code)
    if simple is not None:
        return simple
    if code == b"O":
        if len(data) < 12:
            raise ProtocolViolation(f"milter option negotiation of {len(data)} bytes")
        version, actions, protocol = _U32x3.unpack_from(data)
        return OptNeg(version, Action(actions), Proto(protocol))
    if code == b"D":
        if not data:
            raise ProtocolViolation("milter macro packet without its command")
        parts = _strings(data[1:], "macros") if len(data) > 1 else []
        if len(parts) % 2:
            raise ProtocolViolation("milter macros: a name without a value")
        return Macros(data[:1], dict(zip(parts[::2], parts[1::2])))
    if code == b"C":
        hostname, sep, rest = data.partition(b"\0")
        if not sep or not rest:
            raise ProtocolViolation("milter connect: no family")
        family = rest[:1].decode("ascii", "replace")
        if family == "U":
            return Connect(hostname.decode("utf-8", "surrogateescape"), family, 0, "")
        if len(rest) < 3:
            raise ProtocolViolation("milter connect: no port")
        (port,) = struct.unpack(">H", rest[1:3])
        (address,) = _exact(rest[3:], 1, "connect address")
        return Connect(hostname.decode("utf-8", "surrogateescape"), family, port, address)
    if code == b"H":
        return Helo(_exact(data, 1, "helo")[0])
    if code in (b"M", b"R"):
        args = tuple(_strings(data, "envelope"))
        if not args[0]:
            # The null sender is "<>"; an empty first argument is not an address.
            raise ProtocolViolation("milter envelope command without an address")
        return Mail(args) if code == b"M" else Rcpt(args)
    if code == b"B":
        return Body(data)
    if code == b"E":
        return EndOfMessage(data)
    if code == b"U":
        return Unknown(_exact(data, 1, "unknown command")[0])
    raise ProtocolViolation(f"unknown milter command {code!r}")


def encode_command(command: Command) -> bytes:
    """One MTA → milter packet (the MTA side: tests and tools)."""
    simple = _SIMPLE_COMMAND_CODES.get(type(command))
    if simple is not None:
        return frame(simple)
    match command:
        case OptNeg(version, actions, protocol):
            return frame(b"O", _U32x3.pack(version, int(actions), int(protocol)))
        case Macros(stage, values):
            return frame(b"D", stage + b"".join(_text(k) + _text(v) for k, v in values.items()))
        case Connect(hostname, family, port, address):
            if family == "U":
                return frame(b"C", _text(hostname) + b"U")
            return frame(b"C", _text(hostname) + family.encode("ascii") + struct.pack(">H", port) + _text(address))
        case Helo(name):
            return frame(b"H", _text(name))
        case Mail(args):
            return frame(b"M", b"".join(_text(a) for a in args))
        case Rcpt(args):
            return frame(b"R", b"".join(_text(a) for a in args))
        case Header(name, value):
            return frame(b"L", _text(name) + _text(value))
        case Body(chunk):
            return frame(b"B", chunk)
        case EndOfMessage(chunk):
            return frame(b"E", chunk)
        case Unknown(text):
            return frame(b"U", _text(text))
    raise TypeError(f"not a milter command: {command!r}")


# ---------------------------------------------------------------- responses


def encode_response(response: Response) -> bytes:
    """One milter → MTA packet."""
    simple = _SIMPLE_RESPONSE_CODES.get(type(response))
    if simple is not None:
        return frame(simple)
    match response:
        case OptNegReply(version, actions, protocol, macros):
            lists = b"".join(struct.pack(">I", int(stage)) + _text(names) for stage, names in macros.items())
            return frame(b"O", _U32x3.pack(version, int(actions), int(protocol)) + lists)
        case ReplyCode(code, status, text):
            return frame(b"y", _text(format_reply(code, status, text)))
        case AddHeader(name, value):
            return frame(b"h", _text(name) + _text(value))
        case ChangeHeader(index, name, value):
            return frame(b"m", struct.pack(">I", index) + _text(name) + _text(value))
        case InsertHeader(index, name, value):
            return frame(b"i", struct.pack(">I", index) + _text(name) + _text(value))
        case AddRcpt(rcpt):
            return frame(b"+", _text(rcpt))
        case DelRcpt(rcpt):
            return frame(b"-", _text(rcpt))
        case Quarantine(reason):
            return frame(b"q", _text(reason))
    raise TypeError(f"not a milter response: {response!r}")


def format_reply(code: int, status: str, text: str) -> str:
    """``"554 5.7.1 text"`` on one line.  A line break would be read as a
    multi-line reply; ``%`` is doubled because libmilter-style MTAs run the
    text through a format string."""
    if not (400 <= code <= 599):
        raise ValueError(f"a milter reply code must be 4xx or 5xx: {code}")
    one_line = " ".join(text.split()).replace("%", "%%")
    return f"{code} {status} {one_line}".rstrip()


def decode_response(code: bytes, data: bytes) -> Response:
    """One milter → MTA packet (the MTA side: tests and tools)."""
    simple = _SIMPLE_RESPONSES.get(code)
    if simple is not None:
        return simple
    if code == b"O":
        if len(data) < 12:
            raise ProtocolViolation(f"milter option negotiation reply of {len(data)} bytes")
        version, actions, protocol = _U32x3.unpack_from(data)
        macros: dict[MacroStage, str] = {}
        rest = data[12:]
        while rest:
            if len(rest) < 5:
                raise ProtocolViolation("milter macro list cut short")
            (stage,) = struct.unpack_from(">I", rest)
            names, sep, rest = rest[4:].partition(b"\0")
            if not sep:
                raise ProtocolViolation("milter macro list not NUL-terminated")
            macros[MacroStage(stage)] = names.decode("ascii", "replace")
        return OptNegReply(version, Action(actions), Proto(protocol), macros)
    if code == b"y":
        (line,) = _exact(data, 1, "reply code")
        number, _, after = line.partition(" ")
        status, _, text = after.partition(" ")
        if not number.isdigit():
            raise ProtocolViolation(f"milter reply code without a number: {line!r}")
        return ReplyCode(int(number), status, text.replace("%%", "%"))
    if code in (b"h", b"+", b"-", b"q"):
        parts = _strings(data, "change")
        if code == b"h":
            if len(parts) != 2:
                raise ProtocolViolation("milter add header: expected name and value")
            return AddHeader(parts[0], parts[1])
        if len(parts) != 1:
            raise ProtocolViolation("milter change: expected one string")
        if code == b"+":
            return AddRcpt(parts[0])
        return DelRcpt(parts[0]) if code == b"-" else Quarantine(parts[0])
    if code in (b"m", b"i"):
        if len(data) < 4:
            raise ProtocolViolation("milter header change without an index")
        (index,) = struct.unpack_from(">I", data)
        name, value = _exact(data[4:], 2, "header change")
        return ChangeHeader(index, name, value) if code == b"m" else InsertHeader(index, name, value)
    raise ProtocolViolation(f"unknown milter response {code!r}")


def iter_frames(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every packet in ``data``, which must hold whole packets only."""
    decoder = FrameDecoder()
    yield from decoder.feed(data)
    if decoder.pending:
        raise ProtocolViolation(f"milter stream ends inside a packet ({decoder.pending} bytes left)")
