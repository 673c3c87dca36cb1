"""The milter adapter: Postfix's ``smtpd_milters`` ↔ the engine (SPEC §10).

One asyncio task per MTA connection; one connection carries many messages
(state is reset at ABORT and after end of message).  The protocol itself is
in :mod:`mailadmin.adapters.milter_codec`.

What is negotiated: the events we read (connect, HELO, MAIL, RCPT, headers,
body, end of message), without DATA, end-of-headers and unknown commands,
and "no reply" for every event except MAIL and end of message; the actions
add/change header and delete recipient.  Over TCP, ``TCP_QUICKACK`` is set
after each read: with "no reply" the MTA writes packets back to back, and a
delayed ACK of ours would hold its next packet behind Nagle for 40 ms.

- MAIL of an authenticated submission (``{auth_authen}`` set): the overseas
  check alone (:meth:`Engine.check_submission`); a refusal is the engine's
  ``554 5.7.1`` reply, which says how to unlock sending.
- End of message: the message is rebuilt as the MTA will deliver it
  (headers, blank line, body; CRLF) and decided.  A temporary failure of any
  recipient answers ``451 4.7.1`` for the message; a refusal ``554``.
  Otherwise one content group stays in the MTA's transaction — the group
  with no content changes if there is one, else the largest — and its
  changes become header actions (computed by rendering the copy with
  :func:`mailadmin.mailtext.rewrite.render_copy` and comparing header fields,
  so the kept copy is byte-for-byte the re-injected copy's twin).  Every
  other recipient is deleted from the transaction; the other groups are
  re-injected through the outbox by ``runtime.apply``, which also writes
  quarantine rows, forwards, auto-replies and virus reports.  ``apply`` runs
  before any answer; if it fails the message is tempfailed, never accepted.
  When no recipient keeps a copy the answer is DISCARD (no bounce).
- Anything unexpected: logged with the queue id, and the message is
  tempfailed.  A malformed packet closes the connection (the MTA applies its
  ``milter_default_action``).

Shutdown: each connection is registered with the
:class:`~mailadmin.listeners.ConnectionTracker` given to :func:`start_milter`
as a message connection.  Once the stop begins (``server.close()``, or the
tracker's ``drain``) idle connections (between messages) are closed, and a
connection in the middle of a message is closed as soon as that message is
answered, so the tracker sees them end promptly.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailadmin import metrics
from mailadmin.adapters import milter_codec as mc
from mailadmin.engine.decide import ContentGroup, Decision
from mailadmin.engine.limits import MessageMeter, check_message
from mailadmin.engine.replies import SmtpReply, limit_reply
from mailadmin.config.model import LimitsConf
from mailadmin.errors import MessageLimitExceeded, ProtocolViolation
from mailadmin.listeners import ConnectionTracker, start_stream_server
from mailadmin.mailtext.rewrite import FieldInsert, header_edits, render_copy
from mailadmin.message import Envelope, Message

if TYPE_CHECKING:
    from mailadmin.engine.protocol import DecisionService

log = logging.getLogger(__name__)

WANTED_ACTIONS = mc.Action.ADDHDRS | mc.Action.CHGHDRS | mc.Action.DELRCPT
# Events we never look at.
SKIPPED_EVENTS = mc.Proto.NODATA | mc.Proto.NOEOH | mc.Proto.NOUNKNOWN
# Events answered without a reply: everything but MAIL (the submission check
# may refuse it) and end of message.
NO_REPLY = (mc.Proto.NR_CONN | mc.Proto.NR_HELO | mc.Proto.NR_RCPT | mc.Proto.NR_HDR
            | mc.Proto.NR_BODY | mc.Proto.NR_DATA | mc.Proto.NR_EOH | mc.Proto.NR_UNKN)

_NO_REPLY_BIT: dict[type, mc.Proto] = {
    mc.Connect: mc.Proto.NR_CONN, mc.Helo: mc.Proto.NR_HELO, mc.Mail: mc.Proto.NR_MAIL,
    mc.Rcpt: mc.Proto.NR_RCPT, mc.Data: mc.Proto.NR_DATA, mc.Header: mc.Proto.NR_HDR,
    mc.EndOfHeaders: mc.Proto.NR_EOH, mc.Body: mc.Proto.NR_BODY, mc.Unknown: mc.Proto.NR_UNKN,
}
# The commands answered under each negotiated protocol (one or two in practice).
_REPLIED: dict[int, frozenset[type]] = {}
# Macros sent with these commands belong to one message and go with it.
_MESSAGE_STAGES = frozenset({b"M", b"R", b"T", b"L", b"N", b"B", b"E"})


def negotiate(offer: mc.OptNeg) -> mc.OptNegReply:
    """Our answer to the MTA's offer: only what it offered, only what we use."""
    if offer.version < mc.MIN_PROTOCOL_VERSION:
        raise ProtocolViolation(f"milter protocol version {offer.version} is too old")
    actions = WANTED_ACTIONS & offer.actions
    if actions != WANTED_ACTIONS:
        log.warning("the MTA does not offer milter actions %s; recipients or headers can't be changed",
                    WANTED_ACTIONS & ~offer.actions)
    protocol = (SKIPPED_EVENTS | NO_REPLY) & offer.protocol
    return mc.OptNegReply(min(offer.version, mc.PROTOCOL_VERSION), actions, protocol)


