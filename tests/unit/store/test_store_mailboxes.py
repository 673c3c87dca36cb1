"""Domains, mailboxes, passwords and logins (SPEC §1, §11)."""

from __future__ import annotations

import datetime as dt

import bcrypt
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mailadmin import passwords
from mailadmin.config.model import MailboxDefaults, Policy
from mailadmin.errors import EntryError, NotFound
from mailadmin.store import claims, mailboxes, quarantine, rules
from mailadmin.store.models import (
    AutoReplyClaim,
    AutoReplySender,
    DeletedAddress,
    ForwardDestination,
    Mailbox,
    QuarantineItem,
    RuleEntry,
)
from mailadmin.store.snapshots import AutoReply, SenderReply

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
MAILBOX = "taro@example.jp"


def codes(error: pytest.ExceptionInfo[EntryError]) -> list[str]:
    return [p.code for p in error.value.problems]


# ---------------------------------------------------------------- domains


def test_domains_are_listed_with_their_servers(session: Session) -> None:
    mailboxes.add_domain(session, "Example.NET", smtp_server="smtp.example.net", pop_server="pop.example.net")
    names = [d.name for d in mailboxes.list_domains(session)]
    assert names == ["example.jp", "example.net"]
    info = mailboxes.get_domain(session, "EXAMPLE.net")
    assert (info.smtp_server, info.pop_server) == ("smtp.example.net", "pop.example.net")
    assert info.created_at.tzinfo == dt.timezone.utc


def test_idn_domains_are_stored_in_ascii(session: Session) -> None:
    mailboxes.add_domain(session, "例え.jp", smtp_server="smtp.example.jp", pop_server="pop.example.jp")
    assert mailboxes.get_domain(session, "例え.jp").name == "xn--r8jz45g.jp"


@pytest.mark.parametrize(
    ("name", "smtp", "pop", "expected"),
    [
        ("localhost", "smtp.x.jp", "pop.x.jp", ["domain_invalid"]),
        ("bad domain.jp", "smtp.x.jp", "pop.x.jp", ["domain_invalid"]),
        ("-x.jp", "smtp.x.jp", "pop.x.jp", ["domain_invalid"]),
        ("x.123", "smtp.x.jp", "pop.x.jp", ["domain_invalid"]),
        ("", "smtp.x.jp", "pop.x.jp", ["domain_invalid"]),
        ("ok.jp", "", "pop.x.jp", ["server_name_invalid"]),
        ("ok.jp", "smtp.x.jp", "pop x.jp", ["server_name_invalid"]),
        ("bad_domain", "", "", ["domain_invalid", "server_name_invalid", "server_name_invalid"]),
        ("example.jp", "smtp.x.jp", "pop.x.jp", ["domain_exists"]),
        ("EXAMPLE.JP", "smtp.x.jp", "pop.x.jp", ["domain_exists"]),
    ],
)
def test_invalid_domains_are_refused(session: Session, name: str, smtp: str, pop: str,
                                     expected: list[str]) -> None:
    with pytest.raises(EntryError) as info:
        mailboxes.add_domain(session, name, smtp_server=smtp, pop_server=pop)
    assert codes(info) == expected
    assert [d.name for d in mailboxes.list_domains(session)] == ["example.jp"]


def test_unknown_domain_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        mailboxes.get_domain(session, "example.org")


def test_a_domain_with_mailboxes_cannot_be_deleted(session: Session) -> None:
    with pytest.raises(EntryError) as info:
        mailboxes.delete_domain(session, "example.jp")
    assert codes(info) == ["domain_not_empty"]
    mailboxes.add_domain(session, "example.net", smtp_server="s.example.net", pop_server="p.example.net")
    mailboxes.delete_domain(session, "example.net")
    assert [d.name for d in mailboxes.list_domains(session)] == ["example.jp"]
    with pytest.raises(NotFound):
        mailboxes.delete_domain(session, "example.net")


# ---------------------------------------------------------------- creating mailboxes


