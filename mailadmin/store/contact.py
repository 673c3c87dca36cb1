"""Contact addresses (連絡先メールアドレス) and one-time codes (認証コード), seeds 000
and 001, SPEC §1.

A mailbox may have one contact address outside itself.  It takes effect only
once the 6-digit code sent to it is entered: :func:`issue_code` makes a code
for the address (returning it once, for the mail), :func:`check_code`
checks what the subscriber typed, and :func:`set_contact` stores the address
after a right code.  The same codes reset a forgotten password (purpose
``reset``, sent to the confirmed contact address).

The rules of a code, in one place (:func:`judge`):

- it expires ``code_ttl_hours`` after it was issued;
- it is single-use: a right entry uses it up;
- after ``code_max_attempts`` wrong entries it is void, a new one is needed;
- a new code for the same mailbox and purpose voids the older one.

Codes are stored as Argon2id hashes (:mod:`mailadmin.passwords`), not as an
HMAC: the configuration holds no server secret to key an HMAC with, and an
unkeyed fast hash of a 6-digit code is reversed from a copy of the database
in well under a second.  Argon2id at 64 MiB makes each of the million guesses
cost what a password check costs, and the code has expired long before an
offline search through them ends on one core; online, the attempt limit
stops guessing.  It also lets the reset page spend the same time on an
unknown address (a dummy hash) as on a known one.

Nothing here commits: a wrong entry's count is saved when the caller's
transaction commits, so callers must commit on a wrong code too.
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from mailadmin.config.model import ContactPolicy
from mailadmin.errors import EntryError, Problem
from mailadmin.mailtext.addresses import canonical_address, is_valid_address
from mailadmin.passwords import dummy_hash, hash_password, verify_password
from mailadmin.store.mailboxes import mailbox_row
from mailadmin.store.models import ContactAddress, VerificationCode

CODE_DIGITS = 6
PURPOSES = ("contact", "reset")
MAX_ADDRESS_LENGTH = 254


class CodeResult(enum.Enum):
    OK = "ok"
    WRONG = "wrong"        # counted; tries are left
    EXHAUSTED = "exhausted"  # this entry was the last wrong try, or none were left: void
    EXPIRED = "expired"
    NONE = "none"          # no live code (never issued, used, or replaced)


@dataclass(frozen=True, slots=True)
class ContactInfo:
    address: str
    confirmed_at: dt.datetime


@dataclass(frozen=True, slots=True)
class PendingCode:
    """A live code: where it went, until when, how many tries are left."""

    address: str
    expires_at: dt.datetime
    attempts_left: int


@dataclass(frozen=True, slots=True)
class CodeCheck:
    result: CodeResult
    address: str = ""        # the address the code was issued for (OK only)
    attempts_left: int = 0   # after this entry (WRONG)


def new_code() -> str:
    """Six random digits, leading zeros kept."""
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def is_code_syntax(text: str) -> bool:
    return len(text) == CODE_DIGITS and text.isascii() and text.isdigit()


def judge(*, code_hash: str, expires_at: dt.datetime, attempts: int, used: bool, entered: str,
          now: dt.datetime, max_attempts: int) -> CodeResult:
    """The verdict on one entry of a stored code (the rules above).  Past its
    time or its tries a code is not even compared: nothing is learnt from it."""
    if used:
        return CodeResult.NONE
    if now >= expires_at:
        return CodeResult.EXPIRED
    if attempts >= max_attempts:
        return CodeResult.EXHAUSTED
    if is_code_syntax(entered) and verify_password(code_hash, entered):
        return CodeResult.OK
    return CodeResult.EXHAUSTED if attempts + 1 >= max_attempts else CodeResult.WRONG


# ---------------------------------------------------------------- contact address


def get_contact(session: Session, mailbox: str) -> ContactInfo | None:
    row = session.get(ContactAddress, mailbox_row(session, mailbox).id)
    return None if row is None else ContactInfo(row.address, row.confirmed_at)


def contact_problems(mailbox: str, address: str, current: str | None) -> list[Problem]:
    """Why ``address`` can't be ``mailbox``'s contact address (empty: it can)."""
    address = address.strip()
    if not address:
        return [Problem("contact.empty", "Enter the contact address.")]
    if len(address) > MAX_ADDRESS_LENGTH or not is_valid_address(address):
        return [Problem("contact.invalid", f"'{address}' is not an email address (e.g. user@example.com).",
                        {"entry": address})]
    if canonical_address(address) == canonical_address(mailbox):
        return [Problem("contact.self",
                        "The contact address must be outside this mailbox: notices about the "
                        "mailbox must reach you even when it is taken over.")]
    if current is not None and canonical_address(address) == canonical_address(current):
        return [Problem("contact.unchanged", f"{address} is the contact address already.",
                        {"entry": address})]
    return []


def set_contact(session: Session, mailbox: str, address: str, now: dt.datetime) -> str | None:
    """Make ``address`` (whose code was entered) the contact address; returns the
    previous one."""
    box = mailbox_row(session, mailbox)
    row = session.get(ContactAddress, box.id)
    old = None if row is None else row.address
    if row is None:
        session.add(ContactAddress(mailbox_id=box.id, address=address.strip(), confirmed_at=now))
    else:
        row.address = address.strip()
        row.confirmed_at = now
    session.flush()
    return old


def remove_contact(session: Session, mailbox: str) -> str | None:
    """Remove the contact address; returns it (None: there was none)."""
    box = mailbox_row(session, mailbox)
    row = session.get(ContactAddress, box.id)
    if row is None:
        return None
    old = row.address
    session.delete(row)
    session.flush()
    return old


# ---------------------------------------------------------------- codes


def _live_rows(session: Session, mailbox_id: int, purpose: str) -> list[VerificationCode]:
    return list(session.scalars(
        select(VerificationCode)
        .where(VerificationCode.mailbox_id == mailbox_id, VerificationCode.purpose == purpose,
               VerificationCode.used_at.is_(None))
        .order_by(VerificationCode.id.desc())
    ))


def issue_code(session: Session, mailbox: str, purpose: str, address: str, now: dt.datetime,
               policy: ContactPolicy) -> str:
    """A new code of ``mailbox`` for ``purpose``, to be mailed to ``address``;
    earlier codes of that purpose are void.  Returns the code itself, which is
    never stored."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown code purpose {purpose!r}")
    void_codes(session, mailbox, purpose, now)
    box = mailbox_row(session, mailbox)
    code = new_code()
    session.add(VerificationCode(
        mailbox_id=box.id, purpose=purpose, address=address.strip(), code_hash=hash_password(code),
        created_at=now, expires_at=now + dt.timedelta(hours=policy.code_ttl_hours), attempts=0,
    ))
    session.flush()
    session.expire_all()
    return code


