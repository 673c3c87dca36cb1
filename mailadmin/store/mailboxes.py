"""Domains, contracts, mailboxes and their passwords (SPEC §1, §11; seed 002).

Postmasters add domains and mailboxes; a new mailbox gets a random temporary
password that must be changed at the first login.  The password is kept as a
Dovecot ``{SCHEME}`` hash in the same row Dovecot's SQL passdb reads, so a
change takes effect for SMTP AUTH / POP / IMAP at once.  Deleting a mailbox
removes its rules and quarantine and retires the address for good.

Every mailbox belongs to one contract (お客様番号) and has a role: ``admin``
(管理者権限, manages every mailbox of the contract) or ``user`` (ユーザー権限).
A mailbox added without a contract gets a new contract of its own, as admin;
``contracts.py`` has the rest of the contract operations.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mailadmin.config.model import Policy
from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.mailtext.addresses import canonical_address, canonical_domain, is_valid_address
from mailadmin.mailtext.entries import check_password
from mailadmin.passwords import (
    dummy_hash,
    generate_temporary_password,
    hash_password,
    needs_rehash,
    verify_password,
)
from mailadmin.store import claims, web_sessions
from mailadmin.store.models import MAILBOX_ROLES, MAILBOX_STATUSES, Contract, DeletedAddress, Domain, Mailbox

MAX_SERVER_NAME_LENGTH = 253


@dataclass(frozen=True, slots=True)
class DomainInfo:
    name: str
    smtp_server: str
    pop_server: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    address: str
    domain: str
    status: str  # "active" | "suspended"
    must_change_password: bool
    created_at: dt.datetime
    contract: str = ""  # the contract number (お客様番号)
    role: str = "admin"  # "admin" | "user"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _domain_info(row: Domain) -> DomainInfo:
    return DomainInfo(row.name, row.smtp_server, row.pop_server, row.created_at)


def _mailbox_info(row: Mailbox) -> MailboxInfo:
    return MailboxInfo(
        address=row.address,
        domain=row.domain.name,
        status=row.status,
        must_change_password=row.must_change_password,
        created_at=row.created_at,
        contract=row.contract.number,
        role=row.role,
    )


def mailbox_row(session: Session, address: str) -> Mailbox:
    """The ORM row of ``address`` (for the other store modules only); NotFound if none."""
    row = session.scalar(select(Mailbox).where(Mailbox.address == canonical_address(address)))
    if row is None:
        raise NotFound(f"mailbox {address} does not exist")
    return row


# ---------------------------------------------------------------- domains


def _server_problems(field: str, value: str) -> list[Problem]:
    if not value or len(value) > MAX_SERVER_NAME_LENGTH or any(c.isspace() for c in value):
        return [Problem("server_name_invalid", f"{field} '{value}' is not a host name.",
                        {"field": field, "value": value})]
    return []


def add_domain(session: Session, name: str, *, smtp_server: str, pop_server: str) -> None:
    """Add a mail domain with the SMTP and POP server names shown on the account page."""
    canonical = canonical_domain(name.strip())
    problems: list[Problem] = []
    if canonical is None:
        problems.append(Problem("domain_invalid", f"'{name}' is not a valid domain name.",
                                {"domain": name}))
    problems += _server_problems("SMTP server", smtp_server)
    problems += _server_problems("POP server", pop_server)
    if problems:
        raise EntryError(problems)
    assert canonical is not None
    exists = session.scalar(select(Domain.id).where(Domain.name == canonical))
    if exists is not None:
        raise EntryError(Problem("domain_exists", f"Domain {canonical} already exists.",
                                 {"domain": canonical}))
    session.add(Domain(name=canonical, smtp_server=smtp_server, pop_server=pop_server,
                       created_at=_utcnow()))
    try:
        session.flush()
    except IntegrityError as exc:  # added by someone else since the check
        raise EntryError(Problem("domain_exists", f"Domain {canonical} already exists.",
                                 {"domain": canonical})) from exc


def _domain_row(session: Session, name: str) -> Domain | None:
    canonical = canonical_domain(name.strip()) or name.strip().lower()
    return session.scalar(select(Domain).where(Domain.name == canonical))


def get_domain(session: Session, name: str) -> DomainInfo:
    row = _domain_row(session, name)
    if row is None:
        raise NotFound(f"domain {name} does not exist")
    return _domain_info(row)


def list_domains(session: Session) -> list[DomainInfo]:
    return [_domain_info(row) for row in session.scalars(select(Domain).order_by(Domain.name))]


def delete_domain(session: Session, name: str) -> None:
    """Delete a domain that has no mailboxes left."""
    row = _domain_row(session, name)
    if row is None:
        raise NotFound(f"domain {name} does not exist")
    if session.scalar(select(Mailbox.id).where(Mailbox.domain_id == row.id).limit(1)) is not None:
        raise EntryError(Problem("domain_not_empty",
                                 f"Domain {row.name} still has mailboxes; delete them first.",
                                 {"domain": row.name}))
    session.delete(row)
    session.flush()


# ---------------------------------------------------------------- contracts

# Contract numbers are 14 digits, as the seed's お客様番号.  Mailboxes that existed
# before contracts got 10000000000000 + their id (migration 0003); new numbers
# are drawn above that range.
CONTRACT_NUMBER_LOW = 20_000_000_000_000
CONTRACT_NUMBER_HIGH = 99_999_999_999_999


def contract_row(session: Session, number: str) -> Contract:
    """The ORM row of contract ``number``; NotFound if none."""
    row = session.scalar(select(Contract).where(Contract.number == number.strip()))
    if row is None:
        raise NotFound(f"contract {number} does not exist")
    return row


def new_contract(session: Session, domain: Domain, *, number: str | None = None,
                 max_mailboxes: int | None = None) -> Contract:
    """A new contract of ``domain``; its number drawn at random unless given."""
    if number is None:
        while True:
            number = str(CONTRACT_NUMBER_LOW + secrets.randbelow(CONTRACT_NUMBER_HIGH - CONTRACT_NUMBER_LOW))
            if session.scalar(select(Contract.id).where(Contract.number == number)) is None:
                break
    elif not number.isascii() or not number.isdigit() or not 1 <= len(number) <= 20:
        raise EntryError(Problem("contract_number_invalid",
                                 f"'{number}' is not a contract number (1-20 digits).", {"number": number}))
    elif session.scalar(select(Contract.id).where(Contract.number == number)) is not None:
        raise EntryError(Problem("contract_exists", f"Contract {number} already exists.", {"number": number}))
    row = Contract(number=number, domain_id=domain.id, max_mailboxes=max_mailboxes, created_at=_utcnow())
    row.domain = domain
    session.add(row)
    session.flush()
    return row


def mailbox_limit(row: Contract, policy: Policy) -> int:
    """How many mailboxes ``row`` may hold: its own limit, else the domain's policy."""
    return row.max_mailboxes if row.max_mailboxes is not None else policy.contracts.max_mailboxes


