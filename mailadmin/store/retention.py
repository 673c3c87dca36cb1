"""What is deleted once it is past its keeping, in one transaction (SPEC §4, §6,
§8; the purge job of :mod:`mailadmin.jobs`).

Quarantine items past their retention, outbox mail sent long enough ago,
auto-reply claims and login failures outside every policy's window,
verification codes past their life, change events already told, and the
content filter's records of the messages it took (store/filtered.py).  Every
statement is a plain conditional DELETE, harmless when several processes run
it at once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailadmin.store import change_events, claims, contact, filtered, outbox, quarantine


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of row is kept (the longest over every policy)."""

    sent_kept: dt.timedelta
    reply_window: dt.timedelta
    # Code-request counters share the login-failure table (other key prefixes).
    login_window: dt.timedelta
    code_kept: dt.timedelta


def purge(session: Session, now: dt.datetime, keep: Retention) -> dict[str, int]:
    """Delete what ``keep`` no longer keeps at ``now``; how many rows, per kind."""
    return {
        "quarantine": quarantine.purge_expired(session, now),
        "outbox_sent": outbox.purge_sent(session, now - keep.sent_kept),
        "auto_reply_claims": claims.purge_auto_reply_claims(session, now - keep.reply_window),
        "login_failures": claims.purge_login_failures(session, now - keep.login_window),
        "verification_codes": contact.purge_codes(session, now - keep.code_kept),
        "change_events": change_events.purge_notified(session, now - keep.sent_kept),
        "filtered": filtered.purge(session, now - dt.timedelta(days=filtered.KEPT_DAYS)),
    }
