"""What the after-queue content filter has already taken (SPEC §10; Postfix
FILTER_README, the after-queue contract).

The filter answers ``250`` only after a message's effects are stored; if it
dies between that commit and the ``250`` reaching the MTA (a SIGKILL, an
OOM kill, a host crash), the MTA logs "message may be sent more than once"
and hands the same queued message over again.  Deciding it again would store
every effect a second time: a second re-injected copy, forward, virus report
and quarantine row.

So the filter keys each message by the MTA's queue ID (XFORWARD ``IDENT``)
and the SHA-256 of its bytes, and records the key per recipient in the
transaction of the effects (``engine.execute``).  A message handed over
again finds its recipients recorded and is answered ``250`` without being
applied again; recipients not recorded (the MTA may merge deferred
recipients of one queue file into one delivery) are decided as usual.  The
queue ID alone is not enough (short Postfix queue IDs are reused over time),
the digest alone neither (two messages can be byte-identical); both together
name one queued message.  Without XFORWARD there is no queue ID and nothing
is recognised: every hand-over is decided afresh, as before.

Rows are purged after :data:`KEPT_DAYS`, longer than an MTA keeps a message
queued (Postfix ``maximal_queue_lifetime``, 5 days by default).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from mailadmin.store.models import FilteredDelivery

KEPT_DAYS = 7


def digest(queue_id: str, raw: bytes) -> str:
    """The key of one queued message: its queue ID and its bytes."""
    h = hashlib.sha256(queue_id.encode("utf-8", "surrogateescape"))
    h.update(b"\0")
    h.update(hashlib.sha256(raw).digest())
    return h.hexdigest()


def _rcpt(address: str) -> str:
    return address.strip().strip("<>").strip().lower()[:320]


def taken(session: Session, key: str, rcpt_tos: Sequence[str]) -> set[str]:
    """Which of ``rcpt_tos`` (lower-cased) the filter already took under ``key``."""
    wanted = {_rcpt(r) for r in rcpt_tos}
    rows = session.scalars(select(FilteredDelivery.recipient).where(FilteredDelivery.digest == key,
                                                                    FilteredDelivery.recipient.in_(wanted)))
    return set(rows)


def record(session: Session, key: str, rcpt_tos: Sequence[str], now: dt.datetime) -> None:
    """Record ``rcpt_tos`` as taken under ``key``; commits with the caller's transaction.
    The unique (digest, recipient) constraint makes a concurrent second hand-over
    fail its transaction (the MTA retries and then finds it recorded)."""
    for rcpt in sorted({_rcpt(r) for r in rcpt_tos}):
        session.add(FilteredDelivery(digest=key, recipient=rcpt, created_at=now))
    session.flush()


def purge(session: Session, older_than: dt.datetime) -> int:
    result = cast(CursorResult[Any], session.execute(
        delete(FilteredDelivery).where(FilteredDelivery.created_at < older_than)))
    return result.rowcount
