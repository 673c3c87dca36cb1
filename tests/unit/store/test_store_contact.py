"""Contact addresses and one-time codes (seeds 000, 001): the code rules as a
table (expiry, tries, single use), and the store keeping only a hash."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailadmin.config.model import ContactPolicy
from mailadmin.errors import NotFound
from mailadmin.passwords import hash_password
from mailadmin.store import contact
from mailadmin.store.contact import CodeResult
from mailadmin.store.models import VerificationCode

from tests.unit.store.conftest import MAILBOX, NOW

POLICY = ContactPolicy()
OUTSIDE = "taro.home@outside.example"
HASH_OF_123456 = hash_password("123456")
LATER = NOW + dt.timedelta(hours=1)
EXPIRES = NOW + dt.timedelta(hours=POLICY.code_ttl_hours)


@pytest.mark.parametrize("entered, now, attempts, used, expected", [
    ("123456", NOW, 0, False, CodeResult.OK),
    (" 123456", NOW, 0, False, CodeResult.WRONG),          # the store strips; judge takes it as typed
    ("123457", NOW, 0, False, CodeResult.WRONG),
    ("12345", NOW, 0, False, CodeResult.WRONG),
    ("１２３４５６", NOW, 0, False, CodeResult.WRONG),       # full-width digits are not the code
    ("", NOW, 0, False, CodeResult.WRONG),
    ("123456", EXPIRES - dt.timedelta(seconds=1), 0, False, CodeResult.OK),
    ("123456", EXPIRES, 0, False, CodeResult.EXPIRED),     # the TTL is a closed end
    ("000000", EXPIRES, 0, False, CodeResult.EXPIRED),     # an expired code is not compared
    ("123456", NOW, POLICY.code_max_attempts - 1, False, CodeResult.OK),
    ("000000", NOW, POLICY.code_max_attempts - 2, False, CodeResult.WRONG),
    ("000000", NOW, POLICY.code_max_attempts - 1, False, CodeResult.EXHAUSTED),  # the last try
    ("123456", NOW, POLICY.code_max_attempts, False, CodeResult.EXHAUSTED),     # right, too late
    ("123456", NOW, 0, True, CodeResult.NONE),             # single use
])
def test_code_rules(entered: str, now: dt.datetime, attempts: int, used: bool, expected: CodeResult) -> None:
    assert contact.judge(code_hash=HASH_OF_123456, expires_at=EXPIRES, attempts=attempts, used=used,
                         entered=entered, now=now, max_attempts=POLICY.code_max_attempts) is expected


def test_codes_are_six_random_digits() -> None:
    codes = {contact.new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 190


@pytest.mark.parametrize("address, current, code", [
    ("", None, "contact.empty"),
    ("   ", None, "contact.empty"),
    ("not an address", None, "contact.invalid"),
    ("taro@", None, "contact.invalid"),
    ("a" * 250 + "@example.org", None, "contact.invalid"),
    ("Taro@Example.JP", None, "contact.self"),
    (OUTSIDE.upper(), OUTSIDE, "contact.unchanged"),
])
def test_contact_address_problems(address: str, current: str | None, code: str) -> None:
    assert [p.code for p in contact.contact_problems(MAILBOX, address, current)] == [code]


def test_a_valid_outside_address_has_no_problem() -> None:
    assert contact.contact_problems(MAILBOX, OUTSIDE, "old@outside.example") == []


def test_only_a_hash_of_the_code_is_stored(session: Session) -> None:
    code = contact.issue_code(session, MAILBOX, "contact", OUTSIDE, NOW, POLICY)
    row = session.scalars(select(VerificationCode)).one()
    assert code not in row.code_hash and row.code_hash.startswith("{ARGON2ID}$argon2id$")
    assert row.address == OUTSIDE and row.expires_at == EXPIRES and row.attempts == 0


def test_right_code_is_single_use(session: Session) -> None:
    code = contact.issue_code(session, MAILBOX, "contact", OUTSIDE, NOW, POLICY)
    assert contact.pending_code(session, MAILBOX, "contact", NOW, POLICY) == contact.PendingCode(
        OUTSIDE, EXPIRES, POLICY.code_max_attempts)
    assert contact.check_code(session, MAILBOX, "contact", code, LATER, POLICY) == contact.CodeCheck(
        CodeResult.OK, address=OUTSIDE)
    assert contact.check_code(session, MAILBOX, "contact", code, LATER, POLICY).result is CodeResult.NONE
    assert contact.pending_code(session, MAILBOX, "contact", LATER, POLICY) is None


def test_wrong_tries_count_and_void_the_code(session: Session) -> None:
    code = contact.issue_code(session, MAILBOX, "reset", OUTSIDE, NOW, POLICY)
    wrong = "000000" if code != "000000" else "111111"
    for left in range(POLICY.code_max_attempts - 1, 0, -1):
        assert contact.check_code(session, MAILBOX, "reset", wrong, LATER, POLICY) == contact.CodeCheck(
            CodeResult.WRONG, attempts_left=left)
    assert contact.check_code(session, MAILBOX, "reset", wrong, LATER, POLICY).result is CodeResult.EXHAUSTED
    # Void now, even for the right code: a new one is needed.
    assert contact.check_code(session, MAILBOX, "reset", code, LATER, POLICY).result is CodeResult.EXHAUSTED
    assert contact.pending_code(session, MAILBOX, "reset", LATER, POLICY) is None
    fresh = contact.issue_code(session, MAILBOX, "reset", OUTSIDE, LATER, POLICY)
    assert contact.check_code(session, MAILBOX, "reset", fresh, LATER, POLICY).result is CodeResult.OK


def test_code_expires(session: Session) -> None:
    code = contact.issue_code(session, MAILBOX, "contact", OUTSIDE, NOW, POLICY)
    assert contact.check_code(session, MAILBOX, "contact", code, EXPIRES, POLICY).result is CodeResult.EXPIRED
    assert contact.pending_code(session, MAILBOX, "contact", EXPIRES, POLICY) is None


def test_a_new_code_voids_the_old_one_and_purposes_are_apart(session: Session) -> None:
    first = contact.issue_code(session, MAILBOX, "contact", "a@outside.example", NOW, POLICY)
    reset = contact.issue_code(session, MAILBOX, "reset", OUTSIDE, NOW, POLICY)
    second = contact.issue_code(session, MAILBOX, "contact", "b@outside.example", NOW, POLICY)
    if first != second:
        assert contact.check_code(session, MAILBOX, "contact", first, NOW, POLICY).result is CodeResult.WRONG
    assert contact.check_code(session, MAILBOX, "contact", second, NOW, POLICY) == contact.CodeCheck(
        CodeResult.OK, address="b@outside.example")
    assert contact.check_code(session, MAILBOX, "reset", reset, NOW, POLICY).result is CodeResult.OK


def test_no_code_at_all(session: Session) -> None:
    assert contact.check_code(session, MAILBOX, "reset", "123456", NOW, POLICY).result is CodeResult.NONE
    with pytest.raises(NotFound):
        contact.check_code(session, "nobody@example.jp", "reset", "123456", NOW, POLICY)


def test_set_change_and_remove_the_contact_address(session: Session) -> None:
    assert contact.get_contact(session, MAILBOX) is None
    assert contact.set_contact(session, MAILBOX, OUTSIDE, NOW) is None
    assert contact.get_contact(session, MAILBOX) == contact.ContactInfo(OUTSIDE, NOW)
    assert contact.set_contact(session, MAILBOX, "new@outside.example", LATER) == OUTSIDE
    assert contact.get_contact(session, MAILBOX) == contact.ContactInfo("new@outside.example", LATER)
    assert contact.remove_contact(session, MAILBOX) == "new@outside.example"
    assert contact.get_contact(session, MAILBOX) is None
    assert contact.remove_contact(session, MAILBOX) is None


def test_purge_drops_expired_codes(session: Session) -> None:
    contact.issue_code(session, MAILBOX, "contact", OUTSIDE, NOW, POLICY)
    assert contact.purge_codes(session, EXPIRES) == 0
    assert contact.purge_codes(session, EXPIRES + dt.timedelta(seconds=1)) == 1
