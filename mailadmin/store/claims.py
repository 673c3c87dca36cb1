"""Claims that must hold across threads and processes, each one atomic statement.

- The auto-reply claim (SPEC §6): at most one reply per sender per window per
  mailbox, exactly one even when several messages from the sender arrive at
  the same moment in several daemon processes.  Reading "when did we last
  reply?" and then writing would let two processes both reply; instead one
  ``INSERT … ON CONFLICT DO UPDATE … WHERE`` either takes the claim (one row
  inserted or updated) or does nothing, and the database serialises the
  writers.
- Login throttling (SPEC §1): failures are counted per key (an address or a
  client IP) within a window.

Nothing here commits: the claim becomes visible to other processes when the
caller's transaction commits, together with the reply it enqueued.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailadmin.errors import ConfigError
from mailadmin.store.models import AutoReplyClaim, ChangeEvent, LoginFailure, QuarantineItem, UTCDateTime

_claims = cast(Table, AutoReplyClaim.__table__)


def _key(address: str) -> str:
    return address.strip().strip("<>").strip().lower()


def _may_reply(last_sent_at: Any, cutoff: Any) -> Any:
    """The window rule itself: a new reply may go when the last one went at or
    before ``cutoff`` (now − window).  On a column it is the claim's SQL
    condition, on a datetime the dry run's and :class:`KnownClaims`' answer;
    nobody words it again."""
    return last_sent_at <= cutoff


_CLAIM_STATEMENTS: dict[str, Any] = {}


def claim_statement(dialect: str) -> Any:
    """The one INSERT … ON CONFLICT … DO UPDATE … WHERE statement of a claim,
    built once per dialect; parameters ``mailbox``, ``sender``, ``now``, ``cutoff``."""
    statement = _CLAIM_STATEMENTS.get(dialect)
    if statement is not None:
        return statement
    insert_construct: Any
    if dialect == "sqlite":
        insert_construct = sqlite.insert
    elif dialect == "postgresql":
        insert_construct = postgresql.insert
    else:
        raise ConfigError("database.url", None, f"auto-reply claims need SQLite or PostgreSQL, not {dialect}")
    # inline(): no RETURNING of the new id, so the row count is the statement's own.
    insert_statement = insert_construct(_claims).values(
        mailbox_address=bindparam("mailbox"), sender=bindparam("sender"),
        last_sent_at=bindparam("now", type_=UTCDateTime()),
    ).inline()
    statement = insert_statement.on_conflict_do_update(
        index_elements=[_claims.c.mailbox_address, _claims.c.sender],
        set_={"last_sent_at": insert_statement.excluded.last_sent_at},
        where=_may_reply(_claims.c.last_sent_at, bindparam("cutoff", type_=UTCDateTime())),
    )
    _CLAIM_STATEMENTS[dialect] = statement
    return statement


class KnownClaims:
    """Claims this process has seen taken, so a sender who writes again within
    the window costs no statement (SPEC §6: at most one reply per window).

    Exact, not a guess: a claim's time only moves forward (it is renewed only
    once its window has passed) and a claim is deleted only when it has
    expired or its mailbox is deleted, whose address is never issued again.
    So a remembered time is never later than the stored one, and "claimed
    within the window" read from here is what the database would answer.
    Only committed claims may be remembered (the caller does it after its
    commit): a claim of a transaction that failed was never taken.
    Bounded: the least recently used entries go first.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._taken: OrderedDict[tuple[str, str], dt.datetime] = OrderedDict()

    def claimed(self, mailbox: str, sender: str, now: dt.datetime, window: dt.timedelta) -> bool:
        key = (_key(mailbox), _key(sender))
        with self._lock:
            last = self._taken.get(key)
            if last is None:
                return False
            self._taken.move_to_end(key)
        return not _may_reply(last, now - window)

    def remember(self, mailbox: str, sender: str, last_sent_at: dt.datetime) -> None:
        key = (_key(mailbox), _key(sender))
        with self._lock:
            known = self._taken.get(key)
            if known is None or known < last_sent_at:
                self._taken[key] = last_sent_at
            self._taken.move_to_end(key)
            while len(self._taken) > self._max_entries:
                self._taken.popitem(last=False)


