"""Background loops: the outbox sender, the quarantine purge and the quarantine
notices (SPEC §4, §8, §10; DESIGN.md "One idea": jobs drain the outbox via
the relay).

Each ``run_*`` coroutine runs until its ``stop`` event is set; ``mailadmin
serve`` starts them in the jobs role.  Every one may run in several processes
against one store at once:

- the outbox sender leases the items it sends (``outbox.claim_due``), so no
  message goes out twice; it wakes when this process enqueued something
  (``runtime.outbox_wakeup``) and polls for what other processes enqueued;
- the purge deletes with plain conditional DELETEs, harmless when repeated;
- a notice marks its items notified with a conditional UPDATE in the same
  transaction that enqueues it, so of two processes only one sends it.

Outbox outcomes: accepted -> sent; relay unreachable, timing out or
answering 4xx -> retried with the outbox backoff, never dropped; a 5xx for
every recipient -> kept but not retried (``outbox.mark_undeliverable``, logged
at ERROR) — retrying a permanent refusal only repeats it, and mail the daemon
created must not circle; the postmaster can requeue it.  Recipients the relay
refused while taking others are logged at ERROR; those it deferred are
retried alone.

Quarantine notices (SPEC §8): for a mailbox with notices ON, the items not
yet announced go out as one notice, at most once per the policy's
``quarantine.notice_interval_minutes``; items caught within the interval wait
for the next notice.  When the last notice went is the latest ``notified_at``
of the mailbox's quarantine items.

Change notices (seed 001): the change events a page change recorded are
sent per mailbox in batches (``contact.notice_batch_seconds`` from the
first), to the mailbox's confirmed contact address or, without one, to the
mailbox itself, and to every old contact address a change in the batch
names.  The batch is marked told in the transaction that enqueues it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from mailadmin import metrics, quarantine_links
from mailadmin.config.model import Config
from mailadmin.message import MessageInfo
from mailadmin.errors import NotFound, ServiceError, ServiceProtocolError, ServiceUnavailable
from mailadmin.mailtext.addresses import domain_of
from mailadmin.mailtext.account_mail import ChangeText, NoticeChange, compose_change_notice, format_moment
from mailadmin.mailtext.compose import compose_quarantine_notice
from mailadmin.services import relay
from mailadmin.store import change_events, claims, contact, outbox, quarantine, retention
from mailadmin.store.models import QuarantineItem
from mailadmin.wiring import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")

# Other processes enqueue too (the web UI releasing an item, another MTA
# host's filter); this is how long their mail may wait for this sender.
OUTBOX_POLL_SECONDS = 2.0
# Longer than a whole SMTP dialogue at the relay's timeout, so a lease never
# runs out while the item is still being sent.
OUTBOX_LEASE_SECONDS = 600.0
OUTBOX_BATCH = 50
OUTBOX_PARALLEL_SENDS = 4
# After a database failure, wait this long before trying again.
ERROR_PAUSE_SECONDS = 5.0
# How often the outcome of a send is written again while the store is unavailable.
RECORD_RETRY_SECONDS = 1.0

PURGE_INTERVAL_SECONDS = 3600.0
SENT_KEPT_DAYS = 7

NOTICE_POLL_SECONDS = 60.0
NOTICE_PURPOSE = "quarantine_notice"

# A batch is due notice_batch_seconds (default 60) after its first change;
# this much later at most it is sent.
CHANGE_NOTICE_POLL_SECONDS = 5.0
CHANGE_NOTICE_PURPOSE = "change_notice"


async def _in_session(runtime: Runtime, work: Callable[[Session], T]) -> T:
    """Run ``work`` in one committed transaction, in a worker thread."""

    def run() -> T:
        with runtime.store.session_factory() as session, session.begin():
            return work(session)

    return await asyncio.to_thread(run)


async def _pause(stop: asyncio.Event, seconds: float, wakeup: asyncio.Event | None = None) -> None:
    """Sleep ``seconds``, or less when ``stop`` (or ``wakeup``) is set."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wakeup is not None:
        waiters.append(asyncio.ensure_future(wakeup.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _log_loop_error(job: str, exc: Exception) -> None:
    # A loop outlives any one failure: the store or a bug must not end the job.
    if isinstance(exc, ServiceError):
        log.error("%s: %s; trying again in %.0f s", job, exc, ERROR_PAUSE_SECONDS)
    else:
        log.exception("%s failed; trying again in %.0f s", job, ERROR_PAUSE_SECONDS)


# ---------------------------------------------------------------- outbox


async def send_item(runtime: Runtime, item: outbox.OutboxItem) -> str:
    """Send one leased outbox item through the relay and record the outcome;
    returns ``sent``, ``retry`` or ``undeliverable``."""
    conf = runtime.config().conf.relay
    error: str | None = None
    outcome = "sent"
    try:
        delivery = await relay.send(conf, item.mail_from, item.rcpt_tos, item.message)
    except ServiceUnavailable as exc:
        outcome, error = "retry", exc.detail
        delivery = None
    except ServiceProtocolError as exc:
        outcome, error = "undeliverable", exc.detail
        delivery = None
    except Exception as exc:  # never lose an item to a bug: keep it and retry
        log.exception("outbox id=%d: unexpected failure while sending", item.id)
        outcome, error = "retry", f"internal error: {exc!r}"
        delivery = None
    remaining: list[str] | None = None
    if delivery is not None:
        if delivery.refused:
            log.error("outbox id=%d purpose=%s refused by the relay for some recipients: %s",
                      item.id, item.purpose, delivery.refused)
        if delivery.deferred:
            outcome = "retry"
            remaining = list(delivery.deferred)
        notes = [f"{r}: {reply}" for r, reply in {**delivery.refused, **delivery.deferred}.items()]
        error = "; ".join(notes) or None
    now = runtime.clock()

    def record(session: Session) -> None:
        if outcome == "sent":
            outbox.mark_sent(session, item.id, now, error=error)
        elif outcome == "retry":
            outbox.mark_failed(session, item.id, now, error or "not sent", remaining_rcpt_tos=remaining)
        else:
            outbox.mark_undeliverable(session, item.id, now, error or "refused")

    # The relay has taken the mail: a store outage while recording that must not
    # turn into a second send once the lease runs out (the fault tier's duplicates).
    # The record is retried here for half the lease; only a longer outage, or a
    # process killed right now, leaves the item to be sent again.
    deadline = time.monotonic() + OUTBOX_LEASE_SECONDS / 2
    while True:
        try:
            await _in_session(runtime, record)
            break
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("outbox id=%d: %s but not recorded (%s); recording again", item.id, outcome, exc)
            await asyncio.sleep(RECORD_RETRY_SECONDS)
    metrics.OUTBOX_RESULTS.labels({"sent": "sent", "retry": "retried"}.get(outcome, "refused")).inc()
    if outcome == "sent":
        log.info("outbox sent id=%d purpose=%s rcpt=%s", item.id, item.purpose, ",".join(item.rcpt_tos))
    elif outcome == "retry":
        log.warning("outbox retry id=%d purpose=%s attempt=%d error=%s",
                    item.id, item.purpose, item.attempts + 1, error)
    else:
        log.error("outbox undeliverable id=%d purpose=%s rcpt=%s error=%s (kept, not retried)",
                  item.id, item.purpose, ",".join(item.rcpt_tos), error)
    return outcome


async def drain_outbox(runtime: Runtime, *, limit: int = OUTBOX_BATCH) -> int:
    """Lease what is due now and send it; returns how many items were leased."""
    now = runtime.clock()
    items = await _in_session(
        runtime, lambda s: outbox.claim_due(s, now, OUTBOX_LEASE_SECONDS, limit)
    )
    if not items:
        return 0
    gate = asyncio.Semaphore(OUTBOX_PARALLEL_SENDS)

    async def one(item: outbox.OutboxItem) -> None:
        async with gate:
            await send_item(runtime, item)

    await asyncio.gather(*(one(item) for item in items))
    return len(items)


async def run_outbox(runtime: Runtime, stop: asyncio.Event) -> None:
    """Send outbox mail until ``stop`` is set."""
    while not stop.is_set():
        # Cleared before looking, so an enqueue during the drain wakes the next round.
        runtime.outbox_wakeup.clear()
        try:
            leased = await drain_outbox(runtime)
        except Exception as exc:
            _log_loop_error("outbox", exc)
            await _pause(stop, ERROR_PAUSE_SECONDS)
            continue
        if leased >= OUTBOX_BATCH:
            continue  # more may be due right now
        await _pause(stop, OUTBOX_POLL_SECONDS, runtime.outbox_wakeup)


# ---------------------------------------------------------------- purge


def _longest(config: Config, pick: Callable[[Any], int]) -> int:
    return max([pick(config.policies.default), *(pick(p) for p in config.policies.domains.values())])


async def purge_once(runtime: Runtime) -> dict[str, int]:
    """Delete what is past its keeping: quarantine items past retention, outbox
    mail sent more than :data:`SENT_KEPT_DAYS` ago, auto-reply claims and
    login failures older than every policy's window, and the content filter's
    records of the messages it took (store/filtered.py) after their keeping."""
    now = runtime.clock()
    config = runtime.config()
    keep = retention.Retention(
        sent_kept=dt.timedelta(days=SENT_KEPT_DAYS),
        reply_window=dt.timedelta(hours=_longest(config, lambda p: p.auto_reply.window_hours)),
        login_window=dt.timedelta(minutes=max(_longest(config, lambda p: p.login.window_minutes),
                                              _longest(config, lambda p: p.contact.request_window_minutes))),
        code_kept=dt.timedelta(hours=_longest(config, lambda p: p.contact.code_ttl_hours)),
    )
    counts = await _in_session(runtime, lambda s: retention.purge(s, now, keep))
    if any(counts.values()):
        log.info("purge %s", " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


async def _every(job: str, interval_seconds: float, once: Callable[[], Awaitable[object]],
                 stop: asyncio.Event) -> None:
    """Run ``once`` at start and then every ``interval_seconds`` until ``stop``;
    a failure is logged and retried after :data:`ERROR_PAUSE_SECONDS`."""
    while not stop.is_set():
        try:
            await once()
        except Exception as exc:
            _log_loop_error(job, exc)
            await _pause(stop, ERROR_PAUSE_SECONDS)
            continue
        await _pause(stop, interval_seconds)


async def run_quarantine_purge(runtime: Runtime, stop: asyncio.Event) -> None:
    """Purge at start and then every :data:`PURGE_INTERVAL_SECONDS` until ``stop``."""
    await _every("purge", PURGE_INTERVAL_SECONDS, lambda: purge_once(runtime), stop)


# ---------------------------------------------------------------- quarantine notices


def _notice_allowed(session: Session, config: Config, mailbox: str, now: dt.datetime) -> bool:
    interval = config.policies.for_domain(domain_of(mailbox)).quarantine.notice_interval_minutes
    return quarantine.notice_allowed(session, mailbox, now, interval)


class _Taken(Exception):
    """Another process announced these items meanwhile: roll back."""


def _shown_date(when: dt.datetime, zone: str) -> str:
    return when.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %z")


async def send_quarantine_notices(runtime: Runtime) -> int:
    """Enqueue the notices that are due now; returns how many."""
    now = runtime.clock()
    config = runtime.config()

    def due_notices(session: Session) -> list[tuple[str, list[quarantine.QuarantineInfo]]]:
        due: list[tuple[str, list[quarantine.QuarantineInfo]]] = []
        for mailbox, items in quarantine.pending_notices(session, now).items():
            if _notice_allowed(session, config, mailbox, now):
                due.append((mailbox, items))
        return due

    sent = 0
    for mailbox, items in await _in_session(runtime, due_notices):
        zone = config.policies.for_domain(domain_of(mailbox)).auto_reply.timezone
        infos = [MessageInfo(sender=i.sender, subject=i.subject, date=_shown_date(i.received_at, zone))
                 for i in items]
        # Each item's signed one-click links (SPEC §8), valid until its retention ends.
        secret = quarantine_links.load_secret(config.conf.quarantine_links.secret_file)
        base = config.conf.web.base_url
        links = [(base + quarantine_links.link_path(secret, "release", i.id, i.mailbox, i.expires_at),
                  base + quarantine_links.link_path(secret, "delete", i.id, i.mailbox, i.expires_at))
                 for i in items]
        notice = compose_quarantine_notice(
            mailbox, infos, config.conf.web.base_url,
            postmaster=f"postmaster@{domain_of(mailbox)}", now=now,
            links=links,
        )
        ids = [i.id for i in items]

        def enqueue(session: Session) -> None:
            # Checked again inside the transaction that takes the items: another
            # process may have sent a notice since the first look.
            if not _notice_allowed(session, config, mailbox, now) or not claims.take_for_notice(session, QuarantineItem, ids, now):
                raise _Taken()
            # A null envelope sender: a notice must never draw a bounce back.
            outbox.enqueue(session, purpose=NOTICE_PURPOSE, mail_from="",
                           rcpt_tos=[mailbox], message=notice, now=now)

        try:
            await _in_session(runtime, enqueue)
        except _Taken:
            log.debug("quarantine notice for %s sent by another process", mailbox)
            continue
        sent += 1
        log.info("quarantine notice mailbox=%s items=%d", mailbox, len(ids))
    if sent:
        runtime.outbox_wakeup.set()
    return sent


async def run_quarantine_notices(runtime: Runtime, stop: asyncio.Event) -> None:
    """Send due quarantine notices every :data:`NOTICE_POLL_SECONDS` until ``stop``."""
    await _every("quarantine notices", NOTICE_POLL_SECONDS, lambda: send_quarantine_notices(runtime), stop)


# ---------------------------------------------------------------- change notices (seed 001)


def _notice_recipients(session: Session, mailbox: str, events: Sequence[change_events.ChangeInfo]) -> list[str]:
    """The confirmed contact address, else the mailbox itself (no change goes
    unnoticed), then every old contact address the batch names."""
    try:
        found = contact.get_contact(session, mailbox)
        recipients = [found.address if found is not None else mailbox]
    except NotFound:
        recipients = []  # deleted meanwhile: the admin who deleted it is told
    for event in events:
        recipients.extend(event.also_notify)
    seen: dict[str, str] = {}
    for address in recipients:
        seen.setdefault(address.lower(), address)
    return list(seen.values())


def _notice_change(event: change_events.ChangeInfo, zone_name: str) -> NoticeChange:
    when_ja, when_en = format_moment(event.changed_at, zoneinfo.ZoneInfo(zone_name), zone_name)

    def text(lang: str) -> ChangeText:
        worded = event.details.get(lang) or event.details.get("en") or {}
        rows = [(str(label), [str(v) for v in values]) for label, values in worded.get("rows", [])]
        return ChangeText(str(worded.get("title", "")), rows)

    return NoticeChange(when_ja, when_en, event.client_ip, event.login, event.target, text("ja"), text("en"))


async def send_change_notices(runtime: Runtime) -> int:
    """Enqueue the change notices that are due now; returns how many mails."""
    now = runtime.clock()
    config = runtime.config()

    def batch_seconds(mailbox: str) -> int:
        return config.policies.for_domain(domain_of(mailbox)).contact.notice_batch_seconds

    batches = await _in_session(runtime, lambda s: change_events.due_batches(s, now, batch_seconds))
    base_url = config.conf.web.base_url
    reset_url = base_url.rstrip("/") + "/reset"
    sent = 0
    for mailbox, events in batches.items():
        zone = config.policies.for_domain(domain_of(mailbox)).auto_reply.timezone
        changes = [_notice_change(e, zone) for e in events]
        ids = [e.id for e in events]

        def enqueue(session: Session) -> int:
            if not change_events.take(session, ids, now):
                raise _Taken()
            count = 0
            for to in _notice_recipients(session, mailbox, events):
                message = compose_change_notice(
                    to, mailbox, changes, page_url=base_url, reset_url=reset_url,
                    postmaster=f"postmaster@{domain_of(mailbox)}", now=now,
                )
                # A null envelope sender: a notice must never draw a bounce back.
                outbox.enqueue(session, purpose=CHANGE_NOTICE_PURPOSE, mail_from="", rcpt_tos=[to],
                               message=message, now=now)
                count += 1
            return count

        try:
            mails = await _in_session(runtime, enqueue)
        except _Taken:
            log.debug("change notice for %s sent by another process", mailbox)
            continue
        sent += mails
        log.info("change notice mailbox=%s changes=%d mails=%d", mailbox, len(ids), mails)
    if sent:
        runtime.outbox_wakeup.set()
    return sent


async def run_change_notices(runtime: Runtime, stop: asyncio.Event) -> None:
    """Send due change notices every :data:`CHANGE_NOTICE_POLL_SECONDS` until ``stop``."""
    await _every("change notices", CHANGE_NOTICE_POLL_SECONDS, lambda: send_change_notices(runtime), stop)
