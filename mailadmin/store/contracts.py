"""Contracts and roles (seed 002 マイページ 管理者画面編; SPEC §1).

A contract (契約, its number the お客様番号) holds several mailboxes of one
domain, up to a limit: the contract's own (``set_limit``) or the domain's
policy ``contracts.max_mailboxes``.  Each mailbox has a role (アカウント権限種別):
``admin`` (管理者権限) manages every mailbox of its contract, ``user``
(ユーザー権限) only itself.  A contract never loses its last admin through a
role change or a deletion made by an admin.

New mailboxes made by an admin take a local part of 3-15 characters from
``a-z 0-9 . - _``, with no symbol first, last or twice in a row; the domain is
the contract's.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailadmin.config.model import Policies, Policy
from mailadmin.errors import EntryError, NotFound, Problem
from mailadmin.mailtext.addresses import canonical_address
from mailadmin.store import mailboxes
from mailadmin.store.mailboxes import MailboxInfo, contract_row, count_mailboxes, mailbox_limit, mailbox_row
from mailadmin.store.models import MAILBOX_ROLES, Contract, Domain, Mailbox

LOCAL_PART_MIN = 3
LOCAL_PART_MAX = 15
LOCAL_PART_SYMBOLS = ".-_"
_LOCAL_PART_CHARS = re.compile(r"[a-z0-9._-]*")


@dataclass(frozen=True, slots=True)
class ContractInfo:
    number: str
    domain: str
    mailbox_count: int
    max_mailboxes: int  # the limit in force
    own_limit: int | None  # set on the contract; None: the domain's policy
    created_at: dt.datetime


def _info(session: Session, row: Contract, policy: Policy) -> ContractInfo:
    return ContractInfo(row.number, row.domain.name, count_mailboxes(session, row),
                        mailbox_limit(row, policy), row.max_mailboxes, row.created_at)


# ---------------------------------------------------------------- local parts


def check_local_part(local: str) -> str:
    """The local part of a new contract mailbox, or EntryError with one problem per
    broken rule (seed 002: 3-15 of a-z 0-9 . - _, no symbol first, last or twice
    in a row)."""
    problems: list[Problem] = []
    params: dict[str, str | int] = {"local": local, "min": LOCAL_PART_MIN, "max": LOCAL_PART_MAX}
    if not LOCAL_PART_MIN <= len(local) <= LOCAL_PART_MAX:
        problems.append(Problem("local_part_length",
                                f"The name must be {LOCAL_PART_MIN}-{LOCAL_PART_MAX} characters.", params))
    if not _LOCAL_PART_CHARS.fullmatch(local):
        problems.append(Problem("local_part_chars",
                                "The name may hold only a-z, 0-9 and the symbols . - _ .", params))
    if local[:1] in tuple(LOCAL_PART_SYMBOLS) or local[-1:] in tuple(LOCAL_PART_SYMBOLS):
        problems.append(Problem("local_part_symbol_edge",
                                "The name may not begin or end with a symbol.", params))
    if any(a in LOCAL_PART_SYMBOLS and b in LOCAL_PART_SYMBOLS for a, b in zip(local, local[1:])):
        problems.append(Problem("local_part_symbol_repeat",
                                "The name may not have two symbols in a row.", params))
    if problems:
        raise EntryError(problems)
    return local


# ---------------------------------------------------------------- postmaster


def add_contract(session: Session, domain: str, *, number: str | None = None,
                 max_mailboxes: int | None = None) -> str:
    """A new, empty contract of ``domain``; returns its number."""
    row = session.scalar(select(Domain).where(Domain.name == domain.strip().lower()))
    if row is None:
        raise EntryError(Problem("domain_unknown", f"Domain {domain} does not exist; add it first.",
                                 {"domain": domain}))
    if max_mailboxes is not None:
        _check_limit(max_mailboxes)
    return mailboxes.new_contract(session, row, number=number, max_mailboxes=max_mailboxes).number


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= 1000:
        raise EntryError(Problem("contract_limit_invalid",
                                 f"A contract holds 1-1000 mailboxes, not {limit}.", {"limit": limit}))


def list_contracts(session: Session, policies: Policies) -> list[ContractInfo]:
    rows = session.scalars(select(Contract).order_by(Contract.number)).all()
    return [_info(session, row, policies.for_domain(row.domain.name)) for row in rows]


def get_contract(session: Session, number: str, policies: Policies) -> ContractInfo:
    row = contract_row(session, number)
    return _info(session, row, policies.for_domain(row.domain.name))


def contract_mailboxes(session: Session, number: str) -> list[MailboxInfo]:
    """The contract's mailboxes, admins first, then by address."""
    row = contract_row(session, number)
    boxes = [mailboxes.get_mailbox(session, a) for a in session.scalars(
        select(Mailbox.address).where(Mailbox.contract_id == row.id).order_by(Mailbox.address))]
    return sorted(boxes, key=lambda b: (b.role != "admin", b.address))