def claim_auto_reply(
    session: Session, mailbox: str, sender: str, now: dt.datetime, window: dt.timedelta
) -> bool:
    """Take the right to auto-reply from ``mailbox`` to ``sender`` at ``now``.

    True iff no reply was claimed within ``window`` before ``now``; the claim
    then records ``now``.  Senders are compared lower-case.  A row inserted
    or updated counts 1; a conflict whose WHERE fails counts 0, on SQLite and
    PostgreSQL alike.
    """
    statement = claim_statement(session.get_bind().dialect.name)
    # SQLAlchemy keeps an INSERT's row count only when asked to (psycopg would give -1).
    result = cast(
        CursorResult[Any],
        session.execute(statement, {"mailbox": _key(mailbox), "sender": _key(sender), "now": now,
                                    "cutoff": now - window},
                        execution_options={"preserve_rowcount": True}),
    )
    return result.rowcount == 1


_LAST_SENT_Q = select(AutoReplyClaim.last_sent_at).where(
    AutoReplyClaim.mailbox_address == bindparam("mailbox"), AutoReplyClaim.sender == bindparam("sender"))


def last_auto_reply(session: Session, mailbox: str, sender: str) -> dt.datetime | None:
    """When the claim of ``mailbox`` → ``sender`` was last taken, if ever."""
    return session.scalar(_LAST_SENT_Q, {"mailbox": _key(mailbox), "sender": _key(sender)})


def is_auto_reply_claimed(
    session: Session, mailbox: str, sender: str, now: dt.datetime, window: dt.timedelta
) -> bool:
    """Whether a reply from ``mailbox`` to ``sender`` was claimed within ``window``
    before ``now`` (read only: what a dry run reports)."""
    last = last_auto_reply(session, mailbox, sender)
    return last is not None and not _may_reply(last, now - window)


def forget_auto_reply_claims(session: Session, mailbox: str) -> int:
    """Drop every claim of ``mailbox`` (when it is deleted)."""
    result = cast(
        CursorResult[Any],
        session.execute(delete(AutoReplyClaim).where(AutoReplyClaim.mailbox_address == _key(mailbox))),
    )
    return result.rowcount


def purge_auto_reply_claims(session: Session, older_than: dt.datetime) -> int:
    """Delete claims last taken before ``older_than`` (they no longer block anything)."""
    result = cast(
        CursorResult[Any],
        session.execute(delete(AutoReplyClaim).where(AutoReplyClaim.last_sent_at < older_than)),
    )
    return result.rowcount


# ---------------------------------------------------------------- login throttling


def record_login_failure(session: Session, key: str, now: dt.datetime) -> None:
    """Count one failed login for ``key`` (e.g. ``address:taro@example.jp``, ``ip:192.0.2.1``)."""
    session.add(LoginFailure(key=key, failed_at=now))
    session.flush()


def count_login_failures(
    session: Session, key: str, now: dt.datetime, window: dt.timedelta
) -> int:
    """Failed logins of ``key`` within ``window`` before ``now``."""
    count = session.scalar(
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.key == key, LoginFailure.failed_at > now - window)
    )
    return int(count or 0)


def clear_login_failures(session: Session, key: str) -> None:
    """Forget the failures of ``key`` (after a successful login)."""
    session.execute(delete(LoginFailure).where(LoginFailure.key == key))


def purge_login_failures(session: Session, older_than: dt.datetime) -> int:
    """Delete failures recorded before ``older_than`` (outside every window)."""
    result = cast(
        CursorResult[Any],
        session.execute(delete(LoginFailure).where(LoginFailure.failed_at < older_than)),
    )
    return result.rowcount


def take_for_notice(session: Session, model: type[QuarantineItem] | type[ChangeEvent],
                    ids: Sequence[int], now: dt.datetime) -> bool:
    """Mark the ``model`` rows ``ids`` notified unless another process got there
    first (then False: the caller rolls back and sends nothing).  The claim of
    every notice job: quarantine notices and change notices."""
    result = cast(CursorResult[Any], session.execute(
        update(model)
        .where(model.id.in_(list(ids)), model.notified_at.is_(None))
        .values(notified_at=now)
        .execution_options(synchronize_session=False),
        execution_options={"preserve_rowcount": True},
    ))
    return result.rowcount == len(ids)
