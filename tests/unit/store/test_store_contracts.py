"""Contracts and roles (seed 002; SPEC §1): the local-part rule, the mailbox
limit, roles that never leave a contract without an admin, and which mailboxes
an admin may manage."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.orm import Session

from mailadmin.config.model import ContractsPolicy, Policies, Policy
from mailadmin.errors import EntryError, NotFound
from mailadmin.store import contracts, mailboxes, web_sessions

from tests.unit.store.conftest import MAILBOX, NOW

POLICY = Policy()


def codes(exc: pytest.ExceptionInfo[EntryError]) -> list[str]:
    return [p.code for p in exc.value.problems]


@pytest.mark.parametrize("local", [
    "abc", "a1b", "taro", "taro.yamada", "t-a_r.o", "abcdefghijklmno", "123", "a.b-c_d",
])
def test_local_parts_that_are_accepted(local: str) -> None:
    assert contracts.check_local_part(local) == local


@pytest.mark.parametrize(("local", "expected"), [
    ("ab", ["local_part_length"]),
    ("", ["local_part_length"]),
    ("abcdefghijklmnop", ["local_part_length"]),
    ("Taro", ["local_part_chars"]),
    ("taro+x", ["local_part_chars"]),
    ("tarō", ["local_part_chars"]),
    ("taro yamada", ["local_part_chars"]),
    (".taro", ["local_part_symbol_edge"]),
    ("taro_", ["local_part_symbol_edge"]),
    ("-ab", ["local_part_symbol_edge"]),
    ("ta..ro", ["local_part_symbol_repeat"]),
    ("ta-_ro", ["local_part_symbol_repeat"]),
    ("._", ["local_part_length", "local_part_symbol_edge", "local_part_symbol_repeat"]),
    ("A..", ["local_part_chars", "local_part_symbol_edge", "local_part_symbol_repeat"]),
])
def test_each_broken_local_part_rule_has_its_own_problem(local: str, expected: list[str]) -> None:
    with pytest.raises(EntryError) as exc:
        contracts.check_local_part(local)
    assert codes(exc) == expected


def admin_of(session: Session) -> mailboxes.MailboxInfo:
    return mailboxes.get_mailbox(session, MAILBOX)


def test_the_template_mailbox_is_the_admin_of_its_own_contract(session: Session) -> None:
    box = admin_of(session)
    assert box.role == "admin" and box.is_admin
    info = contracts.get_contract(session, box.contract, Policies())
    assert (info.domain, info.mailbox_count, info.max_mailboxes, info.own_limit) == ("example.jp", 1, 5, None)


def test_an_admin_creates_mailboxes_up_to_the_limit(session: Session) -> None:
    admin = admin_of(session)
    created = []
    for n in range(4):
        address, password = contracts.create_mailbox(session, admin, f"user{n}", "user", POLICY)
        created.append(address)
        assert address == f"user{n}@example.jp" and len(password) >= 6
        box = mailboxes.get_mailbox(session, address)
        assert (box.contract, box.role, box.must_change_password) == (admin.contract, "user", True)
    with pytest.raises(EntryError) as exc:
        contracts.create_mailbox(session, admin, "user9", "user", POLICY)
    assert codes(exc) == ["contract_full"]
    assert [b.address for b in contracts.contract_mailboxes(session, admin.contract)] == [MAILBOX, *created]


def test_the_limit_comes_from_the_contract_or_the_domain_policy(session: Session) -> None:
    admin = admin_of(session)
    two = dataclasses.replace(POLICY, contracts=ContractsPolicy(max_mailboxes=2))
    contracts.create_mailbox(session, admin, "jiro", "user", two)
    with pytest.raises(EntryError) as exc:
        contracts.create_mailbox(session, admin, "saburo", "user", two)
    assert codes(exc) == ["contract_full"]
    contracts.set_limit(session, admin.contract, 3, two)
    contracts.create_mailbox(session, admin, "saburo", "user", two)
    with pytest.raises(EntryError) as exc:
        contracts.set_limit(session, admin.contract, 2, two)
    assert codes(exc) == ["contract_limit_below_count"]
    with pytest.raises(EntryError) as exc:
        contracts.set_limit(session, admin.contract, 0, two)
    assert codes(exc) == ["contract_limit_invalid"]


@pytest.mark.parametrize(("local", "expected"), [
    ("taro", ["address_taken"]),
    ("x", ["local_part_length"]),
])
def test_create_refuses_taken_and_invalid_names(session: Session, local: str, expected: list[str]) -> None:
    with pytest.raises(EntryError) as exc:
        contracts.create_mailbox(session, admin_of(session), local, "user", POLICY)
    assert codes(exc) == expected


def test_a_deleted_address_is_never_issued_again(session: Session) -> None:
    admin = admin_of(session)
    address, _ = contracts.create_mailbox(session, admin, "jiro", "user", POLICY)
    contracts.delete_managed_mailbox(session, admin, address)
    with pytest.raises(NotFound):
        mailboxes.get_mailbox(session, address)
    with pytest.raises(EntryError) as exc:
        contracts.create_mailbox(session, admin, "jiro", "user", POLICY)
    assert codes(exc) == ["address_retired"]


def test_a_user_creates_nothing(session: Session) -> None:
    admin = admin_of(session)
    address, _ = contracts.create_mailbox(session, admin, "jiro", "user", POLICY)
    user = mailboxes.get_mailbox(session, address)
    with pytest.raises(NotFound):
        contracts.create_mailbox(session, user, "saburo", "user", POLICY)


def test_roles_never_leave_a_contract_without_an_admin(session: Session) -> None:
    admin = admin_of(session)
    with pytest.raises(EntryError) as exc:
        contracts.set_managed_role(session, admin, MAILBOX, "user")
    assert codes(exc) == ["last_admin"]
    address, _ = contracts.create_mailbox(session, admin, "jiro", "admin", POLICY)
    assert contracts.set_managed_role(session, admin, MAILBOX, "user").role == "user"
    with pytest.raises(EntryError) as exc:
        mailboxes.delete_mailbox(session, address)  # the only admin left, with a user beside it
    assert codes(exc) == ["last_admin"]
    with pytest.raises(EntryError) as exc:
        contracts.set_role(session, address, "owner")
    assert codes(exc) == ["role_invalid"]


def test_an_admin_manages_its_contract_only(session: Session) -> None:
    admin = admin_of(session)
    jiro, _ = contracts.create_mailbox(session, admin, "jiro", "user", POLICY)
    mailboxes.add_mailbox(session, "other@example.jp", POLICY)  # a contract of its own
    other = mailboxes.get_mailbox(session, "other@example.jp")
    user = mailboxes.get_mailbox(session, jiro)

    assert contracts.managed_mailbox(session, admin, jiro) == user
    assert contracts.managed_mailbox(session, admin, MAILBOX) == admin
    assert contracts.managed_mailbox(session, admin, "other@example.jp") is None
    assert contracts.managed_mailbox(session, admin, "nobody@example.jp") is None
    assert contracts.managed_mailbox(session, user, MAILBOX) is None  # a user: only itself
    assert contracts.managed_mailbox(session, user, jiro) == user
    assert contracts.managed_mailbox(session, other, jiro) is None
    # A role taken away counts at once, whatever the caller's copy says.
    contracts.set_managed_role(session, admin, jiro, "admin")
    contracts.set_role(session, MAILBOX, "user")
    assert contracts.managed_mailbox(session, admin, jiro) is None

    for act in (lambda: contracts.delete_managed_mailbox(session, other, jiro),
                lambda: contracts.reset_managed_password(session, other, jiro, POLICY),
                lambda: contracts.set_managed_role(session, other, jiro, "user")):
        with pytest.raises(NotFound):
            act()


def test_an_admin_resets_a_password_and_ends_that_mailboxs_sessions(session: Session) -> None:
    admin = admin_of(session)
    jiro, first = contracts.create_mailbox(session, admin, "jiro", "user", POLICY)
    mailboxes.set_password(session, jiro, "Chosen-123", POLICY)
    token = web_sessions.create_session(session, jiro, NOW)
    target, temporary = contracts.reset_managed_password(session, admin, jiro, POLICY)
    assert target.address == jiro and temporary != first
    assert mailboxes.get_mailbox(session, jiro).must_change_password
    assert mailboxes.check_login(session, jiro, temporary) is not None
    assert mailboxes.check_login(session, jiro, "Chosen-123") is None
    assert web_sessions.touch_session(session, token, NOW, idle_seconds=60, max_age_seconds=60) is None
    with pytest.raises(EntryError) as exc:
        contracts.reset_managed_password(session, admin, MAILBOX, POLICY)
    assert codes(exc) == ["reset_self"]
    with pytest.raises(EntryError) as exc:
        contracts.delete_managed_mailbox(session, admin, MAILBOX)
    assert codes(exc) == ["delete_self"]
