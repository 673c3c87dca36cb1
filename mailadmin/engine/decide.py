"""decide(): one outcome per recipient, and recipients grouped by the copy they get.

Per recipient (SPEC §10): the recipient's own ``MailboxRules`` and domain
``Policy``; the INBOUND_CHAIN; the effects table.  Authenticated submissions
first pass the outbound chain (overseas restriction, then the sender's virus
scan), whose verdict covers every recipient.

Recipient groups: one SMTP transaction carries one copy of the message, but
recipients may need different copies (one tagged ``[spam]``, one with a
not-scanned header, one unchanged).  :meth:`Decision.content_groups` groups
the recipients that still get a copy by the exact content changes they need;
an adapter keeps one group in the MTA's transaction and re-injects the others
through the outbox.  Recipients whose copy is quarantined, dropped, or
forwarded away without a kept copy are in no group.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mailadmin import metrics
from mailadmin.checks import overseas
from mailadmin.checks.context import RecipientContext
from mailadmin.config.model import Config
from mailadmin.engine.chain import ENVELOPE_CHAIN, INBOUND_CHAIN, OUTBOUND_CHAIN, SubmissionContext, run_chain
from mailadmin.engine.effects import (
    AddHeader,
    ContentChange,
    Effect,
    TagSpam,
    disposition_for,
    plan_effects,
)
from mailadmin.engine.replies import SCAN_TEMPFAIL, Reject, SmtpReply, TempFail, reply_for
from mailadmin.engine.scans import MessageScans, SpamScanner, VirusScanner
from mailadmin.message import Envelope, Message
from mailadmin.mailtext.addresses import domain_of
from mailadmin.store.snapshots import MailboxRules
from mailadmin.verdicts import Disposition, Trace, Verdict, format_trace

log = logging.getLogger(__name__)

RulesLoader = Callable[[Sequence[str]], dict[str, MailboxRules]]
# Snapshots from memory, or None when they must be loaded (store/rules_cache.py).
CachedRules = Callable[[Sequence[str]], dict[str, MailboxRules] | None]
CountryOf = Callable[[str], "str | None"]


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """One recipient's decision.  ``verdict`` is the chain's (the outbound
    chain's for a refused or infected submission), ``None`` when no rule
    matched or the recipient is not one of our mailboxes."""

    recipient: str
    disposition: Disposition
    verdict: Verdict | None
    trace: Trace
    effects: tuple[Effect, ...] = ()
    deliver_local: bool = False
    is_local_mailbox: bool = False
    reply: SmtpReply | None = None

    @property
    def rule(self) -> str:
        """What decided: the verdict's rule (a metrics label), never the entry."""
        if self.verdict is not None:
            return self.verdict.rule
        return "no_rule_matched" if self.is_local_mailbox else "not_local"

    @property
    def reason(self) -> str:
        """``rule:entry``, the reason of the decision log line and the dry run."""
        return self.rule if self.verdict is None else str(self.verdict)

    @property
    def content_changes(self) -> tuple[ContentChange, ...]:
        return tuple(e for e in self.effects if isinstance(e, (TagSpam, AddHeader)))


@dataclass(frozen=True, slots=True)
class ContentGroup:
    changes: tuple[ContentChange, ...]
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    envelope: Envelope
    outcomes: tuple[RecipientOutcome, ...]
    # effects that belong to the message, not to one recipient (the outbound virus report)
    message_effects: tuple[Effect, ...] = ()
    scans: dict[str, int] = field(default_factory=dict)

    def outcome(self, recipient: str) -> RecipientOutcome:
        for o in self.outcomes:
            if o.recipient.lower() == recipient.lower():
                return o
        raise KeyError(recipient)

    @property
    def tempfail(self) -> TempFail | None:
        """A temporary failure for any recipient defers the whole message (it can't be split)."""
        for o in self.outcomes:
            if o.disposition is Disposition.TEMPFAIL:
                return o.reply if isinstance(o.reply, TempFail) else SCAN_TEMPFAIL
        return None

    @property
    def rejected(self) -> Reject | None:
        if self.outcomes and all(o.disposition is Disposition.REJECT for o in self.outcomes):
            reply = self.outcomes[0].reply
            return reply if isinstance(reply, Reject) else None
        return None

    def content_groups(self) -> tuple[ContentGroup, ...]:
        groups: dict[tuple[ContentChange, ...], list[str]] = {}
        for o in self.outcomes:
            if o.deliver_local:
                groups.setdefault(o.content_changes, []).append(o.recipient)
        return tuple(ContentGroup(changes, tuple(r)) for changes, r in groups.items())


def log_decision(decision: Decision) -> None:
    """The INFO line of each recipient decision, and its count in the metrics."""
    for o in decision.outcomes:
        metrics.DECISIONS.labels(o.disposition.value, o.rule).inc()
        log.info(
            'decision queue_id=%s rcpt=%s outcome=%s reason="%s" trace="%s"',
            decision.envelope.queue_id or "-",
            o.recipient,
            o.disposition.value,
            o.reason,
            format_trace(o.trace),
        )


class Engine:
    """Decides; never writes.  ``execute`` (engine/execute.py) applies the DB effects."""

    def __init__(
        self,
        *,
        config: Callable[[], Config],
        load_rules: RulesLoader,
        clamd: VirusScanner | None,
        spamd: SpamScanner | None,
        country_of: CountryOf,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
        cached_rules: CachedRules | None = None,
    ) -> None:
        self._config = config
        self._load_rules = load_rules
        self._cached_rules = cached_rules
        self.clamd = clamd
        self.spamd = spamd
        self._country_of = country_of
        self._clock = clock

    async def _rules(self, addresses: Sequence[str]) -> dict[str, MailboxRules]:
        """The snapshots of ``addresses``: from memory when the cache has them
        (no thread hand-off), else loaded in a worker thread."""
        if self._cached_rules is not None:
            found = self._cached_rules(addresses)
            if found is not None:
                return found
        return await asyncio.to_thread(self._load_rules, addresses)

    async def decide(self, envelope: Envelope, message: Message) -> Decision:
        config = self._config()
        now = self._clock()
        recipients = tuple(dict.fromkeys(r.lower() for r in envelope.rcpt_tos))
        wanted = list(recipients)
        sender = (envelope.sasl_username or "").lower()
        if sender:
            wanted.append(sender)
        rules = await self._rules(wanted)
        scans = MessageScans(message, envelope, self.clamd, self.spamd)

        outbound: list[RecipientOutcome] | None = None
        message_effects: tuple[Effect, ...] = ()
        if sender:
            outbound, message_effects = await self._outbound(
                envelope, message, recipients, rules, scans, config, now
            )
        if outbound is not None:
            outcomes = tuple(outbound)
        elif len(recipients) == 1:  # most mail: no tasks to gather
            outcomes = (await self._inbound(envelope, message, recipients[0], rules.get(recipients[0]),
                                            scans, config, now),)
        else:
            outcomes = tuple(
                await asyncio.gather(
                    *(self._inbound(envelope, message, r, rules.get(r), scans, config, now) for r in recipients)
                )
            )
        decision = Decision(
            envelope,
            outcomes,
            message_effects,
            {"virus": scans.virus_scans, "spam": scans.spam_scans},
        )
        log_decision(decision)
        return decision

    def _submission(
        self, envelope: Envelope, message: Message, sender_rules: MailboxRules | None,
        scans: MessageScans, config: Config, now: dt.datetime,
    ) -> SubmissionContext:
        sender = (envelope.sasl_username or "").lower()
        rules = sender_rules or MailboxRules(address=sender, domain=domain_of(sender))
        policy = config.policies.for_domain(rules.domain)
        client = overseas.OutboundContext(
            envelope.client_address, rules, policy, now, self._country_of, config.conf.web.base_url
        )
        own = RecipientContext(envelope, message, sender, rules, policy, config.filters, scans, now)
        return SubmissionContext(client, own)

    async def check_submission(self, envelope: Envelope) -> SmtpReply | None:
        """The overseas sending check alone, before any message data (SPEC §9).

        For policy delegation at RCPT time and the milter at MAIL time: the
        refusal for an authenticated submission, or ``None`` to go on.
        """
        sender = (envelope.sasl_username or "").lower()
        if not sender:
            return None
        rules = await self._rules([sender])
        message = Message(b"")
        scans = MessageScans(message, envelope, None, None)  # the overseas check scans nothing
        sctx = self._submission(envelope, message, rules.get(sender), scans, self._config(), self._clock())
        verdict, trace, _ = await run_chain(ENVELOPE_CHAIN, sctx)
        log.debug("overseas sasl_username=%s client=%s result=%s", sender, envelope.client_address,
                  trace[0].result)
        if verdict is None:
            return None
        return reply_for(disposition_for(verdict, None), verdict)

    async def _inbound(
        self,
        envelope: Envelope,
        message: Message,
        recipient: str,
        rules: MailboxRules | None,
        scans: MessageScans,
        config: Config,
        now: dt.datetime,
    ) -> RecipientOutcome:
        if rules is None:
            # Not one of our mailboxes: the MTA delivers or relays it as usual.
            return RecipientOutcome(recipient, Disposition.DELIVER, None, (), (), True, False)
        policy = config.policies.for_domain(rules.domain)
        ctx = RecipientContext(envelope, message, recipient, rules, policy, config.filters, scans, now)
        verdict, trace, notes = await run_chain(INBOUND_CHAIN, ctx)
        disposition = disposition_for(verdict, ctx)
        effects, deliver_local = plan_effects(disposition, verdict, ctx, notes)
        reply = reply_for(disposition, verdict)
        return RecipientOutcome(
            recipient, disposition, verdict, trace, effects, deliver_local, True, reply
        )

    async def _outbound(
        self,
        envelope: Envelope,
        message: Message,
        recipients: tuple[str, ...],
        rules: dict[str, MailboxRules],
        scans: MessageScans,
        config: Config,
        now: dt.datetime,
    ) -> tuple[list[RecipientOutcome] | None, tuple[Effect, ...]]:
        """The outbound chain (SPEC §7, §9).  ``None`` when the submission may go on."""
        sender = (envelope.sasl_username or "").lower()
        sctx = self._submission(envelope, message, rules.get(sender), scans, config, now)
        verdict, trace, notes = await run_chain(OUTBOUND_CHAIN, sctx)
        disposition = disposition_for(verdict, None)
        effects, _ = plan_effects(disposition, verdict, sctx.sender, notes, "outbound")
        if verdict is not None:
            reply = reply_for(disposition, verdict)
            return [
                RecipientOutcome(r, disposition, verdict, trace, (), False, r in rules, reply)
                for r in recipients
            ], effects
        # Passed: each recipient still gets its own mailbox's inbound decision.
        outcomes = await asyncio.gather(
            *(self._inbound(envelope, message, r, rules.get(r), scans, config, now) for r in recipients)
        )
        # Content changes of the submission (the sender's scan could not run) go
        # on every copy that is delivered, once.
        notes_for_copies = tuple(e for e in effects if isinstance(e, AddHeader))
        out = []
        for o in outcomes:
            changes = o.effects
            if o.deliver_local:
                changes += tuple(n for n in notes_for_copies if n not in changes)
            out.append(dataclasses.replace(o, trace=trace + o.trace, effects=changes))
        return out, ()
