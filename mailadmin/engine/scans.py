"""Per-message scans: clamd and spamd run at most once per message, however many
recipients ask (DESIGN.md "Scans run once per message, decisions are per recipient").

A scan starts only when the first recipient whose mailbox has it enabled asks;
concurrent askers share one task.  Service errors become result values here so
each recipient's policy can decide the fail mode.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from typing import Protocol

from mailadmin import metrics
from mailadmin.checks.context import SpamScanResult, VirusScanResult
from mailadmin.message import Envelope, Message
from mailadmin.errors import ServiceError
from mailadmin.mailtext.mime_parts import leaf_parts

log = logging.getLogger(__name__)


class VirusScanner(Protocol):
    async def scan(self, data: bytes) -> str | None: ...


class SpamReportLike(Protocol):
    @property
    def score(self) -> float: ...

    @property
    def rules(self) -> dict[str, float]: ...


class SpamScanner(Protocol):
    async def report(self, data: bytes) -> SpamReportLike: ...


def synthetic_received(envelope: Envelope) -> bytes:
    """A Received header for the copy spamd sees.

    A milter is not shown the MTA's own Received header, so SpamAssassin would
    fire NO_RECEIVED/NO_RELAYS on every message (COMPONENTS.md §2).
    """
    if not envelope.client_address:
        return b""
    helo = envelope.helo or "unknown"
    name = envelope.client_name or "unknown"
    when = email.utils.formatdate(localtime=False)
    line = f"Received: from {helo} ({name} [{envelope.client_address}])\r\n\tby mailadmin; {when}\r\n"
    return line.encode("ascii", "replace")


class MessageScans:
    def __init__(
        self,
        message: Message,
        envelope: Envelope,
        clamd: VirusScanner | None,
        spamd: SpamScanner | None,
    ) -> None:
        self._message = message
        self._envelope = envelope
        self._clamd = clamd
        self._spamd = spamd
        self._virus: asyncio.Task[VirusScanResult] | None = None
        self._spam: asyncio.Task[SpamScanResult] | None = None
        self.virus_scans = 0
        self.spam_scans = 0

    async def virus(self) -> VirusScanResult:
        if self._virus is None:
            self._virus = asyncio.ensure_future(self._scan_virus())
        return await asyncio.shield(self._virus)

    async def spam(self) -> SpamScanResult:
        if self._spam is None:
            self._spam = asyncio.ensure_future(self._scan_spam())
        return await asyncio.shield(self._spam)

    async def _scan_virus(self) -> VirusScanResult:
        self.virus_scans += 1
        if self._clamd is None:
            return VirusScanResult(error="clamd not configured")
        try:
            with metrics.SCANNER_SECONDS.labels("clamd").time():
                return VirusScanResult(virus=await self._clamd.scan(self._message.raw))
        except ServiceError as exc:
            log.warning("virus scan failed: %s", exc)
            return VirusScanResult(error=str(exc))

    async def _scan_spam(self) -> SpamScanResult:
        self.spam_scans += 1
        if self._spamd is None:
            return SpamScanResult(error="spamd not configured")
        try:
            with metrics.SCANNER_SECONDS.labels("spamd").time():
                report = await self._spamd.report(synthetic_received(self._envelope) + self._message.raw)
        except ServiceError as exc:
            log.warning("spam scan failed: %s", exc)
            return SpamScanResult(error=str(exc))
        return SpamScanResult(score=report.score, rules=tuple(sorted(report.rules)))


async def infected_parts(clamd: VirusScanner, raw: bytes) -> list[str] | None:
    """Paths of the leaf MIME parts clamd finds infected on their own.

    ``None`` when the infection can't be localised to parts (or a part scan
    failed): the caller must then leave out the whole body, never include it.
    """
    found: list[str] = []
    try:
        for path, payload in leaf_parts(raw):
            if await clamd.scan(payload) is not None:
                found.append(path)
    except ServiceError:
        return None
    return found or None
