"""The after-queue SMTP content filter (Postfix ``content_filter``, or any MTA
that can route mail through an SMTP hop): the same decisions as the milter,
after the MTA has queued the message (SPEC §10; DESIGN.md "The chain").

The MTA hands each message over SMTP (aiosmtpd).  At the end of DATA the
engine decides per recipient; then every copy that must be delivered — one
per group of recipients with the same content, unchanged, ``[spam]``-tagged
or marked not scanned — is written to the outbox in the same transaction as
the quarantine rows, forwards, auto-replies and virus reports
(``runtime.apply``), and only then is the MTA told ``250``.  The outbox job
sends the copies through the relay, an MTA listener that does not run the
filter again.  Quarantined and infected copies are simply not re-injected.

Replies: ``250`` once everything is stored; ``451`` (the MTA keeps the
message and retries) when the engine says tempfail (a scanner down under the
tempfail policy) or anything fails, storing included.  Never ``5xx``: the MTA
already accepted the message, so a permanent error would make it bounce to a
sender that may be forged (backscatter).  For the same reason an outbound
refusal (only possible when the MTA forwards the login, which Postfix's
XFORWARD does not) is not bounced: the message is logged and not delivered;
refusing overseas submissions is the job of policy delegation or the milter,
before the queue.

XFORWARD (Postfix XFORWARD_README) carries the original client's name,
address, HELO and the MTA's queue ID (IDENT) into the envelope, so scans,
logs and quarantine rows name the real client and queue ID rather than the
MTA's loopback hop.  Configure it on the filter transport with
``-o smtp_send_xforward_command=yes``.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope as SmtpEnvelope, Session as SmtpSession, syntax

from mailadmin import metrics
from mailadmin.message import Envelope, Message
from mailadmin.engine.limits import check_message
from mailadmin.engine.replies import FILTER_TEMPFAIL, limit_reply
from mailadmin.errors import MessageLimitExceeded
from mailadmin.adapters.tracked_smtp import TrackedSMTP
from mailadmin.listeners import ConnectionTracker, create_protocol_server

if TYPE_CHECKING:
    import asyncio

    from mailadmin.engine.protocol import DecisionService

log = logging.getLogger(__name__)

IDLE_TIMEOUT_SECONDS = 300.0

XFORWARD_ATTRIBUTES = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE", "LOGIN")
# Values that mean "the MTA does not know" (XFORWARD_README).
UNAVAILABLE = frozenset({"[UNAVAILABLE]", "[TEMPUNAVAIL]"})

ACCEPTED_TEXT = "250 2.0.0 Ok: filtered"


def xtext_decode(text: str) -> str:
    """RFC 3461 xtext: ``+XX`` is the byte with hex value XX; anything else is itself."""
    if "+" not in text:
        return text
    out = bytearray()
    i = 0
    raw = text.encode("ascii", "surrogateescape")
    while i < len(raw):
        if raw[i] == 0x2B and _is_hex(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789ABCDEFabcdef" for c in pair)


def parse_xforward(arg: str) -> dict[str, str | None]:
    """``NAME=mx.example.org ADDR=192.0.2.1`` as ``{"NAME": ..., "ADDR": ...}``;
    unavailable values are ``None``, ``ADDR`` loses an ``IPV6:`` prefix.
    Raises ``ValueError`` on an unknown attribute or a word without ``=``."""
    attributes: dict[str, str | None] = {}
    for word in arg.split():
        name, sep, value = word.partition("=")
        name = name.upper()
        if not sep or name not in XFORWARD_ATTRIBUTES:
            raise ValueError(word)
        decoded: str | None = xtext_decode(value)
        if decoded in UNAVAILABLE or decoded == "":
            decoded = None
        elif name == "ADDR" and decoded is not None and decoded.upper().startswith("IPV6:"):
            decoded = decoded[5:]
        attributes[name] = decoded
    if not attributes:
        raise ValueError(arg)
    return attributes


class FilterSMTP(TrackedSMTP):
    """aiosmtpd's SMTP with the XFORWARD command, its connection tracked.

    The attributes hold for the next mail transaction only, as in Postfix:
    they are cleared after DATA and by RSET/EHLO.
    """

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        self.xforward: dict[str, str | None] = {}
        super().__init__(handler, **kwargs)

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()  # type: ignore[no-untyped-call]
        self.xforward = {}

    @syntax("XFORWARD attribute=value ...")
    async def smtp_XFORWARD(self, arg: str | None) -> None:
        if await self.check_helo_needed("EHLO"):
            return
        if self.envelope is not None and self.envelope.mail_from is not None:
            await self.push("503 5.5.1 Error: XFORWARD not allowed in a mail transaction")
            return
        try:
            self.xforward.update(parse_xforward(arg or ""))
        except ValueError as exc:
            await self.push(f"501 5.5.4 Bad XFORWARD attribute: {str(exc)[:100]}")
            return
        await self.push("250 2.0.0 Ok")


def envelope_from(smtp_envelope: SmtpEnvelope, xforward: dict[str, str | None],
                  peer_address: str | None) -> Envelope:
    """Our Envelope from aiosmtpd's and the XFORWARD attributes."""
    mail_from = smtp_envelope.mail_from or ""
    if mail_from == "<>":
        mail_from = ""
    return Envelope(
        mail_from=mail_from,
        rcpt_tos=tuple(smtp_envelope.rcpt_tos),
        client_address=xforward.get("ADDR") or peer_address,
        client_name=xforward.get("NAME"),
        helo=xforward.get("HELO"),
        sasl_username=xforward.get("LOGIN"),
        queue_id=xforward.get("IDENT"),
    )


