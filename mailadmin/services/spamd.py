"""Asyncio SPAMC/1.5 client for SpamAssassin's spamd: REPORT and PING (SPEC §8).

One ``REPORT`` request per message gives everything the spam_scan check and
its logs need: the ``Spam: True ; 1000.0 / 5.0`` header (verdict, score,
threshold) and the report text, whose ``pts rule name`` table we parse into
``{rule: points}``.  spamd answers once and closes the connection.

Why our own client: aiospamc is the only maintained asyncio one, and its
module-level calls build an SSL context on every request, about 25 ms of
blocking CPU on the event loop even over plain TCP; it also needs two
requests (SYMBOLS + REPORT) for rules and text (COMPONENTS.md §2).  The
protocol is a header block and a body.

Failure mapping, as for clamd: can't connect, connection dropped before a
reply, no complete reply within ``timeout_seconds`` for the whole exchange,
or spamd's EX_UNAVAILABLE/EX_TEMPFAIL -> ``ServiceUnavailable``; any other
error code or a reply we can't parse -> ``ServiceProtocolError``.

Mail larger than ``max_size_bytes`` is not sent: like spamc, which passes
big mail through unscanned, ``report`` returns a not-spam ``SpamReport``
whose ``report`` is ``NOT_SCANNED_REPORT``.  Spam practically never comes in
multi-megabyte messages, and scanning them would stall spamd's few children
(body rules make time grow with size).  Viruses do come in big attachments,
which is why the clamd client refuses oversize data instead.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass

from mailadmin.errors import ConfigError, ServiceProtocolError, ServiceUnavailable
from mailadmin.services import close_stream, open_stream, parse_service_address

SERVICE = "spamd"
PROTOCOL = "SPAMC/1.5"
# A REPORT reply is the header block plus the report text, a few KiB.
RESPONSE_LIMIT_BYTES = 1024 * 1024
NOT_SCANNED_REPORT = "not scanned: larger than max_size_bytes"

# sysexits(3) codes spamd uses when it can't take the request right now.
_RETRY_LATER_CODES = {69: "EX_UNAVAILABLE", 75: "EX_TEMPFAIL"}

_STATUS = re.compile(r"SPAMD/(\d+)\.(\d+) +(\d+)(?: +(.*))?")
_NUMBER = r"-?\d+(?:\.\d+)?"
_SPAM_HEADER = re.compile(rf"(True|False|Yes|No) *; *({_NUMBER}) */ *({_NUMBER})", re.IGNORECASE)
# SpamAssassin prints the table with "%4s %-22s %s"; description lines that
# wrap continue after 28 spaces, so a row starts within the first 4 columns.
_RULE_ROW = re.compile(rf" {{0,4}}({_NUMBER}) +([A-Za-z0-9_]+)(?: |$)")
_USER = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(frozen=True, slots=True)
class SpamReport:
    """spamd's verdict on one message.

    ``rules`` maps each rule that fired to its points; ``report`` is
    SpamAssassin's text report (or ``NOT_SCANNED_REPORT``).
    """

    is_spam: bool
    score: float
    threshold: float
    rules: dict[str, float]
    report: str

    @property
    def scanned(self) -> bool:
        return self.report != NOT_SCANNED_REPORT


def not_scanned_report() -> SpamReport:
    # No score reaches an infinite threshold: consistent with is_spam False.
    return SpamReport(False, 0.0, math.inf, {}, NOT_SCANNED_REPORT)


def report_request(data: bytes, user: str | None = None) -> bytes:
    head = f"REPORT {PROTOCOL}\r\nContent-length: {len(data)}\r\n"
    if user is not None:
        head += f"User: {user}\r\n"
    return head.encode("ascii") + b"\r\n" + data


def ping_request() -> bytes:
    return f"PING {PROTOCOL}\r\n\r\n".encode("ascii")


@dataclass(frozen=True, slots=True)
class SpamdResponse:
    code: int
    message: str
    headers: dict[str, str]
    body: bytes


def parse_response(raw: bytes) -> SpamdResponse:
    """Split a SPAMD reply; a non-zero code raises (unavailable or protocol error)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        # PING's reply is a bare status line.
        head = head.removesuffix(b"\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = _STATUS.fullmatch(lines[0])
    if status is None:
        raise ServiceProtocolError(SERVICE, f"unexpected reply {raw[:200]!r}")
    code, message = int(status.group(3)), (status.group(4) or "").strip()
    if code in _RETRY_LATER_CODES:
        raise ServiceUnavailable(SERVICE, f"spamd answered {code} {message}")
    if code != 0:
        raise ServiceProtocolError(SERVICE, f"spamd answered {code} {message}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ServiceProtocolError(SERVICE, f"malformed header line {line[:200]!r}")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = headers["content-length"]
        if not length.isdigit() or int(length) != len(body):
            raise ServiceProtocolError(
                SERVICE, f"Content-length {length} but {len(body)} bytes of body"
            )
    return SpamdResponse(code, message, headers, body)


def parse_rules(report: str) -> dict[str, float]:
    """``{rule: points}`` from the ``pts rule name description`` table of a report."""
    rules: dict[str, float] = {}
    in_table = False
    for line in report.splitlines():
        if not in_table:
            in_table = line.startswith("---- ")
            continue
        if not line.strip():
            break
        row = _RULE_ROW.match(line)
        if row:
            rules[row.group(2)] = float(row.group(1))
    return rules


def parse_report(raw: bytes) -> SpamReport:
    response = parse_response(raw)
    spam = _SPAM_HEADER.fullmatch(response.headers.get("spam", ""))
    if spam is None:
        raise ServiceProtocolError(
            SERVICE, f"no valid Spam header in reply: {response.headers.get('spam')!r}"
        )
    text = response.body.decode("utf-8", "replace")
    return SpamReport(
        is_spam=spam.group(1).lower() in ("true", "yes"),
        score=float(spam.group(2)),
        threshold=float(spam.group(3)),
        rules=parse_rules(text),
        report=text,
    )


class SpamdClient:
    """One spamd, reached at ``address`` (absolute unix socket path, ``host:port`` or ``[v6]:port``).

    ``user`` is sent as SPAMC's ``User`` header, for spamd's per-user settings;
    None leaves it out.  Every call opens its own connection.
    """

    def __init__(
        self,
        address: str,
        timeout_seconds: float,
        max_size_bytes: int,
        *,
        user: str | None = None,
    ) -> None:
        self.address = parse_service_address(SERVICE, address)
        self.timeout_seconds = timeout_seconds
        self.max_size_bytes = max_size_bytes
        if user is not None and not _USER.fullmatch(user):
            raise ConfigError(SERVICE, "user", f"{user!r} is not a printable ASCII word")
        self.user = user

    async def report(self, data: bytes) -> SpamReport:
        if len(data) > self.max_size_bytes:
            return not_scanned_report()
        return parse_report(await self._exchange(report_request(data, self.user)))

    async def ping(self) -> None:
        response = parse_response(await self._exchange(ping_request()))
        if response.message != "PONG":
            raise ServiceProtocolError(SERVICE, f"unexpected reply to PING: {response.message!r}")

    async def _exchange(self, request: bytes) -> bytes:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return await self._send_and_read(request)
        except TimeoutError:
            raise ServiceUnavailable(
                SERVICE, f"no reply from {self.address} within {self.timeout_seconds} s"
            ) from None

    async def _send_and_read(self, request: bytes) -> bytes:
        reader, writer = await open_stream(SERVICE, self.address)
        write_error: OSError | None = None
        completed = False
        try:
            try:
                writer.write(request)
                await writer.drain()
                # spamd reads Content-length bytes either way; the half-close
                # makes a confused peer see the end instead of waiting on us.
                if writer.can_write_eof():
                    writer.write_eof()
            except OSError as exc:
                # spamd may refuse the request (bad header, too big) and close
                # while we still send: its reply explains why.
                write_error = exc
            raw = await self._read_all(reader)
            if not raw:
                why = f" ({write_error})" if write_error else ""
                raise ServiceUnavailable(
                    SERVICE, f"{self.address} closed the connection without a reply{why}"
                )
            completed = True
            return raw
        finally:
            await close_stream(writer, completed=completed)

    async def _read_all(self, reader: asyncio.StreamReader) -> bytes:
        received = bytearray()
        try:
            while chunk := await reader.read(64 * 1024):
                received += chunk
                if len(received) > RESPONSE_LIMIT_BYTES:
                    raise ServiceProtocolError(
                        SERVICE, f"reply longer than {RESPONSE_LIMIT_BYTES} bytes"
                    )
        except OSError as exc:
            if not received:
                raise ServiceUnavailable(
                    SERVICE, f"connection to {self.address} lost: {exc}"
                ) from exc
            # A reset after a complete reply is harmless; a partial one fails to parse.
        return bytes(received)
