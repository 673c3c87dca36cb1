"""Sessions of the mailbox admin page (SPEC §1: login, logout, idle expiry).

The browser holds a random token; the table holds only its SHA-256, so a
copy of the database does not let anyone take over a session.  Each row
belongs to one mailbox and carries that session's CSRF token.  A session
ends at logout, after ``idle_seconds`` without a request, after
``max_age_seconds`` in all, or when its mailbox is deleted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session, aliased

from mailadmin.errors import NotFound
from mailadmin.mailtext.addresses import canonical_address
from mailadmin.store.models import Mailbox, WebSession

TOKEN_BYTES = 32


def _mailbox_id(session: Session, address: str) -> int:
    found = session.scalar(select(Mailbox.id).where(Mailbox.address == canonical_address(address)))
    if found is None:
        raise NotFound(f"mailbox {address} does not exist")
    return found


@dataclass(frozen=True, slots=True)
class SessionInfo:
    mailbox: str
    csrf_token: str
    created_at: dt.datetime
    acting_as: str | None = None  # the mailbox an admin chose from its contract


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_session(session: Session, address: str, now: dt.datetime) -> str:
    """A new session of ``address``; returns the token for the browser's cookie."""
    mailbox_id = _mailbox_id(session, address)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(WebSession(token_hash=_hash(token), mailbox_id=mailbox_id,
                           csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
                           created_at=now, last_seen_at=now))
    session.flush()
    return token


# The idle clock is written at most this often.  Writing it on every request
# made every page view a write transaction, and SQLite runs one writer at a
# time: with 50 sessions browsing, page views queued behind each other's
# session writes (bench/web_load.py).  A session may so end up to this much
# before its idle timeout, never after it.
TOUCH_EVERY_SECONDS = 60

_ACTING = aliased(Mailbox)
# One query for what every request needs: the session, its mailbox's address
# and the mailbox it acts on.
_TOUCH_Q = (
    select(WebSession.csrf_token, WebSession.created_at, WebSession.last_seen_at,
           Mailbox.address, _ACTING.address)
    .join(Mailbox, Mailbox.id == WebSession.mailbox_id)
    .outerjoin(_ACTING, _ACTING.id == WebSession.acting_mailbox_id)
    .where(WebSession.token_hash == bindparam("token_hash"))
)


def touch_session(
    session: Session, token: str, now: dt.datetime, *, idle_seconds: int, max_age_seconds: int,
    touch_every_seconds: int = TOUCH_EVERY_SECONDS,
) -> SessionInfo | None:
    """The live session of ``token``, its idle clock restarted (written when it
    is ``touch_every_seconds`` old or more); None (and the row deleted) when it
    is unknown or expired."""
    token_hash = _hash(token)
    found = session.execute(_TOUCH_Q, {"token_hash": token_hash}).first()
    if found is None:
        return None
    csrf_token, created_at, last_seen_at, address, acting = found
    if (now - last_seen_at > dt.timedelta(seconds=idle_seconds)
            or now - created_at > dt.timedelta(seconds=max_age_seconds)):
        session.execute(delete(WebSession).where(WebSession.token_hash == token_hash))
        return None
    if now - last_seen_at >= dt.timedelta(seconds=touch_every_seconds):
        session.execute(update(WebSession).where(WebSession.token_hash == token_hash)
                        .values(last_seen_at=now))
    return SessionInfo(address, csrf_token, created_at, acting)


def set_acting(session: Session, token: str, address: str | None) -> None:
    """Make the session of ``token`` act on ``address`` (None: on its own mailbox).
    The caller has checked that the session's mailbox may manage ``address``."""
    row = session.get(WebSession, _hash(token))
    if row is None:
        raise NotFound("session")
    row.acting_mailbox_id = None if address is None else _mailbox_id(session, address)
    session.flush()


def delete_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.token_hash == _hash(token)))


def delete_mailbox_sessions(session: Session, address: str) -> None:
    """End every session of ``address`` (after a password change elsewhere, say)."""
    session.execute(delete(WebSession).where(WebSession.mailbox_id == _mailbox_id(session, address)))


def purge_sessions(session: Session, idle_before: dt.datetime) -> int:
    """Delete sessions idle since before ``idle_before``; returns how many."""
    result = session.execute(delete(WebSession).where(WebSession.last_seen_at < idle_before))
    return int(getattr(result, "rowcount", 0))