class ContentFilterHandler:
    """aiosmtpd handler: decide at the end of DATA, store, then answer."""

    def __init__(self, runtime: DecisionService) -> None:
        self.runtime = runtime

    async def handle_EHLO(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        # Announce XFORWARD before the final "250 HELP" line.
        return responses[:-1] + ["250-XFORWARD " + " ".join(XFORWARD_ATTRIBUTES)] + responses[-1:]

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        reply = await self._data(server, session, envelope)
        metrics.REPLIES.labels("filter", metrics.code_class(int(reply[:3]))).inc()
        return reply

    async def _data(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        xforward = server.xforward if isinstance(server, FilterSMTP) else {}
        peer = session.peer[0] if isinstance(session.peer, tuple) and session.peer else None
        env = envelope_from(envelope, xforward, peer)
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw or "").encode("utf-8", "surrogateescape")
        try:
            check_message(raw, self.runtime.limits)
        except MessageLimitExceeded as exc:
            # After queue a 5xx would bounce: the MTA keeps it, the postmaster sees why.
            log.warning("content filter: message exceeds %s, left in the queue queue_id=%s", exc,
                        env.queue_id or "-")
            return str(limit_reply(exc, after_queue=True))
        message = Message(raw)
        try:
            # Handed over again after a lost reply: recipients already taken are not applied twice.
            key: str | None = None
            if env.queue_id:
                key, done = await self.runtime.already_taken(env.queue_id, raw, env.rcpt_tos)
                if done:
                    rest = tuple(r for r in env.rcpt_tos if r.strip().strip("<>").strip().lower() not in done)
                    log.warning("content filter: queue_id=%s handed over again; %d recipient(s) already "
                                "filtered, %d to decide", env.queue_id, len(env.rcpt_tos) - len(rest), len(rest))
                    if not rest:
                        return ACCEPTED_TEXT
                    env = dataclasses.replace(env, rcpt_tos=rest)
            decision = await self.runtime.decide(env, message)
            tempfail = decision.tempfail
            if tempfail is not None:
                log.info("content filter tempfail queue_id=%s reply=%s", env.queue_id or "-", tempfail)
                return str(tempfail)
            if decision.rejected is not None:
                # After queue a refusal would bounce; the message is not delivered.
                log.warning("content filter: refused submission not delivered queue_id=%s from=%s reply=%s",
                            env.queue_id or "-", env.mail_from or "<>", decision.rejected)
                return ACCEPTED_TEXT
            await self.runtime.apply(decision, message, reinject=decision.content_groups(),
                                     taken=(key, env.rcpt_tos) if key is not None else None)
        except Exception:
            log.exception("content filter failed, answering 451 queue_id=%s", env.queue_id or "-")
            return str(FILTER_TEMPFAIL)
        return ACCEPTED_TEXT


async def start_content_filter(listen: str, runtime: DecisionService,
                               connections: ConnectionTracker | None = None) -> asyncio.base_events.Server:
    """Serve the SMTP content filter on ``listen`` (``inet:host:port`` or ``unix:/path``);
    its connections are registered with ``connections`` as message connections."""
    handler = ContentFilterHandler(runtime)
    hostname = "mailadmin-filter"

    def factory() -> FilterSMTP:
        metrics.CONNECTIONS.labels("filter").inc()
        return FilterSMTP(
            handler,
            hostname=hostname,
            ident="mailadmin content filter",
            decode_data=False,
            enable_SMTPUTF8=True,
            # The MTA's own size limit applies first (it must be the lower one).
            data_size_limit=runtime.limits.max_message_bytes,
            timeout=IDLE_TIMEOUT_SECONDS,
            connections=connections,
        )

    return await create_protocol_server(listen, factory)