def strip_address(arg: str) -> str:
    """``<a@b>`` → ``a@b``; ``<>`` → ``""``."""
    address = arg.strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return address.strip()


# ---------------------------------------------------------------- header edits


def header_actions(original: bytes, target: bytes) -> list[mc.Response]:
    """Milter header actions that turn ``original``'s header into ``target``'s:
    :func:`~mailadmin.mailtext.rewrite.header_edits` in the codec's terms
    (CHGHEADER with the 1-based index, an empty value deleting; INSHEADER at 0)."""
    return [mc.InsertHeader(0, e.name, e.value) if isinstance(e, FieldInsert)
            else mc.ChangeHeader(e.index, e.name, e.value or "")
            for e in header_edits(original, target)]


# ---------------------------------------------------------------- decisions → actions


@dataclass(frozen=True, slots=True)
class EomPlan:
    """What end of message does: the kept group (or none), the groups to
    re-inject, and the actions for the MTA (the final verdict last)."""

    kept: ContentGroup | None
    reinject: tuple[ContentGroup, ...]
    actions: tuple[mc.Response, ...]


def choose_kept(groups: Sequence[ContentGroup]) -> ContentGroup | None:
    """The group with no content changes if any, else the largest (first on a tie)."""
    for group in groups:
        if not group.changes:
            return group
    best: ContentGroup | None = None
    for group in groups:
        if best is None or len(group.recipients) > len(best.recipients):
            best = group
    return best


def reply_action(reply: SmtpReply) -> mc.ReplyCode:
    return mc.ReplyCode(reply.code, reply.status, reply.text)


def plan_eom(decision: Decision, raw: bytes, rcpt_args: Sequence[str]) -> EomPlan:
    """The MTA actions for ``decision``; ``rcpt_args`` are the recipients as
    the MTA sent them (DELRCPT must name them the same way)."""
    tempfail = decision.tempfail
    if tempfail is not None:
        return EomPlan(None, (), (reply_action(tempfail),))
    rejected = decision.rejected
    if rejected is not None:
        return EomPlan(None, (), (reply_action(rejected),))
    groups = decision.content_groups()
    kept = choose_kept(groups)
    reinject = tuple(g for g in groups if g is not kept)
    if kept is None:
        return EomPlan(None, reinject, (mc.Discard(),))
    keep = {r.lower() for r in kept.recipients}
    actions: list[mc.Response] = []
    for arg in dict.fromkeys(rcpt_args):
        if strip_address(arg).lower() not in keep:
            actions.append(mc.DelRcpt(arg))
    if kept.changes:
        actions.extend(header_actions(raw, render_copy(raw, kept.changes)))
    actions.append(mc.Accept())
    return EomPlan(kept, reinject, tuple(actions))


