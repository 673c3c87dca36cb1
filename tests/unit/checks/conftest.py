"""Check fixtures: the context a check reads, built from plain values.

A check's contract is "given these rules, this message and this scanner or
GeoIP answer, this verdict", so the answers here are plain values
(:class:`FakeScans`, :class:`FakeGeoIP`).  The real clamd, spamd and GeoIP
data are exercised in tests/integration and tests/e2e; the chain that runs
the checks in order, in tests/unit/engine.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import Any

from mailadmin import metrics
from mailadmin.checks.context import RecipientContext, SpamScanResult, VirusScanResult
from mailadmin.checks.overseas import CountryOf, OutboundContext
from mailadmin.config.model import Policy, SiteFilters
from mailadmin.message import Envelope, Message
from mailadmin.store.snapshots import MailboxRules

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
MAILBOX = "taro@example.jp"
SENDER = "alice@example.org"
PAGE_URL = "https://mail.example.jp/"
FROM = f"From: Alice <{SENDER}>"
TO = f"To: {MAILBOX}"
SUBJECT = "Subject: Hello"


def rules(**kw: Any) -> MailboxRules:
    """The recipient's (or, outbound, the sender's) rules: model defaults plus ``kw``."""
    return MailboxRules(address=MAILBOX, domain=MAILBOX.rpartition("@")[2], **kw)


def policy(**tables: dict[str, Any]) -> Policy:
    """The model's default policy with some fields of some tables replaced:
    ``policy(spam_scan={"threshold": 10.0})``."""
    out = Policy()
    for table, values in tables.items():
        out = dataclasses.replace(out, **{table: dataclasses.replace(getattr(out, table), **values)})
    return out


def message(*fields: str | bytes, body: bytes = b"body\r\n") -> Message:
    """A message whose header section is exactly ``fields`` (str as UTF-8, bytes as they are)."""
    lines = [f if isinstance(f, bytes) else f.encode("utf-8") for f in fields]
    return Message(b"\r\n".join(lines) + b"\r\n\r\n" + body)


def encoded_word(text: str, charset: str, encoding: str = "B") -> str:
    """``text`` as one RFC 2047 encoded word in ``charset``."""
    data = text.encode(charset)
    if encoding == "B":
        payload = base64.b64encode(data).decode("ascii")
    else:
        payload = "".join(chr(b) if chr(b).isalnum() and b < 0x80 else f"={b:02X}" for b in data)
    return f"=?{charset}?{encoding}?{payload}?="


PLAIN = message(FROM, TO, SUBJECT)
NO_RULES = rules()


class FakeScans:
    """The per-message scans as given answers; counts what a check asked for."""

    def __init__(self, virus: VirusScanResult | None = None, spam: SpamScanResult | None = None) -> None:
        self.virus_result = virus or VirusScanResult()
        self.spam_result = spam or SpamScanResult()
        self.virus_calls = 0
        self.spam_calls = 0

    async def virus(self) -> VirusScanResult:
        self.virus_calls += 1
        return self.virus_result

    async def spam(self) -> SpamScanResult:
        self.spam_calls += 1
        return self.spam_result


def context(
    *,
    rules: MailboxRules | None = None,
    message: Message = PLAIN,
    mail_from: str = SENDER,
    policy: Policy | None = None,
    filters: SiteFilters | None = None,
    scans: FakeScans | None = None,
) -> RecipientContext:
    """One inbound recipient's context; every part defaults to "nothing set"."""
    return RecipientContext(
        envelope=Envelope(mail_from=mail_from, rcpt_tos=(MAILBOX,)),
        message=message,
        recipient=MAILBOX,
        rules=NO_RULES if rules is None else rules,
        policy=policy or Policy(),
        filters=filters or SiteFilters(),
        scans=scans or FakeScans(),
        now=NOW,
    )


class FakeGeoIP:
    """A country database as a table; records which addresses it was asked about."""

    def __init__(self, countries: dict[str, str]) -> None:
        self.countries = countries
        self.asked: list[str] = []

    def __call__(self, ip: str) -> str | None:
        self.asked.append(ip)
        return self.countries.get(ip)


def outbound_context(
    client_address: str | None,
    *,
    unlocked_until: dt.datetime | None = None,
    policy: Policy | None = None,
    geoip: CountryOf | None = None,
) -> OutboundContext:
    """An authenticated submission by :data:`MAILBOX` from ``client_address``."""
    return OutboundContext(
        client_address=client_address,
        sender_rules=rules(overseas_unlocked_until=unlocked_until),
        policy=policy or Policy(),
        now=NOW,
        country_of=geoip or FakeGeoIP({}),
        page_url=PAGE_URL,
    )


def failures(service: str, mode: str) -> float:
    """``mailadmin_scanner_failures_total`` for one scanner and fail mode so far."""
    counted = metrics.REGISTRY.get_sample_value("mailadmin_scanner_failures_total",
                                                {"service": service, "fail_mode": mode})
    return counted or 0.0
