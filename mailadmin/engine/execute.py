"""Apply a decision's database effects in one transaction (DESIGN.md "Decide first, then act").

One transaction holds the quarantine rows, the auto-reply claims and every
outbox row (forwards, auto-replies, virus reports, re-injected copies), so a
crash leaves either all of them or none; the MTA, which has not yet been told
the message is accepted, then retries.  Mail the daemon creates always goes
through the outbox (SPEC §10: relay down = kept and retried, never dropped).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from mailadmin import metrics
from mailadmin.engine.decide import ContentGroup, Decision
from mailadmin.engine.effects import LOOP_HEADER, AutoReplyTo, ForwardTo, StoreQuarantine, VirusReportTo
from mailadmin.engine.scans import VirusScanner, infected_parts
from mailadmin.mailtext.compose import compose_auto_reply, compose_virus_report
from mailadmin.mailtext.rewrite import add_header, render_copy
from mailadmin.message import Message
from mailadmin.mailtext.srs import SrsRewriter
from mailadmin.store import claims, filtered, outbox, quarantine
from mailadmin.store.batch import BatchWriter


async def _prepare_reports(decision: Decision, message: Message, clamd: VirusScanner | None,
                           postmaster: str) -> list[tuple[VirusReportTo, bytes]]:
    reports: list[tuple[VirusReportTo, bytes]] = []
    wanted = [e for o in decision.outcomes for e in o.effects if isinstance(e, VirusReportTo)]
    wanted += [e for e in decision.message_effects if isinstance(e, VirusReportTo)]
    if not wanted:
        return reports
    removed = await infected_parts(clamd, message.raw) if clamd is not None else None
    for report in wanted:
        body = compose_virus_report(
            message.raw, to=report.to, virus=report.virus,
            direction="outbound" if report.direction == "outbound" else "inbound",
            removed_parts=removed or (), postmaster=postmaster,
        )
        reports.append((report, body))
    return reports


def has_store_effects(decision: Decision, reinject: Sequence[ContentGroup] = (),
                      known: claims.KnownClaims | None = None, now: dt.datetime | None = None) -> bool:
    """Whether ``decision`` writes anything (most messages don't: then no
    transaction, no thread).  An auto-reply already claimed in ``known`` is
    nothing to write."""
    if reinject or decision.message_effects:
        return True
    for o in decision.outcomes:
        for effect in o.effects:
            if isinstance(effect, AutoReplyTo):
                if (known is None or now is None
                        or not known.claimed(o.recipient, effect.to, now, dt.timedelta(hours=effect.window_hours))):
                    return True
            elif isinstance(effect, (StoreQuarantine, ForwardTo, VirusReportTo)):
                return True
    return False


async def execute(
    decision: Decision,
    message: Message,
    *,
    session_factory: Callable[[], Session],
    clamd: VirusScanner | None,
    now: dt.datetime,
    reinject: Sequence[ContentGroup] = (),
    postmaster: str = "postmaster",
    srs: SrsRewriter | None = None,
    writer: BatchWriter | None = None,
    known_claims: claims.KnownClaims | None = None,
    taken: tuple[str, Sequence[str]] | None = None,
) -> None:
    """Write every database effect of ``decision``; enqueue ``reinject`` groups' copies.
    With ``srs``, forwarded copies leave with the SRS-rewritten sender (SPEC §3).
    With ``writer``, the transaction is shared with concurrent messages'
    (store/batch.py); ``known_claims`` answers auto-reply claims this process
    has already seen taken, and learns the ones this transaction takes.
    ``taken`` = (key, recipients): the content filter's record that it took the
    message for them (store/filtered.py), in the same transaction."""
    if taken is None and not has_store_effects(decision, reinject, known_claims, now):
        suppressed = sum(isinstance(e, AutoReplyTo) for o in decision.outcomes for e in o.effects)
        if suppressed:
            metrics.AUTO_REPLIES.labels("suppressed", "already_replied").inc(suppressed)
        return
    reports = await _prepare_reports(decision, message, clamd, postmaster)

    def work(session: Session) -> _Written:
        return _write(session, decision, message, reports, now, reinject, srs, known_claims, taken)

    if writer is not None:
        written = await writer.run(work)
    else:
        written = await asyncio.to_thread(_in_transaction, session_factory, work)
    # Committed: the claims taken or seen are now true for every process.
    if known_claims is not None:
        for mailbox, sender, when in written.claims:
            known_claims.remember(mailbox, sender, when)
    if written.sent:
        metrics.AUTO_REPLIES.labels("sent", "-").inc(written.sent)
    if written.already_replied:
        metrics.AUTO_REPLIES.labels("suppressed", "already_replied").inc(written.already_replied)


@dataclass(slots=True)
class _Written:
    sent: int = 0
    already_replied: int = 0
    # (mailbox, sender, last reply) of every claim taken or found taken
    claims: list[tuple[str, str, dt.datetime]] = field(default_factory=list)


def _in_transaction(session_factory: Callable[[], Session], work: Callable[[Session], _Written]) -> _Written:
    with session_factory() as session, session.begin():
        return work(session)


def _write(session: Session, decision: Decision, message: Message, reports: list[tuple[VirusReportTo, bytes]],
           now: dt.datetime, reinject: Sequence[ContentGroup], srs: SrsRewriter | None,
           known: claims.KnownClaims | None, taken: tuple[str, Sequence[str]] | None = None) -> _Written:
    """The statements of one decision, inside the caller's transaction; may
    run again after a failed batch, so everything it counts it returns."""
    env = decision.envelope
    sender = env.mail_from
    # Only forwards are rewritten: they leave from our servers for another domain.
    forward_sender = srs.forward(sender) if srs is not None else sender
    subject = message.subject or ""
    written = _Written()
    for o in decision.outcomes:
        for effect in o.effects:
            if isinstance(effect, StoreQuarantine):
                quarantine.add_item(
                    session, o.recipient, message.raw, sender=sender or "<>",
                    subject=subject, rule=effect.rule, entry=effect.entry, queue_id=env.queue_id,
                    now=now, retention_days=effect.retention_days,
                )
            elif isinstance(effect, ForwardTo):
                copy = render_copy(message.raw, o.content_changes)
                copy = add_header(copy, LOOP_HEADER, o.recipient)
                outbox.enqueue(session, purpose="forward", mail_from=forward_sender,
                               rcpt_tos=list(effect.addresses), message=copy, now=now)
            elif isinstance(effect, AutoReplyTo):
                window = dt.timedelta(hours=effect.window_hours)
                if known is not None and known.claimed(o.recipient, effect.to, now, window):
                    written.already_replied += 1
                elif not claims.claim_auto_reply(session, o.recipient, effect.to, now, window):
                    written.already_replied += 1
                    last = claims.last_auto_reply(session, o.recipient, effect.to) if known is not None else None
                    if last is not None:
                        written.claims.append((o.recipient, effect.to, last))
                else:
                    written.sent += 1
                    written.claims.append((o.recipient, effect.to, now))
                    reply = compose_auto_reply(message, effect.to, o.recipient,
                                               effect.subject, effect.body, now=now)
                    # RFC 3834 §3.3: auto-replies go out with a null envelope sender.
                    outbox.enqueue(session, purpose="auto_reply", mail_from="",
                                   rcpt_tos=[effect.to], message=reply, now=now)
    for report, body in reports:
        outbox.enqueue(session, purpose="virus_report", mail_from="",
                       rcpt_tos=[report.to], message=body, now=now)
    for group in reinject:
        outbox.enqueue(session, purpose="reinject", mail_from=sender,
                       rcpt_tos=list(group.recipients),
                       message=render_copy(message.raw, group.changes), now=now)
    if taken is not None:
        filtered.record(session, taken[0], taken[1], now)
    return written