# ---------------------------------------------------------------- one connection


@dataclass
class _Transaction:
    mail_args: tuple[str, ...] = ()
    rcpt_args: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    failed: bool = False
    # Replaced at MAIL by one with the configured limits.
    meter: MessageMeter = field(default_factory=lambda: MessageMeter(LimitsConf()))

    @property
    def open(self) -> bool:
        return bool(self.mail_args)


class MilterSession:
    """The protocol state of one MTA connection, without the socket: each
    command in, the responses to write out (none for a "no reply" event)."""

    def __init__(self, runtime: DecisionService) -> None:
        self._runtime = runtime
        self._set_protocol(mc.Proto(0))
        self._macros: dict[bytes, dict[str, str]] = {}
        self._connect: mc.Connect | None = None
        self._helo: str | None = None
        self._tx = _Transaction()

    @property
    def in_message(self) -> bool:
        return self._tx.open

    def macro(self, name: str) -> str | None:
        """A macro's latest value (``i``, ``auth_authen``: braces optional)."""
        key = name.strip("{}")
        for stage in reversed(self._macros.values()):
            value = stage.get(key)
            if value:
                return value
        return None

    def expects_reply(self, command: mc.Command) -> bool:
        return type(command) in self._replied

    def _set_protocol(self, protocol: mc.Proto) -> None:
        self.protocol = protocol
        replied = _REPLIED.get(int(protocol))
        if replied is None:
            replied = _REPLIED[int(protocol)] = frozenset({mc.OptNeg, mc.EndOfMessage} | {
                kind for kind, bit in _NO_REPLY_BIT.items() if not protocol & bit})
        self._replied = replied

    def envelope(self) -> Envelope:
        connect = self._connect
        address = self.macro("client_addr")
        name = self.macro("client_name")
        if connect is not None and connect.family in ("4", "6"):
            address = connect.address.removeprefix("IPv6:")
            name = connect.hostname or name
        return Envelope(
            mail_from=strip_address(self._tx.mail_args[0]) if self._tx.mail_args else "",
            rcpt_tos=tuple(strip_address(a) for a in self._tx.rcpt_args),
            client_address=address or None,
            client_name=name or None,
            helo=self._helo,
            sasl_username=self.macro("auth_authen"),
            queue_id=self.macro("i"),
        )

    def message_bytes(self) -> bytes:
        """Headers as received with CRLF, the blank line, the body."""
        out = bytearray()
        for name, value in self._tx.headers:
            value_bytes = value.encode("utf-8", "surrogateescape").replace(b"\r\n", b"\n")
            out += name.encode("utf-8", "surrogateescape") + b": " + value_bytes.replace(b"\n", b"\r\n") + b"\r\n"
        out += b"\r\n"
        out += self._tx.body
        return bytes(out)

    def _end_transaction(self) -> None:
        self._tx = _Transaction()
        for stage in [s for s in self._macros if s in _MESSAGE_STAGES]:
            del self._macros[stage]

    async def handle(self, command: mc.Command) -> list[mc.Response]:
        """The responses to ``command``; a failure tempfails the message."""
        # Ending the transaction forgets its macros: keep the queue id for the log.
        queue_id = self.macro("i") if isinstance(command, (mc.EndOfMessage, mc.Mail)) else None
        try:
            return await self._handle(command)
        except ProtocolViolation:
            raise
        except Exception:
            log.exception("milter failure, message tempfailed queue_id=%s", queue_id or self.macro("i") or "-")
            if isinstance(command, (mc.EndOfMessage, mc.Mail)):
                # The MTA's transaction ends with this answer.
                self._end_transaction()
                return [mc.Tempfail()]
            self._tx.failed = True
            return [mc.Tempfail()] if self.expects_reply(command) else []

    async def _handle(self, command: mc.Command) -> list[mc.Response]:
        match command:
            # The most frequent packets first: a match tries its cases in order.
            case mc.Header(name, value):
                # Past a limit nothing more is stored: memory stays bounded.
                if self._tx.meter.header(name, value):
                    self._tx.headers.append((name, value))
            case mc.Macros(stage, values):
                self._macros.pop(stage, None)  # keep the newest stage last
                self._macros[stage] = {k.strip("{}"): v for k, v in values.items()}
                return []
            case mc.OptNeg():
                reply = negotiate(command)
                self._set_protocol(reply.protocol)
                return [reply]
            case mc.Connect():
                self._connect = command
            case mc.Helo(name):
                self._helo = name
            case mc.Mail(args):
                macros = self._macros.get(b"M")
                self._end_transaction()
                if macros is not None:
                    self._macros[b"M"] = macros
                self._tx.mail_args = args
                self._tx.meter = MessageMeter(self._runtime.limits)
                answer = await self._check_submission()
                if answer != mc.Continue():
                    self._end_transaction()  # refused: the MTA drops the transaction
                return [answer]
            case mc.Rcpt(args):
                self._tx.rcpt_args.append(args[0])
            case mc.Body(chunk):
                if self._tx.meter.body(len(chunk)):
                    self._tx.body += chunk
            case mc.EndOfMessage(chunk):
                if self._tx.meter.body(len(chunk)):
                    self._tx.body += chunk
                try:
                    return await self._end_of_message()
                finally:
                    self._end_transaction()
            case mc.Abort():
                self._end_transaction()
                return []
            case mc.QuitNewConnection():
                self._end_transaction()
                self._macros.clear()
                self._connect, self._helo = None, None
                return []
            case mc.Quit():
                return []
        if not self.expects_reply(command):
            return []
        return [mc.Tempfail() if self._tx.failed else mc.Continue()]

    async def _check_submission(self) -> mc.Response:
        envelope = self.envelope()
        if not envelope.sasl_username:
            return mc.Continue()
        refusal = await self._runtime.check_submission(envelope)
        if refusal is None:
            return mc.Continue()
        log.info('milter queue_id=%s outcome=reject reason="overseas" sasl_username=%s client=%s',
                 envelope.queue_id or "-", envelope.sasl_username, envelope.client_address)
        return reply_action(refusal)

    async def _end_of_message(self) -> list[mc.Response]:
        if self._tx.failed:
            return [mc.Tempfail()]
        if not self._tx.open:
            # No MAIL for this message (or it was refused): nothing to decide,
            # and accepting would pass mail nobody checked.
            log.warning("milter end of message without a transaction; tempfailed")
            return [mc.Tempfail()]
        envelope = self.envelope()
        try:
            if self._tx.meter.exceeded is not None:
                raise self._tx.meter.exceeded
            raw = self.message_bytes()
            check_message(raw, self._tx.meter.limits)
        except MessageLimitExceeded as exc:
            # Before queue a refusal is the sender's MTA's to report: no backscatter.
            log.warning("milter refused queue_id=%s: message exceeds %s", envelope.queue_id or "-", exc)
            return [reply_action(limit_reply(exc, after_queue=False))]
        message = Message(raw)
        decision = await self._runtime.decide(envelope, message)
        plan = plan_eom(decision, raw, self._tx.rcpt_args)
        if decision.tempfail is None and decision.rejected is None:
            try:
                await self._runtime.apply(decision, message, reinject=plan.reinject)
            except Exception:
                log.exception("milter: the decision's effects could not be written, message tempfailed "
                              "queue_id=%s", envelope.queue_id or "-")
                return [mc.Tempfail()]
        verdict = plan.actions[-1]
        # The decision line (engine) is the one INFO line per recipient; this adds the MTA's side.
        log.debug("milter queue_id=%s verdict=%s kept=%d reinjected=%d removed=%d",
                 envelope.queue_id or "-", type(verdict).__name__.lower(),
                 len(plan.kept.recipients) if plan.kept else 0,
                 sum(len(g.recipients) for g in plan.reinject),
                 sum(isinstance(a, mc.DelRcpt) for a in plan.actions))
        return list(plan.actions)


