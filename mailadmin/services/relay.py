"""The relay client: hands mail the daemon created to the MTA over SMTP (SPEC §10).

Auto-replies, forwards, virus reports, quarantine notices, released
quarantine items and re-injected copies all leave through one relay
(``[relay]`` in conf/mailadmin.toml), sent with aiosmtplib by the outbox job.
Failures are mapped at this boundary:

- connect refused, timeout, dropped connection, any 4xx on the session or on
  MAIL/DATA, or a 4xx for every recipient -> :class:`ServiceUnavailable`
  (the outbox keeps the message and retries it with a backoff);
- a 5xx on the session or on MAIL/DATA, or a 5xx for every recipient ->
  :class:`ServiceProtocolError` (a permanent refusal: the outbox stops trying);
  a reply that is not SMTP at all counts as unavailable, not as a refusal;
- some recipients refused while others were taken -> a :class:`Delivery` that
  lists them, 5xx as ``refused`` (never retried), 4xx as ``deferred`` (the
  outbox retries only those).

TLS is not used: the relay is the local MTA's listener for mail that must not
pass through mailadmin again (a loopback smtpd, see conf/mailadmin.toml), and
a self-signed loopback certificate would only add a handshake per message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiosmtplib

from mailadmin.config.model import RelayConf
from mailadmin.errors import ServiceProtocolError, ServiceUnavailable

log = logging.getLogger(__name__)

SERVICE = "relay"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the relay did with a message it accepted for at least one recipient.

    ``refused`` and ``deferred`` map a recipient to the relay's reply
    (``"550 5.1.1 ..."``); every other recipient was accepted.
    """

    refused: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"


def _failure(code: int, message: str, what: str) -> ServiceUnavailable | ServiceProtocolError:
    detail = f"{what}: {_reply(code, message)}"
    # Only a real 5xx is a permanent refusal; a garbled reply (aiosmtplib's
    # code -1) means a wrong or broken peer, which may be fixed: retry.
    if 500 <= code < 600:
        return ServiceProtocolError(SERVICE, detail)
    return ServiceUnavailable(SERVICE, detail)


async def send(
    relay: RelayConf,
    mail_from: str,
    rcpt_tos: Sequence[str],
    message: bytes,
) -> Delivery:
    """Send ``message`` from ``mail_from`` (``""`` is the null sender ``<>``) to
    ``rcpt_tos`` through ``relay``; raises as the module docstring says."""
    if not rcpt_tos:
        raise ValueError("a message needs at least one recipient")
    client = aiosmtplib.SMTP(
        hostname=relay.host,
        port=relay.port,
        local_hostname=relay.helo_name,
        timeout=relay.timeout_seconds,
        start_tls=False,
        use_tls=False,
    )
    where = f"{relay.host}:{relay.port}"
    try:
        await client.connect()
    except aiosmtplib.SMTPConnectResponseError as exc:
        raise _failure(exc.code, exc.message, f"greeting from {where}") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ServiceUnavailable(SERVICE, f"cannot connect to {where}: {exc}") from None
    try:
        return await _transaction(client, mail_from, list(rcpt_tos), message)
    finally:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            # The message's fate is already decided; a lost QUIT changes nothing.
            client.close()


async def _transaction(
    client: aiosmtplib.SMTP, mail_from: str, rcpt_tos: list[str], message: bytes
) -> Delivery:
    try:
        await client.ehlo()
    except aiosmtplib.SMTPResponseException as exc:
        try:
            await client.helo()
        except aiosmtplib.SMTPResponseException:
            raise _failure(exc.code, exc.message, "EHLO") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ServiceUnavailable(SERVICE, f"EHLO: {exc}") from None
    options: list[str] = []
    if not message.isascii() and client.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")
    if not all(a.isascii() for a in (mail_from, *rcpt_tos)):
        # aiosmtplib refuses the transaction when the relay lacks SMTPUTF8.
        options.append("SMTPUTF8")
    try:
        errors, _ = await client.sendmail(mail_from, rcpt_tos, message, mail_options=options)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        replies = {e.recipient: (e.code, e.message) for e in exc.recipients}
        text = "; ".join(f"{r}: {_reply(c, m)}" for r, (c, m) in replies.items())
        if any(400 <= c < 500 for c, _ in replies.values()):
            # Retry all: nobody got the message, and at least one may yet take it.
            raise ServiceUnavailable(SERVICE, f"every recipient refused: {text}") from None
        raise ServiceProtocolError(SERVICE, f"every recipient refused: {text}") from None
    except aiosmtplib.SMTPSenderRefused as exc:
        raise _failure(exc.code, exc.message, f"MAIL FROM:<{mail_from}>") from None
    except aiosmtplib.SMTPDataError as exc:
        raise _failure(exc.code, exc.message, "DATA") from None
    except aiosmtplib.SMTPNotSupported as exc:
        raise ServiceProtocolError(SERVICE, str(exc)) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise _failure(exc.code, exc.message, "transaction") from None
    except ValueError as exc:
        # An address aiosmtplib will not put on the wire: never sendable.
        raise ServiceProtocolError(SERVICE, f"invalid address: {exc}") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ServiceUnavailable(SERVICE, f"transaction: {exc}") from None
    delivery = Delivery(
        refused={r: _reply(e.code, e.message) for r, e in errors.items() if e.code >= 500},
        deferred={r: _reply(e.code, e.message) for r, e in errors.items() if e.code < 500},
    )
    if delivery.refused or delivery.deferred:
        log.warning("relay took the message for some recipients only: refused=%s deferred=%s",
                    delivery.refused, delivery.deferred)
    return delivery
