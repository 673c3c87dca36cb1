"""Auto-reply claims (SPEC §6: one reply per sender per window per mailbox) and
login throttling counters (SPEC §1).  Concurrency across processes is in
tests/integration/test_claims_concurrency.py."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.errors import ConfigError
from mailadmin.store import claims

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(hours=24)
MAILBOX = "taro@example.jp"


def test_one_claim_per_window(session: Session) -> None:
    assert claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW, DAY)
    assert not claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW, DAY)
    assert not claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW + DAY - dt.timedelta(seconds=1), DAY)
    # exactly one window later the next reply may go
    assert claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW + DAY, DAY)
    assert not claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW + DAY, DAY)
    assert claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW + 3 * DAY, DAY)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("alice@example.org", "ALICE@Example.ORG"),
        ("alice@example.org", "<alice@example.org>"),
        ("Alice@example.org", " alice@example.org "),
    ],
)
def test_senders_are_compared_lower_case(session: Session, first: str, second: str) -> None:
    assert claims.claim_auto_reply(session, MAILBOX, first, NOW, DAY)
    assert not claims.claim_auto_reply(session, "Taro@Example.JP", second, NOW, DAY)


def test_claims_are_per_sender_and_per_mailbox(session: Session) -> None:
    assert claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW, DAY)
    assert claims.claim_auto_reply(session, MAILBOX, "bob@example.org", NOW, DAY)
    assert claims.claim_auto_reply(session, "hanako@example.jp", "alice@example.org", NOW, DAY)
    assert not claims.claim_auto_reply(session, "hanako@example.jp", "alice@example.org", NOW, DAY)


def test_an_earlier_clock_never_reclaims(session: Session) -> None:
    assert claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW, DAY)
    assert not claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW - DAY, DAY)


def test_the_window_is_the_callers(session: Session) -> None:
    hour = dt.timedelta(hours=1)
    assert claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW, hour)
    assert claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW + hour, hour)


def test_is_claimed_only_reads(session: Session) -> None:
    assert not claims.is_auto_reply_claimed(session, MAILBOX, "alice@example.org", NOW, DAY)
    assert not claims.is_auto_reply_claimed(session, MAILBOX, "alice@example.org", NOW, DAY)
    assert claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW, DAY)
    assert claims.is_auto_reply_claimed(session, MAILBOX, "ALICE@example.org", NOW + dt.timedelta(hours=23), DAY)
    assert not claims.is_auto_reply_claimed(session, MAILBOX, "alice@example.org", NOW + DAY, DAY)


def test_a_rolled_back_claim_is_no_claim(factory: sessionmaker[Session]) -> None:
    # The claim commits with the reply it enqueued, or not at all.
    with factory() as session:
        assert claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW, DAY)
        session.rollback()
    with factory.begin() as session:
        assert claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW, DAY)
    with factory.begin() as session:
        assert not claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW, DAY)


def test_forget_and_purge_claims(session: Session) -> None:
    claims.claim_auto_reply(session, MAILBOX, "alice@example.org", NOW, DAY)
    claims.claim_auto_reply(session, MAILBOX, "bob@example.org", NOW + DAY, DAY)
    claims.claim_auto_reply(session, "hanako@example.jp", "alice@example.org", NOW, DAY)
    assert claims.purge_auto_reply_claims(session, NOW + dt.timedelta(seconds=1)) == 2
    assert claims.is_auto_reply_claimed(session, MAILBOX, "bob@example.org", NOW + DAY, DAY)
    assert claims.forget_auto_reply_claims(session, "TARO@example.jp") == 1
    assert not claims.is_auto_reply_claimed(session, MAILBOX, "bob@example.org", NOW + DAY, DAY)


# ---------------------------------------------------------------- login throttling

WINDOW = dt.timedelta(minutes=15)


def test_failures_are_counted_within_the_window(session: Session) -> None:
    key = "address:taro@example.jp"
    for minutes in (0, 5, 10):
        claims.record_login_failure(session, key, NOW + dt.timedelta(minutes=minutes))
    claims.record_login_failure(session, "ip:192.0.2.1", NOW)
    assert claims.count_login_failures(session, key, NOW + dt.timedelta(minutes=10), WINDOW) == 3
    assert claims.count_login_failures(session, key, NOW + dt.timedelta(minutes=15), WINDOW) == 2
    assert claims.count_login_failures(session, key, NOW + dt.timedelta(minutes=26), WINDOW) == 0
    assert claims.count_login_failures(session, "ip:192.0.2.1", NOW, WINDOW) == 1
    assert claims.count_login_failures(session, "ip:2001:db8::1", NOW, WINDOW) == 0


def test_clear_and_purge_failures(session: Session) -> None:
    for minutes in (0, 20):
        claims.record_login_failure(session, "address:a@example.jp", NOW + dt.timedelta(minutes=minutes))
        claims.record_login_failure(session, "ip:192.0.2.1", NOW + dt.timedelta(minutes=minutes))
    claims.clear_login_failures(session, "address:a@example.jp")
    assert claims.count_login_failures(session, "address:a@example.jp", NOW + dt.timedelta(minutes=20), WINDOW) == 0
    assert claims.purge_login_failures(session, NOW + dt.timedelta(minutes=10)) == 1
    assert claims.count_login_failures(session, "ip:192.0.2.1", NOW + dt.timedelta(minutes=20), 2 * WINDOW) == 1


# ---------------------------------------------------------------- the statement itself


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_claim_is_one_conditional_upsert(dialect: str) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    statement = claims.claim_statement(dialect)
    assert claims.claim_statement(dialect) is statement  # built once per dialect
    compiled = statement.compile(dialect=(sqlite if dialect == "sqlite" else postgresql).dialect())
    sql = " ".join(str(compiled).split())
    assert sql.startswith("INSERT INTO auto_reply_claim (mailbox_address, sender, last_sent_at) VALUES")
    assert "ON CONFLICT (mailbox_address, sender) DO UPDATE SET last_sent_at = excluded.last_sent_at" in sql
    cutoff = "?" if dialect == "sqlite" else "%(cutoff)s::TIMESTAMP WITH TIME ZONE"
    assert sql.endswith(f"WHERE auto_reply_claim.last_sent_at <= {cutoff}")  # no RETURNING
    assert set(compiled.params) == {"mailbox", "sender", "now", "cutoff"}


def test_other_databases_are_refused() -> None:
    with pytest.raises(ConfigError):
        claims.claim_statement("mysql")


# ---------------------------------------------------------------- claims this process has seen taken


def test_known_claims_answer_what_the_store_would() -> None:
    known = claims.KnownClaims()
    assert not known.claimed(MAILBOX, "a@example.org", NOW, DAY)  # never seen: ask the store
    known.remember("Taro@Example.jp", "<A@Example.org>", NOW)
    assert known.claimed(MAILBOX, "a@example.org", NOW + DAY - dt.timedelta(seconds=1), DAY)
    assert not known.claimed(MAILBOX, "a@example.org", NOW + DAY, DAY)  # the window has passed
    known.remember(MAILBOX, "a@example.org", NOW - DAY)  # an older time never replaces a newer one
    assert known.claimed(MAILBOX, "a@example.org", NOW + dt.timedelta(hours=1), DAY)


def test_known_claims_are_bounded_least_recently_used_first() -> None:
    known = claims.KnownClaims(max_entries=3)
    for n in range(3):
        known.remember(MAILBOX, f"s{n}@example.org", NOW)
    assert known.claimed(MAILBOX, "s0@example.org", NOW, DAY)  # s0 used: s1 is now the oldest
    known.remember(MAILBOX, "s3@example.org", NOW)
    assert [known.claimed(MAILBOX, f"s{n}@example.org", NOW, DAY) for n in range(4)] == [True, False, True, True]


def test_last_auto_reply_reads_the_stored_claim(session: Session) -> None:
    assert claims.last_auto_reply(session, MAILBOX, "a@example.org") is None
    assert claims.claim_auto_reply(session, MAILBOX, "A@example.org", NOW, DAY)
    assert claims.last_auto_reply(session, "TARO@example.jp", "a@example.org") == NOW