def _quickack(sock: socket.socket | None) -> bool:
    return (sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6)
            and hasattr(socket, "TCP_QUICKACK"))


READ_BYTES = 65536
_REPLY_COUNTERS: dict[str, Any] = {}


def _reply_counter(label: str) -> Any:
    counter = _REPLY_COUNTERS.get(label)
    if counter is None:
        counter = _REPLY_COUNTERS[label] = metrics.REPLIES.labels("milter", label)
    return counter


def final_class(response: mc.Response) -> str | None:
    """The metrics label of a response that ends a message or transaction (the
    class of the SMTP code the MTA sends); None for the others (Continue, header
    and recipient changes)."""
    if isinstance(response, (mc.Accept, mc.Discard)):
        return "2xx"
    if isinstance(response, mc.Tempfail):
        return "4xx"
    if isinstance(response, mc.Reject):
        return "5xx"
    if isinstance(response, mc.ReplyCode):
        return metrics.code_class(response.code)
    return None


class MilterConnection:
    """Reads packets, hands them to a :class:`MilterSession`, writes the answers."""

    def __init__(self, service: MilterService, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self._service = service
        self._reader = reader
        self._writer = writer
        self.session = MilterSession(service.runtime)
        self.busy = False

    def close_if_idle(self) -> None:
        """At the stop: close now unless a message is under way (that one closes after its answer)."""
        if not self.busy and not self.session.in_message:
            self._writer.close()

    async def serve(self) -> None:
        sock = self._writer.get_extra_info("socket")
        quickack = _quickack(sock)
        decoder = mc.FrameDecoder()
        session = self.session
        try:
            while not (self._service.connections.stopping and not session.in_message):
                self.busy = False
                # With "no reply" the MTA writes a whole message's packets at
                # once: one read and one write for all of them, not two awaits a packet.
                data = await self._reader.read(READ_BYTES)
                if not data:
                    if decoder.pending:
                        log.warning("milter connection closed inside a packet")
                    return
                self.busy = True
                if quickack and session.protocol & NO_REPLY:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
                out: list[bytes] = []
                quit_now = False
                for code, payload in decoder.feed(data):
                    command = mc.decode_command(code, payload)
                    responses = await session.handle(command)
                    for response in responses:
                        label = final_class(response)
                        if label is not None:
                            _reply_counter(label).inc()
                        out.append(mc.encode_response(response))
                    if isinstance(command, mc.Quit):
                        quit_now = True
                        break
                if out:
                    self._writer.write(b"".join(out))
                    await self._writer.drain()
                if quit_now:
                    return
        except ProtocolViolation as exc:
            log.warning("%s; closing the milter connection", exc)
        except asyncio.IncompleteReadError:
            log.warning("milter connection closed inside a packet")
        except (ConnectionError, OSError) as exc:
            log.debug("milter connection lost: %s", exc)
        except Exception:
            # The MTA answers a lost milter with its milter_default_action.
            log.exception("milter connection failed; closing it")
        finally:
            self._writer.close()


class MilterService:
    """What the connections of one milter listener share."""

    def __init__(self, runtime: DecisionService, connections: ConnectionTracker | None = None) -> None:
        self.runtime = runtime
        self.connections = connections if connections is not None else ConnectionTracker()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        metrics.CONNECTIONS.labels("milter").inc()
        connection = MilterConnection(self, reader, writer)
        self.connections.register(idle=False, on_stop=connection.close_if_idle)
        await connection.serve()


async def start_milter(listen: str, runtime: DecisionService,
                       connections: ConnectionTracker | None = None) -> asyncio.base_events.Server:
    """Serve the milter protocol on ``listen`` (``unix:/path`` or ``inet:host:port``);
    its connections are registered with ``connections`` (a tracker of its own when None)."""
    service = MilterService(runtime, connections)
    server = await start_stream_server(listen, service.accept)
    service.connections.stop_when_closed(server)
    return server
