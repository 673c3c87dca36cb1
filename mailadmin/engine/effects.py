"""Phase 2: a verdict becomes a disposition and the effects it allows.

The table :data:`ALLOWED_EFFECTS` is the one place that says, for instance,
that quarantined, spam or infected mail is never forwarded or auto-replied to
(SPEC §3, §6).  Effects are data; the adapters apply the ones the MTA sees
(content changes, recipient removal), :mod:`mailadmin.engine.execute` the
database ones (quarantine row, outbox rows, auto-reply claim) in one transaction.
A content change makes itself on the raw message (``apply_to``, what
:func:`mailadmin.mailtext.rewrite.render_copy` calls).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Literal

from mailadmin import metrics
from mailadmin.checks.context import RecipientContext
from mailadmin.mailtext.addresses import sender_entry_matches
from mailadmin.mailtext.rewrite import add_header, tag_spam
from mailadmin.mailtext.rfc3834 import auto_reply_suppression
from mailadmin.verdicts import (
    Allowed,
    Blocked,
    Disposition,
    Infected,
    NotScanned,
    Refused,
    ScanFailed,
    Spam,
    Verdict,
)

# A header the daemon adds to every copy it forwards; a message that already
# names the mailbox in it has been forwarded by it before (SPEC §3: no loops).
LOOP_HEADER = "X-Mailadmin-Loop"
NOT_SCANNED_HEADER = "X-Mailadmin-Not-Scanned"


@dataclass(frozen=True, slots=True)
class TagSpam:
    prefix: str
    score: float
    threshold: float
    rules: tuple[str, ...]

    def __str__(self) -> str:
        return f"tag subject {self.prefix.strip()!s} (score {self.score:.1f})"

    def apply_to(self, raw: bytes) -> bytes:
        return tag_spam(raw, prefix=self.prefix, score=self.score, threshold=self.threshold,
                        rules=self.rules)


@dataclass(frozen=True, slots=True)
class AddHeader:
    name: str
    value: str

    def __str__(self) -> str:
        return f"add header {self.name}: {self.value}"

    def apply_to(self, raw: bytes) -> bytes:
        return add_header(raw, self.name, self.value)


@dataclass(frozen=True, slots=True)
class StoreQuarantine:
    """Hold the message; ``rule`` and ``entry`` are the verdict's (its columns in the store)."""

    rule: str
    entry: str
    retention_days: int

    def __str__(self) -> str:
        return f"quarantine for {self.retention_days} days ({self.rule}:{self.entry})"


@dataclass(frozen=True, slots=True)
class ForwardTo:
    addresses: tuple[str, ...]
    keep_copy: bool

    def __str__(self) -> str:
        keep = "keep a copy" if self.keep_copy else "no copy kept"
        return f"forward to {', '.join(self.addresses)} ({keep})"


@dataclass(frozen=True, slots=True)
class AutoReplyTo:
    to: str
    subject: str
    body: str
    window_hours: int

    def __str__(self) -> str:
        return f"auto-reply to {self.to} (at most once per {self.window_hours} h)"


@dataclass(frozen=True, slots=True)
class VirusReportTo:
    to: str
    virus: str
    direction: str  # "inbound": to the mailbox owner; "outbound": to the sender

    def __str__(self) -> str:
        return f"report {self.virus} to {self.to}"


Effect = TagSpam | AddHeader | StoreQuarantine | ForwardTo | AutoReplyTo | VirusReportTo
ContentChange = TagSpam | AddHeader

ALLOWED_EFFECTS: dict[Disposition, frozenset[type]] = {
    Disposition.DELIVER: frozenset({AddHeader, ForwardTo, AutoReplyTo}),
    # Spam reaches the inbox tagged and may be forwarded tagged; never auto-replied (SPEC §6).
    Disposition.DELIVER_TAGGED: frozenset({TagSpam, AddHeader, ForwardTo}),
    # Quarantined and infected mail is never forwarded or replied to (SPEC §3, §6).
    Disposition.QUARANTINE: frozenset({StoreQuarantine}),
    Disposition.DROP_INFECTED: frozenset({VirusReportTo}),
    Disposition.TEMPFAIL: frozenset(),
    Disposition.REJECT: frozenset(),
}


def disposition_for(verdict: Verdict | None, ctx: RecipientContext | None) -> Disposition:
    if verdict is None or isinstance(verdict, Allowed):
        return Disposition.DELIVER
    if isinstance(verdict, Infected):
        return Disposition.DROP_INFECTED
    if isinstance(verdict, Blocked):
        return Disposition.QUARANTINE
    if isinstance(verdict, Spam):
        quarantine = ctx is not None and ctx.rules.spam_quarantine
        return Disposition.QUARANTINE if quarantine else Disposition.DELIVER_TAGGED
    if isinstance(verdict, ScanFailed):
        return Disposition.TEMPFAIL
    if isinstance(verdict, Refused):
        return Disposition.REJECT
    raise TypeError(f"not a verdict: {verdict!r}")