def count_mailboxes(session: Session, row: Contract) -> int:
    return len(session.scalars(select(Mailbox.id).where(Mailbox.contract_id == row.id)).all())


# ---------------------------------------------------------------- mailboxes


def add_mailbox(session: Session, address: str, policy: Policy, *,
                contract: str | None = None, role: str | None = None) -> str:
    """Create ``address`` with ``policy``'s defaults; returns its temporary password.

    The domain must exist, the address must be valid, not in use and never
    deleted before (a retired address is never issued again).  Without
    ``contract`` the mailbox gets a new contract of its own and is its admin;
    with one it joins that contract (default role ``user``) within the
    contract's limit, in the contract's domain.
    """
    typed = address.strip()
    # A quoted local part is valid mail syntax but no login name anyone can type.
    if not is_valid_address(typed) or '"' in typed:
        raise EntryError(Problem("address_invalid", f"'{typed}' is not a valid mail address.",
                                 {"address": typed}))
    canonical = canonical_address(typed)
    domain = session.scalar(select(Domain).where(Domain.name == canonical.rpartition("@")[2]))
    if domain is None:
        raise EntryError(Problem("domain_unknown",
                                 f"Domain {canonical.rpartition('@')[2]} does not exist; add it first.",
                                 {"domain": canonical.rpartition("@")[2]}))
    taken = Problem("address_taken", f"{canonical} already exists.", {"address": canonical})
    if session.scalar(select(Mailbox.id).where(Mailbox.address == canonical)) is not None:
        raise EntryError(taken)
    if session.scalar(select(DeletedAddress.id).where(DeletedAddress.address == canonical)) is not None:
        raise EntryError(Problem("address_retired",
                                 f"{canonical} was deleted and is never issued again.",
                                 {"address": canonical}))
    if role is not None and role not in MAILBOX_ROLES:
        raise EntryError(Problem("role_invalid", f"'{role}' is not a role (admin or user).", {"role": role}))
    if contract is None:
        owner = new_contract(session, domain)
        role = role or "admin"
        if role != "admin":
            raise EntryError(Problem("contract_needs_admin",
                                     "A new contract's first mailbox must be its admin.", {}))
    else:
        owner = contract_row(session, contract)
        role = role or "user"
        if owner.domain_id != domain.id:
            raise EntryError(Problem("contract_domain",
                                     f"Contract {owner.number} holds mailboxes of {owner.domain.name} only.",
                                     {"number": owner.number, "domain": owner.domain.name}))
        limit = mailbox_limit(owner, policy)
        if count_mailboxes(session, owner) >= limit:
            raise EntryError(Problem("contract_full",
                                     f"Contract {owner.number} already holds its {limit} mailboxes.",
                                     {"number": owner.number, "limit": str(limit)}))
    password = generate_temporary_password(policy.password)
    defaults = policy.mailbox_defaults
    session.add(Mailbox(
        address=canonical,
        domain_id=domain.id,
        contract_id=owner.id,
        role=role,
        password_hash=hash_password(password),
        status="active",
        must_change_password=True,
        created_at=_utcnow(),
        virus_scan_enabled=defaults.virus_scan,
        spam_scan_enabled=defaults.spam_scan,
        spam_quarantine_enabled=defaults.spam_quarantine,
        quarantine_notice_enabled=defaults.quarantine_notice,
        header_conditions="",
        overseas_unlocked_until=None,
        auto_reply_enabled=False,
        auto_reply_subject="",
        auto_reply_body="",
    ))
    try:
        session.flush()
    except IntegrityError as exc:  # created by someone else since the check
        raise EntryError(taken) from exc
    return password