def test_new_mailbox_gets_a_temporary_password_and_the_policy_defaults(session: Session) -> None:
    policy = Policy(mailbox_defaults=MailboxDefaults(virus_scan=False, spam_scan=True,
                                                     spam_quarantine=True, quarantine_notice=True))
    password = mailboxes.add_mailbox(session, "Hanako@Example.JP", policy)
    info = mailboxes.get_mailbox(session, "hanako@example.jp")
    assert (info.address, info.domain, info.status, info.must_change_password) == (
        "hanako@example.jp", "example.jp", "active", True)
    snapshot = rules.load_rules(session, "hanako@example.jp")
    assert snapshot is not None
    assert (snapshot.virus_scan, snapshot.spam_scan, snapshot.spam_quarantine, snapshot.quarantine_notice) == (
        False, True, True, True)
    assert snapshot.overseas_unlocked_until is None  # 制限中 by default
    stored = session.scalar(select(Mailbox.password_hash).where(Mailbox.address == "hanako@example.jp"))
    assert stored is not None and stored.startswith("{ARGON2ID}") and password not in stored
    assert passwords.verify_password(stored, password)


def test_temporary_password_logs_in_and_says_it_must_be_changed(session: Session,
                                                                 temporary_password: str) -> None:
    info = mailboxes.check_login(session, MAILBOX, temporary_password)
    assert info is not None and info.must_change_password


@pytest.mark.parametrize(
    ("address", "code"),
    [
        ("taro", "address_invalid"),
        ("@example.jp", "address_invalid"),
        ("taro@", "address_invalid"),
        ("ta ro@example.jp", "address_invalid"),
        ('"ta ro"@example.jp', "address_invalid"),
        ("taro@@example.jp", "address_invalid"),
        ("x" * 65 + "@example.jp", "address_invalid"),
        ("jiro@example.org", "domain_unknown"),
        ("taro@example.jp", "address_taken"),
        ("TARO@EXAMPLE.JP", "address_taken"),
    ],
)
def test_invalid_or_taken_addresses_are_refused(session: Session, address: str, code: str) -> None:
    with pytest.raises(EntryError) as info:
        mailboxes.add_mailbox(session, address, Policy())
    assert codes(info) == [code]
    assert [m.address for m in mailboxes.list_mailboxes(session)] == [MAILBOX]


def test_list_mailboxes_by_domain(session: Session) -> None:
    mailboxes.add_domain(session, "example.net", smtp_server="s.example.net", pop_server="p.example.net")
    mailboxes.add_mailbox(session, "b@example.net", Policy())
    mailboxes.add_mailbox(session, "a@example.jp", Policy())
    assert [m.address for m in mailboxes.list_mailboxes(session)] == ["a@example.jp", "b@example.net", MAILBOX]
    assert [m.address for m in mailboxes.list_mailboxes(session, "example.net")] == ["b@example.net"]
    assert [m.address for m in mailboxes.list_mailboxes(session, "EXAMPLE.JP")] == ["a@example.jp", MAILBOX]
    assert mailboxes.list_mailboxes(session, "example.org") == []


# ---------------------------------------------------------------- status


def test_suspend_and_resume(session: Session, temporary_password: str) -> None:
    mailboxes.set_status(session, MAILBOX, "suspended")
    assert mailboxes.get_mailbox(session, MAILBOX).status == "suspended"
    assert mailboxes.check_login(session, MAILBOX, temporary_password) is None
    mailboxes.set_status(session, "Taro@Example.jp", "active")
    assert mailboxes.check_login(session, MAILBOX, temporary_password) is not None


def test_status_must_be_known(session: Session) -> None:
    with pytest.raises(EntryError) as info:
        mailboxes.set_status(session, MAILBOX, "disabled")
    assert codes(info) == ["status_invalid"]
    with pytest.raises(NotFound):
        mailboxes.set_status(session, "nobody@example.jp", "active")
    with pytest.raises(NotFound):
        mailboxes.get_mailbox(session, "nobody@example.jp")


# ---------------------------------------------------------------- passwords and logins


def test_set_password_checks_every_rule(session: Session, temporary_password: str) -> None:
    with pytest.raises(EntryError) as info:
        mailboxes.set_password(session, MAILBOX, "ab!", Policy())
    assert set(codes(info)) == {"password_too_short", "password_forbidden_characters", "password_no_digit"}
    # nothing changed
    assert mailboxes.check_login(session, MAILBOX, temporary_password) is not None


def test_set_password_takes_effect_at_once(session: Session, temporary_password: str) -> None:
    mailboxes.set_password(session, MAILBOX, "New-pass42", Policy())
    assert mailboxes.check_login(session, MAILBOX, temporary_password) is None
    info = mailboxes.check_login(session, MAILBOX, "New-pass42")
    assert info is not None and not info.must_change_password
    mailboxes.set_password(session, MAILBOX, "Other-pass43", Policy(), must_change=True)
    assert mailboxes.get_mailbox(session, MAILBOX).must_change_password


