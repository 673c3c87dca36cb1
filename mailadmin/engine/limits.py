"""The bounds one message may reach: size, header fields, header bytes and
MIME nesting (conf ``[limits]``; SPEC §10, "nothing crashes").

Every adapter checks them before the engine sees the message, so the memory
and time one message costs are bounded: the milter counts while it buffers
(:class:`MessageMeter`, and stops storing past a limit), the content filter
checks the message it read (:func:`check_message`).  Past a limit the milter
answers 552 5.3.4 (before queue: the sender's MTA reports it) and the content
filter 451 (after queue a 5xx would bounce): ``replies.limit_reply``.

The MIME depth is counted by :func:`mailadmin.mailtext.mime_parts.mime_depth`,
a line scan that never recurses.
"""

from __future__ import annotations

import re

from mailadmin.config.model import LimitsConf
from mailadmin.message import header_block
from mailadmin.errors import MessageLimitExceeded
from mailadmin.mailtext.mime_parts import mime_depth

_FIELD_START = re.compile(rb"(?m)^[^ \t\r\n]")


def header_counts(raw: bytes) -> tuple[int, int]:
    """``(fields, bytes)`` of the header section of ``raw`` (continuation
    lines belong to their field)."""
    block = header_block(raw)
    return len(_FIELD_START.findall(block)), len(block)


def check_message(raw: bytes, limits: LimitsConf) -> None:
    """Raise :class:`MessageLimitExceeded` for the first bound ``raw`` passes."""
    if len(raw) > limits.max_message_bytes:
        raise MessageLimitExceeded("max_message_bytes", len(raw), limits.max_message_bytes)
    fields, size = header_counts(raw)
    if fields > limits.max_header_fields:
        raise MessageLimitExceeded("max_header_fields", fields, limits.max_header_fields)
    if size > limits.max_header_bytes:
        raise MessageLimitExceeded("max_header_bytes", size, limits.max_header_bytes)
    depth = mime_depth(raw, limits.max_mime_depth)
    if depth > limits.max_mime_depth:
        raise MessageLimitExceeded("max_mime_depth", depth, limits.max_mime_depth)


class MessageMeter:
    """The milter's running count of one message as it arrives: the first
    bound passed is kept in :attr:`exceeded`, and the caller stops storing."""

    def __init__(self, limits: LimitsConf) -> None:
        self.limits = limits
        self.total_bytes = 0
        self.header_fields = 0
        self.header_bytes = 0
        self.exceeded: MessageLimitExceeded | None = None

    def header(self, name: str, value: str) -> bool:
        """Count one field; False once a bound is passed (do not store it)."""
        size = len(name) + len(value) + 4  # ": " and CRLF
        self.header_fields += 1
        self.header_bytes += size
        self.total_bytes += size
        limits = self.limits
        if self.exceeded is None:
            if self.header_fields > limits.max_header_fields:
                self.exceeded = MessageLimitExceeded("max_header_fields", self.header_fields,
                                                     limits.max_header_fields)
            elif self.header_bytes > limits.max_header_bytes:
                self.exceeded = MessageLimitExceeded("max_header_bytes", self.header_bytes,
                                                     limits.max_header_bytes)
            elif self.total_bytes > limits.max_message_bytes:
                self.exceeded = MessageLimitExceeded("max_message_bytes", self.total_bytes,
                                                     limits.max_message_bytes)
        return self.exceeded is None

    def body(self, size: int) -> bool:
        """Count a body chunk; False once a bound is passed (do not store it)."""
        self.total_bytes += size
        if self.exceeded is None and self.total_bytes > self.limits.max_message_bytes:
            self.exceeded = MessageLimitExceeded("max_message_bytes", self.total_bytes,
                                                 self.limits.max_message_bytes)
        return self.exceeded is None
