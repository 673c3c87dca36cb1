"""What a check sees: one recipient's rules and policy, the message, the per-message scans."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from mailadmin.config.model import Policy, SiteFilters
from mailadmin.message import Envelope, Message
from mailadmin.store.snapshots import MailboxRules


@dataclass(frozen=True, slots=True)
class VirusScanResult:
    """clamd's answer for the whole message: ``virus`` when infected, ``error`` when it failed."""

    virus: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SpamScanResult:
    score: float = 0.0
    rules: tuple[str, ...] = ()
    error: str | None = None


class Scans(Protocol):
    """Per-message scan results: each scanner runs at most once per message."""

    async def virus(self) -> VirusScanResult: ...

    async def spam(self) -> SpamScanResult: ...


@dataclass(frozen=True, slots=True)
class RecipientContext:
    envelope: Envelope
    message: Message
    recipient: str
    rules: MailboxRules
    policy: Policy
    filters: SiteFilters
    scans: Scans
    now: dt.datetime

    def sender_addresses(self) -> tuple[str, ...]:
        """The envelope sender and every header From address (SPEC §4), lower-cased."""
        return self.message.sender_addresses(self.envelope.mail_from)