def test_reset_password_issues_a_new_temporary_password(session: Session, temporary_password: str) -> None:
    mailboxes.set_password(session, MAILBOX, "New-pass42", Policy())
    temporary = mailboxes.reset_password(session, MAILBOX, Policy())
    assert temporary != temporary_password
    assert mailboxes.check_login(session, MAILBOX, "New-pass42") is None
    info = mailboxes.check_login(session, MAILBOX, temporary)
    assert info is not None and info.must_change_password
    with pytest.raises(NotFound):
        mailboxes.reset_password(session, "nobody@example.jp", Policy())


@pytest.mark.parametrize(
    ("address", "password"),
    [
        ("nobody@example.jp", "whatever1"),
        (MAILBOX, "wrong-pass1"),
        (MAILBOX, ""),
        ("", ""),
        ("not an address", "x"),
    ],
)
def test_failed_logins_all_look_the_same(session: Session, address: str, password: str) -> None:
    assert mailboxes.check_login(session, address, password) is None


def test_unknown_address_costs_a_hash_verification(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    verified: list[str] = []
    real = passwords.verify_password

    def spy(stored: str, password: str) -> bool:
        verified.append(stored)
        return real(stored, password)

    monkeypatch.setattr(mailboxes, "verify_password", spy)
    assert mailboxes.check_login(session, "nobody@example.jp", "Secret-123") is None
    assert verified == [passwords.dummy_hash()]


def test_login_is_case_insensitive_in_the_address(session: Session, temporary_password: str) -> None:
    info = mailboxes.check_login(session, "Taro@EXAMPLE.jp", temporary_password)
    assert info is not None and info.address == MAILBOX


def test_legacy_hash_is_replaced_after_a_successful_login(factory: sessionmaker[Session]) -> None:
    legacy = "{BLF-CRYPT}" + bcrypt.hashpw(b"Legacy-pass1", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    with factory.begin() as session:
        session.scalars(select(Mailbox)).one().password_hash = legacy
    with factory.begin() as session:
        assert mailboxes.check_login(session, MAILBOX, "wrong-pass1") is None
        assert session.scalar(select(Mailbox.password_hash)) == legacy  # not on a failure
        assert mailboxes.check_login(session, MAILBOX, "Legacy-pass1") is not None
    with factory() as session:
        stored = session.scalar(select(Mailbox.password_hash))
    assert stored is not None and stored.startswith("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$")
    with factory() as session:
        assert mailboxes.check_login(session, MAILBOX, "Legacy-pass1") is not None


# ---------------------------------------------------------------- deleting


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_delete_removes_everything_and_retires_the_address(factory: sessionmaker[Session]) -> None:
    limits = Policy().limits
    with factory.begin() as session:
        rules.add_entries(session, MAILBOX, "reject_sender", ["example.com"], limits)
        rules.add_entries(session, MAILBOX, "allow_list", ["friend@example.org"], limits)
        rules.add_forward(session, MAILBOX, "fw@elsewhere.example", True, limits)
        rules.set_auto_reply(session, MAILBOX, AutoReply(
            enabled=True, subject="不在", body="休暇中",
            per_sender=(SenderReply("example.org", "Away", "Back soon"),)), limits)
        quarantine.add_item(session, MAILBOX, b"x", sender="a@example.com", subject="s",
                            rule="reject_sender", entry="example.com", queue_id="Q1", now=NOW, retention_days=7)
        claims.claim_auto_reply(session, MAILBOX, "a@example.org", NOW, dt.timedelta(hours=24))
    with factory.begin() as session:
        mailboxes.delete_mailbox(session, "Taro@Example.JP")
    with factory() as session:
        for model in (Mailbox, RuleEntry, ForwardDestination, AutoReplySender, QuarantineItem, AutoReplyClaim):
            assert _count(session, model) == 0, model
        assert session.scalars(select(DeletedAddress.address)).all() == [MAILBOX]
        assert rules.load_rules(session, MAILBOX) is None
    with factory.begin() as session, pytest.raises(EntryError) as info:
        mailboxes.add_mailbox(session, MAILBOX, Policy())
    assert codes(info) == ["address_retired"]
    with factory.begin() as session, pytest.raises(NotFound):
        mailboxes.delete_mailbox(session, MAILBOX)