def has_looped(ctx: RecipientContext) -> bool:
    me = ctx.recipient.lower()
    return any(value.strip().lower() == me for value in ctx.message.header_values(LOOP_HEADER))


def _auto_reply_date_ok(ctx: RecipientContext, today: dt.date) -> bool:
    ar = ctx.rules.auto_reply
    if ar.start_date is not None and today < ar.start_date:
        return False
    if ar.end_date is not None and today > ar.end_date:
        return False
    return True


def plan_auto_reply(ctx: RecipientContext) -> tuple[AutoReplyTo | None, str]:
    """The auto-reply this message would get, or ``None`` and why not (SPEC §6)."""
    ar = ctx.rules.auto_reply
    if not ar.enabled:
        return None, "off"
    local_today = ctx.now.astimezone(zoneinfo.ZoneInfo(ctx.policy.auto_reply.timezone)).date()
    if not _auto_reply_date_ok(ctx, local_today):
        return None, "outside_period"
    sender = ctx.envelope.mail_from
    why_not = auto_reply_suppression(ctx.message, sender, ctx.recipient)
    if why_not is not None:
        return None, why_not
    subject, body = ar.subject, ar.body
    for special in ar.per_sender:
        if sender_entry_matches(special.pattern, sender):
            subject, body = special.subject, special.body
            break
    window = ctx.policy.auto_reply.window_hours
    return AutoReplyTo(sender.lower(), subject, body, window), "planned"


Direction = Literal["inbound", "outbound"]


def plan_effects(
    disposition: Disposition,
    verdict: Verdict | None,
    ctx: RecipientContext,
    notes: tuple[NotScanned, ...],
    direction: Direction = "inbound",
) -> tuple[tuple[Effect, ...], bool]:
    """Effects for one recipient, and whether the mailbox itself gets a copy.

    ``direction="outbound"``: the effects of the outbound chain's verdict on
    the whole submission, planned for the sender (``ctx.recipient``): the
    virus report to the sender, or the not-scanned note every delivered copy
    carries.  The sender's mailbox gets no copy, so nothing is forwarded,
    tagged or auto-replied, and the boolean is ``False``.
    """
    effects: list[Effect] = []
    if direction == "outbound":
        if disposition is Disposition.DROP_INFECTED:
            assert isinstance(verdict, Infected)
            effects.append(VirusReportTo(ctx.recipient, verdict.virus, "outbound"))
        elif disposition is Disposition.DELIVER:
            effects.extend(_not_scanned(notes))
        return check_allowed(disposition, effects), False
    deliver_local = disposition in (Disposition.DELIVER, Disposition.DELIVER_TAGGED)
    if disposition is Disposition.QUARANTINE:
        assert verdict is not None
        effects.append(StoreQuarantine(verdict.rule, verdict.entry, ctx.policy.quarantine.retention_days))
    elif disposition is Disposition.DROP_INFECTED:
        assert isinstance(verdict, Infected)
        effects.append(VirusReportTo(ctx.recipient, verdict.virus, "inbound"))
    elif deliver_local:
        if isinstance(verdict, Spam):
            tag = ctx.policy.spam_scan.subject_tag
            effects.append(TagSpam(tag, verdict.score, verdict.threshold, verdict.rules))
        effects.extend(_not_scanned(notes))
        if ctx.rules.forwarding and not has_looped(ctx):
            forward = ForwardTo(tuple(f.address for f in ctx.rules.forwarding), ctx.rules.keeps_local_copy)
            effects.append(forward)
            deliver_local = forward.keep_copy
        if disposition is Disposition.DELIVER:
            reply, why = plan_auto_reply(ctx)
            if reply is not None:
                effects.append(reply)
            elif why != "off":
                metrics.AUTO_REPLIES.labels("suppressed", why).inc()
    if ctx.rules.auto_reply.enabled and disposition is not Disposition.DELIVER:
        # Quarantined, infected, tagged spam, refused or deferred mail gets none (SPEC §6).
        metrics.AUTO_REPLIES.labels("suppressed", disposition.value).inc()
    return check_allowed(disposition, effects), deliver_local


def _not_scanned(notes: tuple[NotScanned, ...]) -> list[AddHeader]:
    """The header a copy carries for each scanner that could not run (SPEC §7, §8)."""
    return [AddHeader(NOT_SCANNED_HEADER, f"{note.service} unavailable") for note in notes]


def check_allowed(disposition: Disposition, effects: list[Effect]) -> tuple[Effect, ...]:
    """``effects``, once the table allows each of them for ``disposition``."""
    allowed = ALLOWED_EFFECTS[disposition]
    for effect in effects:
        # The table is the contract; a planner bug must not forward or reply to spam.
        if type(effect) not in allowed:
            raise AssertionError(f"{type(effect).__name__} is not allowed for {disposition.value}")
    return tuple(effects)
