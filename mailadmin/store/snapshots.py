"""Frozen snapshots of per-mailbox rules: what the engine and checks see.

The store loads one :class:`MailboxRules` per recipient (kept in memory by
store/rules_cache.py only while the rules generation is unchanged, so a change
saved on the page governs the next message: SPEC §10).  Checks never see an
ORM object or a session.  A snapshot compiles its reject and allow lists on
first use (mailtext/matchers.py) and keeps them for as long as it lives.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from mailadmin.mailtext.matchers import SenderMatcher, SubjectMatcher

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
    # The compiled lists, built on first use and kept with the snapshot, so a
    # cached snapshot (store/rules_cache.py) compiles its lists once.
    _matchers: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _sender_matcher(self, name: str, entries: tuple[str, ...]) -> SenderMatcher:
        matcher = self._matchers.get(name)
        if matcher is None:
            # Two threads may both build it: the same result, one is kept.
            matcher = self._matchers.setdefault(name, SenderMatcher(entries))
        assert isinstance(matcher, SenderMatcher)
        return matcher

    @property
    def reject_sender_matcher(self) -> SenderMatcher:
        """``reject_sender`` compiled (mailtext/matchers.py)."""
        return self._sender_matcher("reject_sender", self.reject_sender)

    @property
    def allow_list_matcher(self) -> SenderMatcher:
        """``allow_list`` compiled (mailtext/matchers.py)."""
        return self._sender_matcher("allow_list", self.allow_list)

    @property
    def reject_subject_matcher(self) -> SubjectMatcher:
        """``reject_subject`` compiled (mailtext/matchers.py)."""
        matcher = self._matchers.get("reject_subject")
        if matcher is None:
            matcher = self._matchers.setdefault("reject_subject", SubjectMatcher(self.reject_subject))
        assert isinstance(matcher, SubjectMatcher)
        return matcher

    @property
    def keeps_local_copy(self) -> bool:
        """Whether the mailbox keeps delivered mail when it forwards.

        With several destinations the copy is kept unless *every* destination
        says 残さない: a subscriber who asked for a copy anywhere gets one.
        """
        return not self.forwarding or any(f.keep_copy for f in self.forwarding)

    def is_overseas_unlocked(self, now: dt.datetime) -> bool:
        return self.overseas_unlocked_until is not None and now < self.overseas_unlocked_until
