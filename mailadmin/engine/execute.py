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

from sqlalchemy.orm import Session

from mailadmin import metrics
from mailadmin.engine.decide import ContentGroup, Decision
from mailadmin.engine.effects import (
    LOOP_HEADER,
    AutoReplyTo,
    ContentChange,
    ForwardTo,
    StoreQuarantine,
    TagSpam,
    VirusReportTo,
)
from mailadmin.engine.envelope import Message
from mailadmin.engine.scans import VirusScanner, infected_parts
from mailadmin.mailtext.compose import add_header, compose_auto_reply, compose_virus_report, tag_spam
from mailadmin.mailtext.srs import SrsRewriter
from mailadmin.store import claims, filtered, outbox, quarantine


def render_copy(raw: bytes, changes: Sequence[ContentChange]) -> bytes:
    """The bytes one group of recipients gets."""
    for change in changes:
        if isinstance(change, TagSpam):
            raw = tag_spam(raw, prefix=change.prefix, score=change.score,
                           threshold=change.threshold, rules=change.rules)
        else:
            raw = add_header(raw, change.name, change.value)
    return raw


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
    taken: tuple[str, Sequence[str]] | None = None,
) -> None:
    """Write every database effect of ``decision``; enqueue ``reinject`` groups' copies.
    With ``srs``, forwarded copies leave with the SRS-rewritten sender (SPEC §3).
    ``taken`` = (key, recipients): the content filter's record that it took the
    message for them (store/filtered.py), in the same transaction."""
    reports = await _prepare_reports(decision, message, clamd, postmaster)
    await asyncio.to_thread(_write, decision, message, reports, session_factory, now, reinject, srs, taken)


def _write(decision: Decision, message: Message, reports: list[tuple[VirusReportTo, bytes]],
           session_factory: Callable[[], Session], now: dt.datetime,
           reinject: Sequence[ContentGroup], srs: SrsRewriter | None = None,
           taken: tuple[str, Sequence[str]] | None = None) -> None:
    env = decision.envelope
    sender = env.mail_from
    # Only forwards are rewritten: they leave from our servers for another domain.
    forward_sender = srs.forward(sender) if srs is not None else sender
    subject = message.subject or ""
    replies = {"sent": 0, "already_replied": 0}  # counted once the transaction commits
    with session_factory() as session, session.begin():
        for o in decision.outcomes:
            for effect in o.effects:
                if isinstance(effect, StoreQuarantine):
                    quarantine.add_item(
                        session, o.recipient, message.raw, sender=sender or "<>",
                        subject=subject, reason=effect.reason, queue_id=env.queue_id,
                        now=now, retention_days=effect.retention_days,
                    )
                elif isinstance(effect, ForwardTo):
                    copy = render_copy(message.raw, o.content_changes)
                    copy = add_header(copy, LOOP_HEADER, o.recipient)
                    outbox.enqueue(session, purpose="forward", mail_from=forward_sender,
                                   rcpt_tos=list(effect.addresses), message=copy, now=now)
                elif isinstance(effect, AutoReplyTo):
                    window = dt.timedelta(hours=effect.window_hours)
                    if not claims.claim_auto_reply(session, o.recipient, effect.to, now, window):
                        replies["already_replied"] += 1
                    else:
                        replies["sent"] += 1
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
    if replies["sent"]:
        metrics.AUTO_REPLIES.labels("sent", "-").inc(replies["sent"])
    if replies["already_replied"]:
        metrics.AUTO_REPLIES.labels("suppressed", "already_replied").inc(replies["already_replied"])

