"""The SRS bounce listener (SPEC §3): mail to our SRS domain, handed over by the
MTA (``conf/postfix/main.cf.srs``), is a bounce of a forwarded copy.

Each recipient is checked at RCPT (``mailtext/srs.py``: our domain, a hash made
with one of our secrets, not older than ``[srs] max_age_days``) and reversed to
the original sender; a forged, altered or expired address is refused there with
550, so the MTA never accepts it (and, being the last hop before us, bounces
nothing: the refusal goes to the client that sent it).  Accepted mail goes to
the original sender through the outbox and the relay, unchanged, with the
envelope sender it came with (a DSN's is null).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope as SmtpEnvelope, Session as SmtpSession

from mailadmin.adapters.tracked_smtp import TrackedSMTP
from mailadmin.listeners import ConnectionTracker, create_protocol_server
from mailadmin.mailtext.srs import ForgedSrsAddress
from mailadmin.store import outbox
from mailadmin.wiring import Runtime, srs_rewriter

log = logging.getLogger(__name__)

PURPOSE = "srs_bounce"
IDLE_TIMEOUT_SECONDS = 300


class SrsBounceHandler:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def handle_RCPT(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope,
                          address: str, rcpt_options: list[str]) -> str:
        srs = srs_rewriter(self.runtime.config())
        if srs is None:
            return "550 5.7.1 SRS is not enabled here"
        try:
            original = srs.reverse(address)
        except ForgedSrsAddress as exc:
            log.warning("srs bounce refused rcpt=%s from=%s: %s", address, envelope.mail_from or "<>", exc)
            return f"550 5.1.1 <{address}>: not a valid SRS address (forged or expired)"
        envelope.rcpt_tos.append(original)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw or "").encode("utf-8", "surrogateescape")
        mail_from = (envelope.mail_from or "").strip("<>")
        rcpts = list(dict.fromkeys(envelope.rcpt_tos))
        now = self.runtime.clock()

        def enqueue() -> None:
            with self.runtime.store.session_factory.begin() as session:
                outbox.enqueue(session, purpose=PURPOSE, mail_from=mail_from, rcpt_tos=rcpts,
                               message=raw, now=now)

        try:
            await asyncio.to_thread(enqueue)
        except Exception:
            log.exception("srs bounce could not be queued, answering 451")
            return "451 4.3.0 Try again later"
        log.info("srs bounce from=%s returned to=%s", mail_from or "<>", ",".join(rcpts))
        self.runtime.outbox_wakeup.set()
        return "250 2.0.0 OK: returned to the original sender"


async def start_srs_bounce(listen: str, runtime: Runtime,
                           connections: ConnectionTracker | None = None) -> asyncio.base_events.Server:
    """Serve the SRS bounce listener on ``listen``; its connections are
    registered with ``connections`` as message connections."""
    handler = SrsBounceHandler(runtime)

    def factory() -> SMTP:
        kwargs: dict[str, Any] = {"hostname": "mailadmin-srs", "ident": "mailadmin SRS",
                                  "decode_data": False, "timeout": IDLE_TIMEOUT_SECONDS,
                                  "data_size_limit": runtime.config().conf.limits.max_message_bytes}
        return TrackedSMTP(handler, connections=connections, **kwargs)

    return await create_protocol_server(listen, factory)
