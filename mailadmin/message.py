"""The message types: the SMTP envelope, the message and its summary
(DESIGN.md "Core abstractions"), and where a message's header section ends.

They sit at the bottom of the import order beside ``verdicts``: the adapters
build them, the engine and the checks read them, and ``mailtext`` composes
and rewrites mail from them.  ``Message`` keeps the raw bytes and parses
lazily; the views the checks need (decoded subject, header From addresses,
RFC 3834 headers) are computed once and cached.

:func:`header_block` is the one place that finds the end of the header
section: parsing, the size limits, the rewrites of ``mailtext.rewrite`` and
the milter's header fields all take it from there.
"""

from __future__ import annotations

import email
import email.message
import email.parser
import email.policy
import re
from dataclasses import dataclass, field
from functools import cached_property

from mailadmin.mailtext.addresses import header_addresses
from mailadmin.mailtext.headers import decode_header_value

# A line end followed by an empty line (CRLF or LF, mixed as they come).
_BLANK_LINE = re.compile(rb"\n\r?\n")


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP envelope of one message as the MTA saw it.

    ``mail_from`` is ``""`` for the null sender.  ``sasl_username`` is set only
    for authenticated submissions (outbound chain, SPEC §7, §9).
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    client_address: str | None = None
    client_name: str | None = None
    helo: str | None = None
    sasl_username: str | None = None
    queue_id: str | None = None


def header_block(raw: bytes) -> bytes:
    """The header section of ``raw``: its fields up to and including the
    blank line (``\\r\\n`` or ``\\n``) that ends them, or all of ``raw`` when
    no blank line does.  A message that starts with a blank line has no
    fields.  (Even the headers-only parser reads every body line: callers
    hand it this block.)"""
    if raw[:1] == b"\n":
        return raw[:1]
    if raw[:2] == b"\r\n":
        return raw[:2]
    blank = _BLANK_LINE.search(raw)
    return raw if blank is None else raw[: blank.end()]


class Message:
    """An RFC 5322 message: raw bytes plus cached parsed views."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    @cached_property
    def parsed(self) -> email.message.Message:
        """The header block only: checks read headers, and parsing a large
        body for nothing would cost more than the whole chain.  compat32 keeps
        the raw header values for mailtext.headers to decode."""
        return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
            header_block(self.raw)
        )

    @cached_property
    def _fields(self) -> dict[str, list[str]]:
        """Raw values by lower-cased field name, in message order: the checks
        ask for a dozen fields per recipient, and the parser's own lookup
        lower-cases every field name on every call."""
        # raw_items keeps raw 8-bit header bytes (surrogate-escaped) for the
        # decoder; str() of a compat32 value would replace them with U+FFFD.
        fields: dict[str, list[str]] = {}
        for k, v in self.parsed.raw_items():
            fields.setdefault(k.lower(), []).append(str(v))
        return fields

    def header_values(self, name: str) -> list[str]:
        """Every raw (undecoded, unfolded-as-is) value of header ``name``."""
        return list(self._fields.get(name.lower(), ()))

    def has_header(self, name: str) -> bool:
        return name.lower() in self._fields

    def sender_addresses(self, mail_from: str) -> tuple[str, ...]:
        """The envelope sender and every header From address (SPEC §4),
        lower-cased, each once: what sender entries are matched against."""
        found = self._senders.get(mail_from)
        if found is None:
            out: list[str] = [mail_from.lower()] if mail_from else []
            out.extend(a for a in self.from_addresses if a not in out)
            found = self._senders[mail_from] = tuple(out)
        return found

    @cached_property
    def _senders(self) -> dict[str, tuple[str, ...]]:
        return {}

    @cached_property
    def subject(self) -> str | None:
        """The decoded, unfolded Subject, or ``None`` when the header is missing."""
        values = self.header_values("Subject")
        if not values:
            return None
        return decode_header_value(values[0])

    @cached_property
    def from_addresses(self) -> tuple[str, ...]:
        """Every address in every From header, lower-cased (may be empty)."""
        out: list[str] = []
        for value in self.header_values("From"):
            out.extend(header_addresses(value))
        return tuple(out)

    @cached_property
    def message_id(self) -> str | None:
        values = self.header_values("Message-ID")
        return values[0].strip() if values else None


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """Sender/subject/date summary used in reports, notices and the quarantine list."""

    sender: str
    subject: str
    date: str
    extra: dict[str, str] = field(default_factory=dict)
