"""Web sessions: the idle clock is restarted by activity without writing on every request."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailadmin.store import web_sessions
from mailadmin.store.web_sessions import TOUCH_EVERY_SECONDS, WebSession
from tests.unit.store.conftest import MAILBOX, NOW

IDLE = 30 * 60
AGE = 12 * 60 * 60


def last_seen(session: Session) -> dt.datetime:
    value = session.scalar(select(WebSession.last_seen_at))
    assert value is not None
    return value


def touch(session: Session, token: str, at: dt.datetime) -> web_sessions.SessionInfo | None:
    return web_sessions.touch_session(session, token, at, idle_seconds=IDLE, max_age_seconds=AGE)


def test_a_request_soon_after_the_last_write_writes_nothing(session: Session) -> None:
    token = web_sessions.create_session(session, MAILBOX, NOW)
    later = NOW + dt.timedelta(seconds=TOUCH_EVERY_SECONDS - 1)
    assert touch(session, token, later) is not None
    assert last_seen(session) == NOW
    much_later = NOW + dt.timedelta(seconds=TOUCH_EVERY_SECONDS)
    assert touch(session, token, much_later) is not None
    session.flush()
    assert last_seen(session) == much_later


def test_activity_keeps_a_session_alive_and_idleness_ends_it_no_later_than_the_timeout(session: Session) -> None:
    token = web_sessions.create_session(session, MAILBOX, NOW)
    at = NOW
    for _ in range(10):  # a click every 20 s for a while
        at += dt.timedelta(seconds=20)
        assert touch(session, token, at) is not None
    # The idle clock was last written at most TOUCH_EVERY_SECONDS before the last click.
    assert at - last_seen(session) < dt.timedelta(seconds=TOUCH_EVERY_SECONDS)
    assert touch(session, token, at + dt.timedelta(seconds=IDLE - TOUCH_EVERY_SECONDS)) is not None
    idle_from = at + dt.timedelta(seconds=IDLE - TOUCH_EVERY_SECONDS)
    assert touch(session, token, idle_from + dt.timedelta(seconds=IDLE + 1)) is None