def set_limit(session: Session, number: str, limit: int | None, policy: Policy) -> None:
    """Set the contract's own mailbox limit (None: back to the domain's policy).
    A limit below the mailboxes it already holds is refused."""
    row = contract_row(session, number)
    if limit is not None:
        _check_limit(limit)
    effective = limit if limit is not None else policy.contracts.max_mailboxes
    held = count_mailboxes(session, row)
    if effective < held:
        raise EntryError(Problem("contract_limit_below_count",
                                 f"Contract {row.number} holds {held} mailboxes, more than {effective}.",
                                 {"number": row.number, "count": held, "limit": effective}))
    row.max_mailboxes = limit
    session.flush()


def _admins(session: Session, contract_id: int) -> int:
    return int(session.scalar(select(func.count(Mailbox.id)).where(
        Mailbox.contract_id == contract_id, Mailbox.role == "admin")) or 0)


def set_role(session: Session, address: str, role: str) -> None:
    """Make ``address`` an admin or a user of its contract; never the last admin
    a user."""
    if role not in MAILBOX_ROLES:
        raise EntryError(Problem("role_invalid", f"'{role}' is not a role (admin or user).", {"role": role}))
    row = mailbox_row(session, address)
    if row.role == "admin" and role == "user" and _admins(session, row.contract_id) <= 1:
        raise EntryError(Problem("last_admin",
                                 f"{row.address} is the contract's only admin; make another mailbox admin first.",
                                 {"address": row.address}))
    row.role = role
    session.flush()


# ---------------------------------------------------------------- the admin's page


def managed_mailbox(session: Session, actor: MailboxInfo, address: str) -> MailboxInfo | None:
    """``address`` when ``actor`` may manage it: ``actor`` is an active admin and
    ``address`` is of the same contract (or ``actor`` itself); else None."""
    try:
        target = mailboxes.get_mailbox(session, address)
    except NotFound:
        return None
    if target.address == actor.address:
        return target
    if actor.role != "admin" or actor.status != "active" or not actor.contract:
        return None
    actor_row = mailbox_row(session, actor.address)
    if actor_row.role != "admin" or actor_row.contract.number != target.contract:
        return None
    return target


def require_managed(session: Session, actor: MailboxInfo, address: str) -> MailboxInfo:
    """``managed_mailbox`` or NotFound: a mailbox of another contract looks like
    one that does not exist."""
    target = managed_mailbox(session, actor, address)
    if target is None:
        raise NotFound(f"mailbox {address} does not exist")
    return target


def create_mailbox(session: Session, actor: MailboxInfo, local: str, role: str,
                   policy: Policy) -> tuple[str, str]:
    """An admin creates ``local``@contract domain in its contract; returns the
    address and its temporary password (shown once)."""
    if actor.role != "admin":
        raise NotFound("contract")
    row = contract_row(session, actor.contract)
    problems: list[Problem] = []
    try:
        check_local_part(local)
    except EntryError as exc:
        problems.extend(exc.problems)
    if role not in MAILBOX_ROLES:
        problems.append(Problem("role_invalid", f"'{role}' is not a role (admin or user).", {"role": role}))
    if problems:
        raise EntryError(problems)
    address = f"{local}@{row.domain.name}"
    password = mailboxes.add_mailbox(session, address, policy, contract=row.number, role=role)
    return address, password


def delete_managed_mailbox(session: Session, actor: MailboxInfo, address: str) -> MailboxInfo:
    """An admin deletes another mailbox of its contract, with its rules and
    quarantine; the address is never issued again.  Its own mailbox is not
    deleted from its own session."""
    target = require_managed(session, actor, address)
    if target.address == actor.address:
        raise EntryError(Problem("delete_self", "The mailbox you are logged in with cannot be deleted here.",
                                 {"address": target.address}))
    mailboxes.delete_mailbox(session, target.address)
    return target


def reset_managed_password(session: Session, actor: MailboxInfo, address: str,
                           policy: Policy) -> tuple[MailboxInfo, str]:
    """An admin gives a mailbox of its contract a new temporary password (must be
    changed at its next login); every session of that mailbox ends."""
    target = require_managed(session, actor, address)
    if target.address == actor.address:
        raise EntryError(Problem("reset_self", "Change your own password on the password page.",
                                 {"address": target.address}))
    password = mailboxes.reset_password(session, target.address, policy)
    return target, password


def set_managed_role(session: Session, actor: MailboxInfo, address: str, role: str) -> MailboxInfo:
    target = require_managed(session, actor, address)
    set_role(session, target.address, role)
    return mailboxes.get_mailbox(session, target.address)


def canonical(address: str) -> str:
    return canonical_address(address.strip())