def list_mailboxes(session: Session, domain: str | None = None) -> list[MailboxInfo]:
    query = select(Mailbox).join(Mailbox.domain).order_by(Mailbox.address)
    if domain is not None:
        query = query.where(Domain.name == (canonical_domain(domain.strip()) or domain.lower()))
    return [_mailbox_info(row) for row in session.scalars(query)]


# One query, built once: the admin page asks for the session's mailbox on
# every request, and the ORM row with its domain and contract loaded lazily
# took three queries and most of a page view's store time.
_MAILBOX_INFO_Q = (
    select(Mailbox.address, Domain.name, Mailbox.status, Mailbox.must_change_password,
           Mailbox.created_at, Contract.number, Mailbox.role)
    .join(Domain, Domain.id == Mailbox.domain_id)
    .join(Contract, Contract.id == Mailbox.contract_id)
    .where(Mailbox.address == bindparam("address"))
)


def get_mailbox(session: Session, address: str) -> MailboxInfo:
    found = session.execute(_MAILBOX_INFO_Q, {"address": canonical_address(address)}).first()
    if found is None:
        raise NotFound(f"mailbox {address} does not exist")
    box_address, domain, status, must_change, created_at, contract, role = found
    return MailboxInfo(address=box_address, domain=domain, status=status,
                       must_change_password=must_change, created_at=created_at,
                       contract=contract, role=role)


def set_status(session: Session, address: str, status: str) -> None:
    """Suspend (``"suspended"``: login refused) or resume (``"active"``) a mailbox."""
    if status not in MAILBOX_STATUSES:
        raise EntryError(Problem("status_invalid",
                                 f"'{status}' is not a status (one of {', '.join(MAILBOX_STATUSES)}).",
                                 {"status": status}))
    mailbox_row(session, address).status = status
    session.flush()


def delete_mailbox(session: Session, address: str) -> None:
    """Delete a mailbox with its rules, quarantine and auto-reply claims; the address
    is retired and never issued again."""
    row = mailbox_row(session, address)
    canonical = row.address
    if row.role == "admin":
        others = session.scalars(select(Mailbox.role).where(
            Mailbox.contract_id == row.contract_id, Mailbox.id != row.id)).all()
        if others and "admin" not in others:
            raise EntryError(Problem("last_admin",
                                     f"{canonical} is the contract's only admin; make another mailbox admin first.",
                                     {"address": canonical}))
    session.delete(row)
    claims.forget_auto_reply_claims(session, canonical)
    session.add(DeletedAddress(address=canonical, deleted_at=_utcnow()))
    session.flush()


def set_password(
    session: Session,
    address: str,
    new_password: str,
    policy: Policy,
    *,
    must_change: bool = False,
) -> None:
    """Set a password that satisfies the SPEC §1 rule (EntryError: one problem per
    broken rule); it takes effect for Dovecot at once."""
    row = mailbox_row(session, address)
    check_password(new_password, policy.password)
    row.password_hash = hash_password(new_password)
    row.must_change_password = must_change
    session.flush()


def reset_password(session: Session, address: str, policy: Policy) -> str:
    """Replace the password by a new temporary one; returns it.  Every page
    session of the mailbox ends."""
    row = mailbox_row(session, address)
    password = generate_temporary_password(policy.password)
    row.password_hash = hash_password(password)
    row.must_change_password = True
    session.flush()
    web_sessions.delete_mailbox_sessions(session, row.address)
    return password


def check_login(session: Session, address: str, password: str) -> MailboxInfo | None:
    """The mailbox when ``password`` is right and the mailbox is active, else None.

    An unknown address costs the same hash verification as a known one (no
    account enumeration by timing).  A hash in an older scheme or with older
    parameters is replaced after a successful login; the caller commits.
    """
    row = session.scalar(select(Mailbox).where(Mailbox.address == canonical_address(address)))
    if row is None:
        verify_password(dummy_hash(), password)
        return None
    if not verify_password(row.password_hash, password):
        return None
    if row.status != "active":
        return None
    if needs_rehash(row.password_hash):
        row.password_hash = hash_password(password)
        session.flush()
    return _mailbox_info(row)