def pending_code(session: Session, mailbox: str, purpose: str, now: dt.datetime,
                 policy: ContactPolicy) -> PendingCode | None:
    """The live code of ``mailbox`` for ``purpose``, if one can still be entered."""
    rows = _live_rows(session, mailbox_row(session, mailbox).id, purpose)
    if not rows:
        return None
    row = rows[0]
    if now >= row.expires_at or row.attempts >= policy.code_max_attempts:
        return None
    return PendingCode(row.address, row.expires_at, policy.code_max_attempts - row.attempts)


def check_code(session: Session, mailbox: str, purpose: str, entered: str, now: dt.datetime,
               policy: ContactPolicy) -> CodeCheck:
    """Check ``entered`` against the live code of ``mailbox`` for ``purpose``.  A right
    code is used up; a wrong one counts a try (commit it: see the module text)."""
    rows = _live_rows(session, mailbox_row(session, mailbox).id, purpose)
    if not rows:
        verify_password(dummy_hash(), entered)  # the same time as a real check
        return CodeCheck(CodeResult.NONE)
    row = rows[0]
    result = judge(code_hash=row.code_hash, expires_at=row.expires_at, attempts=row.attempts,
                   used=False, entered=entered.strip(), now=now, max_attempts=policy.code_max_attempts)
    if result is CodeResult.OK:
        row.used_at = now
        session.flush()
        return CodeCheck(result, address=row.address)
    if result in (CodeResult.WRONG, CodeResult.EXHAUSTED):
        row.attempts += 1
        session.flush()
    return CodeCheck(result, attempts_left=max(0, policy.code_max_attempts - row.attempts))


def void_codes(session: Session, mailbox: str, purpose: str, now: dt.datetime) -> None:
    """Void every live code of ``mailbox`` for ``purpose`` (the contact address was
    removed or changed by other means)."""
    box = mailbox_row(session, mailbox)
    session.execute(
        update(VerificationCode)
        .where(VerificationCode.mailbox_id == box.id, VerificationCode.purpose == purpose,
               VerificationCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


def purge_codes(session: Session, older_than: dt.datetime) -> int:
    """Delete codes that expired before ``older_than``."""
    result = cast(CursorResult[Any], session.execute(
        delete(VerificationCode).where(VerificationCode.expires_at < older_than)))
    return result.rowcount


def require(problems: list[Problem]) -> None:
    if problems:
        raise EntryError(problems)
