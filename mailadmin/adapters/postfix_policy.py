"""Postfix policy delegation (``check_policy_service``): the overseas sending
check at RCPT time (SPEC §9, §10; Postfix SMTPD_POLICY_README).

The protocol: Postfix writes ``name=value`` lines ended by an empty line and
reads back ``action=…`` and an empty line, many requests per connection.
This adapter answers, for an authenticated submission (``sasl_username``
set), the engine's overseas refusal as ``554 5.7.1 <how to unlock>`` and
otherwise ``DUNNO`` — never ``OK``, which would skip the restrictions after
this one (``permit_sasl_authenticated``, ``reject_unauth_destination``).
A request without ``sasl_username`` is answered at once without touching the
store: that is every inbound message, and the policy service sits in the
path of all of them.

Failures: anything the engine raises (database down, a bug) is answered
``DEFER_IF_PERMIT`` (Postfix says 450 4.7.1 unless a later restriction
rejects anyway) and logged; a request that breaks the protocol (a line
without ``=``, more than :data:`MAX_REQUEST_BYTES` before the empty line)
closes the connection, as Postfix itself does with a bad policy reply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from mailadmin import metrics
from mailadmin.message import Envelope
from mailadmin.errors import ProtocolViolation
from mailadmin.listeners import ConnectionTracker, start_stream_server

if TYPE_CHECKING:
    from mailadmin.engine.protocol import DecisionService

log = logging.getLogger(__name__)

# Postfix 3.7 sends about 30 attributes; with TLS client-certificate fields a
# request stays within a few KiB.  Anything far larger is not Postfix.  (The
# stream reader's own 64 KiB buffer limit bounds a request that never ends.)
MAX_REQUEST_BYTES = 32 * 1024
END_OF_REQUEST = b"\n\n"

DUNNO = "DUNNO"
TEMPFAIL_ACTION = "DEFER_IF_PERMIT Service temporarily unavailable"
# States in which Postfix has the sender's login and a refusal ends the submission.
CHECKED_STATES = frozenset({"MAIL", "RCPT", "DATA", "END-OF-MESSAGE"})


def parse_request(block: bytes) -> dict[str, str]:
    """One request (the bytes up to and including the empty line) as a dict.

    Values are taken as UTF-8 (SMTPUTF8 addresses), undecodable bytes kept
    as surrogate escapes; a repeated name keeps its last value, as Postfix's
    own attribute reader does.  A line without ``=`` or with an empty name is
    a :class:`ProtocolViolation`.
    """
    attributes: dict[str, str] = {}
    for raw in block.split(b"\n"):
        if not raw:
            continue
        line = raw[:-1] if raw.endswith(b"\r") else raw
        name, sep, value = line.partition(b"=")
        if not sep or not name:
            raise ProtocolViolation(f"policy request line without name=value: {line[:80]!r}")
        attributes[name.decode("ascii", "replace")] = value.decode("utf-8", "surrogateescape")
    return attributes


def format_reply(action: str) -> bytes:
    """``action=<action>`` and the empty line; the action is kept to one line
    (a newline in it would end the reply early and desynchronise Postfix)."""
    one_line = " ".join(action.split())
    return f"action={one_line}\n\n".encode("utf-8", "surrogateescape")


def envelope_of(request: dict[str, str]) -> Envelope:
    """The envelope the overseas check needs, from a policy request."""
    recipient = request.get("recipient", "")
    return Envelope(
        mail_from=request.get("sender", ""),
        rcpt_tos=(recipient,) if recipient else (),
        client_address=request.get("client_address") or None,
        client_name=request.get("client_name") or None,
        helo=request.get("helo_name") or None,
        sasl_username=request.get("sasl_username") or None,
        queue_id=request.get("queue_id") or None,
    )


def action_class(action: str) -> str:
    """The metrics label of an answer: ``dunno``, or the class of the SMTP code
    Postfix will send (DEFER_IF_PERMIT is a 450)."""
    if action == DUNNO:
        return "dunno"
    if action.startswith("DEFER"):
        return "4xx"
    code = action[:3]
    return metrics.code_class(int(code)) if code.isdigit() else "other"


class PolicyConnection:
    """One Postfix connection: requests answered in order, one at a time.

    Postfix asks once per recipient; the answer depends only on the login and
    the client address, so it is remembered for the rest of the same
    transaction (``instance`` names it) instead of asking the store again.
    """

    def __init__(self, runtime: DecisionService) -> None:
        self._runtime = runtime
        self._last_key: tuple[str, str, str] | None = None
        self._last_action = DUNNO

    async def decide(self, request: dict[str, str]) -> str:
        sasl_username = request.get("sasl_username", "")
        if not sasl_username or request.get("protocol_state", "").upper() not in CHECKED_STATES:
            return DUNNO
        key = (request.get("instance", ""), sasl_username, request.get("client_address", ""))
        if key[0] and key == self._last_key:
            return self._last_action
        envelope = envelope_of(request)
        try:
            refusal = await self._runtime.check_submission(envelope)
        except Exception:
            log.exception(
                "policy delegation failed, answering DEFER_IF_PERMIT queue_id=%s sasl_username=%s client=%s",
                envelope.queue_id or "-", sasl_username, envelope.client_address,
            )
            return TEMPFAIL_ACTION
        if refusal is None:
            action = DUNNO
        else:
            action = f"{refusal.code} {refusal.status} {refusal.text}"
            log.info(
                'decision queue_id=%s rcpt=%s outcome=reject reason="overseas" sasl_username=%s client=%s',
                envelope.queue_id or "-", request.get("recipient", "-"), sasl_username,
                envelope.client_address,
            )
        self._last_key, self._last_action = key, action
        return action

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    block = await reader.readuntil(END_OF_REQUEST)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        log.warning("policy client closed in the middle of a request")
                    return
                except asyncio.LimitOverrunError:
                    log.warning("policy request over the size limit; closing the connection")
                    return
                if len(block) > MAX_REQUEST_BYTES:
                    log.warning("policy request of %d bytes; closing the connection", len(block))
                    return
                try:
                    request = parse_request(block)
                except ProtocolViolation as exc:
                    log.warning("%s; closing the connection", exc)
                    return
                action = await self.decide(request)
                metrics.REPLIES.labels("policy", action_class(action)).inc()
                writer.write(format_reply(action))
                await writer.drain()
        except (ConnectionError, OSError) as exc:
            log.debug("policy connection lost: %s", exc)
        finally:
            writer.close()


async def start_postfix_policy(listen: str, runtime: DecisionService,
                               connections: ConnectionTracker | None = None) -> asyncio.base_events.Server:
    """Serve policy delegation on ``listen`` (``inet:host:port`` or ``unix:/path``);
    its connections are registered with ``connections`` as idle between requests."""
    tracker = connections if connections is not None else ConnectionTracker()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        metrics.CONNECTIONS.labels("policy").inc()
        tracker.register(idle=True)
        await PolicyConnection(runtime).serve(reader, writer)

    return await start_stream_server(listen, accept)
