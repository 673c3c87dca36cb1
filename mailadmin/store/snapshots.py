"""Frozen snapshots of per-mailbox rules: what the engine and checks see.

The store loads one :class:`MailboxRules` per recipient per message (no
cross-process cache, so a change saved on the page governs the next message:
SPEC §10).  Checks never see an ORM object or a session.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# SPEC §4 header conditions, in the order of the manual's five checkboxes.
HEADER_CONDITIONS: tuple[str, ...] = (
    "from_missing",      # From: ヘッダ自体が存在しない
    "from_empty_angle",  # From: ヘッダの中身が空 (From: <>)
    "from_empty",        # From: ヘッダの中身が空 (From:)
    "subject_missing",   # Subject: ヘッダ自体が存在しない
    "subject_empty",     # Subject: ヘッダの中身が空 (Subject:)
)


@dataclass(frozen=True, slots=True)
class Forward:
    """One forwarding destination (SPEC §3); ``keep_copy`` is 残す (True) / 残さない (False)."""

    address: str
    keep_copy: bool


@dataclass(frozen=True, slots=True)
class SenderReply:
    """A per-sender auto-reply text (SPEC §6): ``pattern`` uses From-entry syntax."""

    pattern: str
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class AutoReply:
    """Auto-reply settings (SPEC §6)."""

    enabled: bool = False
    subject: str = ""
    body: str = ""
    per_sender: tuple[SenderReply, ...] = ()
    start_date: dt.date | None = None
    end_date: dt.date | None = None


@dataclass(frozen=True, slots=True)
class MailboxRules:
    """Every rule of one mailbox, as of one moment.

    ``overseas_unlocked_until`` is an aware UTC datetime or ``None``
    (制限中).  The unlock is in force only while ``now < overseas_unlocked_until``:
    it ends by itself, no job needed (SPEC §9).
    """

    address: str
    domain: str
    status: str = "active"  # "active" | "suspended"
    reject_sender: tuple[str, ...] = ()
    reject_subject: tuple[str, ...] = ()
    header_conditions: frozenset[str] = frozenset()
    allow_list: tuple[str, ...] = ()
    forwarding: tuple[Forward, ...] = ()
    auto_reply: AutoReply = field(default_factory=AutoReply)
    virus_scan: bool = True
    spam_scan: bool = True
    spam_quarantine: bool = False
    quarantine_notice: bool = False
    overseas_unlocked_until: dt.datetime | None = None

    @property
    def keeps_local_copy(self) -> bool:
        """Whether the mailbox keeps delivered mail when it forwards.

        With several destinations the copy is kept unless *every* destination
        says 残さない: a subscriber who asked for a copy anywhere gets one.
        """
        return not self.forwarding or any(f.keep_copy for f in self.forwarding)

    def is_overseas_unlocked(self, now: dt.datetime) -> bool:
        return self.overseas_unlocked_until is not None and now < self.overseas_unlocked_until
