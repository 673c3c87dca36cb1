"""The rule store's tables (SPEC §1, §3–§9) as SQLAlchemy 2.x typed models.

These classes never leave ``mailadmin.store``: callers get frozen snapshots.
The schema itself is created only by the Alembic revisions in
``store/migrations/versions``; a unit test checks that these models and the
migrated schema agree.

The ``mailbox`` table doubles as Dovecot's SQL passdb (SPEC §1: one password
for the page, SMTP AUTH, POP and IMAP)::

    password_query = SELECT address AS user, password_hash AS password \\
                     FROM mailbox WHERE address = '%u' AND status = 'active'
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

MAILBOX_STATUSES = ("active", "suspended")
# アカウント権限種別 (seed 002): an admin mailbox manages every mailbox of its
# contract, a user mailbox only itself.
MAILBOX_ROLES = ("admin", "user")
RULE_KINDS = ("reject_sender", "reject_subject", "allow_list")

# Every constraint gets a predictable name, so later revisions can drop or
# alter it by name (SQLite batch mode needs names too).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """An aware UTC datetime in, an aware UTC datetime out.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so the value
    is stored as naive UTC text, which also keeps its text comparisons in
    time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store takes aware UTC datetimes only")
        value = value.astimezone(dt.timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Domain(Base):
    __tablename__ = "domain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
    smtp_server: Mapped[str] = mapped_column(String(253))
    pop_server: Mapped[str] = mapped_column(String(253))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class Contract(Base):
    """A contract (契約, seed 002): several mailboxes of one domain under one
    contract number (お客様番号), up to a limit."""

    __tablename__ = "contract"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domain.id", ondelete="RESTRICT"), index=True)
    # None: the domain's policy (contracts.max_mailboxes) decides.
    max_mailboxes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    domain: Mapped[Domain] = relationship(lazy="joined", innerjoin=True)


class Mailbox(Base):
    __tablename__ = "mailbox"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'suspended')", name="status"),
        CheckConstraint("role IN ('admin', 'user')", name="role"),
        # Logins, Dovecot's passdb query and the MTA hook all look addresses up
        # by equality; one spelling per mailbox keeps that an index lookup.
        CheckConstraint("address = lower(address)", name="address_lower_case"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(254), unique=True)
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domain.id", ondelete="RESTRICT"), index=True
    )
    contract_id: Mapped[int] = mapped_column(
        ForeignKey("contract.id", ondelete="RESTRICT"), index=True
    )
    role: Mapped[str] = mapped_column(String(8), default="admin")
    password_hash: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    virus_scan_enabled: Mapped[bool] = mapped_column(Boolean)
    spam_scan_enabled: Mapped[bool] = mapped_column(Boolean)
    spam_quarantine_enabled: Mapped[bool] = mapped_column(Boolean)
    quarantine_notice_enabled: Mapped[bool] = mapped_column(Boolean)
    # The SPEC §4 condition names, comma-separated, in HEADER_CONDITIONS order.
    header_conditions: Mapped[str] = mapped_column(Text, default="")
    overseas_unlocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())

    auto_reply_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_reply_subject: Mapped[str] = mapped_column(Text, default="")
    auto_reply_body: Mapped[str] = mapped_column(Text, default="")
    auto_reply_start_date: Mapped[dt.date | None] = mapped_column(Date)
    auto_reply_end_date: Mapped[dt.date | None] = mapped_column(Date)

    domain: Mapped[Domain] = relationship(lazy="joined", innerjoin=True)
    contract: Mapped[Contract] = relationship(lazy="joined", innerjoin=True)
    # passive_deletes: the database's ON DELETE CASCADE removes the children,
    # so deleting a mailbox does not load its quarantine first.
    rule_entries: Mapped[list[RuleEntry]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="RuleEntry.id"
    )
    forwards: Mapped[list[ForwardDestination]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, order_by="ForwardDestination.id"
    )
    auto_reply_senders: Mapped[list[AutoReplySender]] = relationship(
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="AutoReplySender.position",
    )


class RuleEntry(Base):
    """One entry of a reject or allow list (SPEC §4, §5)."""

    __tablename__ = "rule_entry"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('reject_sender', 'reject_subject', 'allow_list')", name="kind"
        ),
        UniqueConstraint("mailbox_id", "kind", "normalized"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    # As the subscriber typed it (stripped), shown back on the page.
    value: Mapped[str] = mapped_column(Text)
    # The duplicate key of mailtext.entries (sender_entry_key / subject_entry_key).
    normalized: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ForwardDestination(Base):
    """One forwarding destination (SPEC §3)."""

    __tablename__ = "forward_destination"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(254))
    keep_copy: Mapped[bool] = mapped_column(Boolean)


# The local part keeps its case for delivery, but two spellings of one address
# are one destination.
Index(
    "uq_forward_destination_mailbox_id_address",
    ForwardDestination.mailbox_id,
    func.lower(ForwardDestination.address),
    unique=True,
)


class AutoReplySender(Base):
    """A per-sender auto-reply text (SPEC §6); the lowest ``position`` that matches wins."""

    __tablename__ = "auto_reply_sender"
    __table_args__ = (UniqueConstraint("mailbox_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    pattern: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)


class QuarantineItem(Base):
    """A message held in a mailbox's quarantine (迷惑メールフォルダ, SPEC §4, §8)."""

    __tablename__ = "quarantine_item"
    __table_args__ = (Index("ix_quarantine_item_mailbox_id_received_at", "mailbox_id", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id", ondelete="CASCADE"))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    sender: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    # What held it: the rule (reject_sender, spam, …) and what matched (the entry, the score).
    rule: Mapped[str] = mapped_column(String(64))
    entry: Mapped[str] = mapped_column(Text)
    message: Mapped[bytes] = mapped_column(LargeBinary)
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    queue_id: Mapped[str | None] = mapped_column(String(64))

    @property
    def reason(self) -> str:
        return join_reason(self.rule, self.entry)


def join_reason(rule: str, entry: str) -> str:
    """``rule:entry``, the reason the decision log line gave (the rule alone without an entry)."""
    return f"{rule}:{entry}" if entry else rule


class FilteredDelivery(Base):
    """A message the after-queue content filter has taken, per recipient
    (store/filtered.py): the MTA's queue ID and the message's digest, written
    in the transaction of the decision's effects, so a message the MTA hands
    over again (its reply lost to a crash) is recognised and not applied twice."""

    __tablename__ = "filtered_delivery"
    __table_args__ = (UniqueConstraint("digest", "recipient"), Index("ix_filtered_delivery_created_at", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class AutoReplyClaim(Base):
    """When a mailbox last auto-replied to a sender (SPEC §6: one reply per window).

    Keyed by address rather than by mailbox id: the claim is taken in one
    INSERT … ON CONFLICT statement without reading the mailbox row first.
    """

    __tablename__ = "auto_reply_claim"
    __table_args__ = (UniqueConstraint("mailbox_address", "sender"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_address: Mapped[str] = mapped_column(String(254))
    sender: Mapped[str] = mapped_column(String(320))
    last_sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class OutboxMessage(Base):
    """Mail the daemon sends, kept until the relay accepts it (SPEC §10)."""

    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_message_sent_at_next_attempt_at", "sent_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    # "" is the null sender <> (auto-replies, reports: RFC 3834 §3.3).
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_tos: Mapped[list[str]] = mapped_column(JSON)
    message: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class LoginFailure(Base):
    """One failed login, keyed by ``address:…`` or ``ip:…`` (SPEC §1 throttling)."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_key_failed_at", "key", "failed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(400))
    failed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class RulesGeneration(Base):
    """One row whose ``value`` database triggers bump on every change to a table
    rules snapshots are read from (migration 0005), for store/rules_cache.py."""

    __tablename__ = "rules_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class DeletedAddress(Base):
    """An address that was deleted and is never issued again (SPEC §1)."""

    __tablename__ = "deleted_address"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(254), unique=True)
    deleted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class ContactAddress(Base):
    """A mailbox's confirmed contact address (連絡先メールアドレス, seeds 000, 001):
    where change notices and password-reset codes go.  Only an address whose
    認証コード was entered is stored here."""

    __tablename__ = "contact_address"

    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id", ondelete="CASCADE"), primary_key=True)
    address: Mapped[str] = mapped_column(String(254))
    confirmed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class VerificationCode(Base):
    """A one-time 認証コード (seeds 000, 001): to confirm a new contact address
    (``purpose = 'contact'``, ``address`` is that address) or to reset a
    forgotten password (``'reset'``, ``address`` is the contact address it went
    to).  Only its hash is kept; one live code per mailbox and purpose."""

    __tablename__ = "verification_code"
    __table_args__ = (
        CheckConstraint("purpose IN ('contact', 'reset')", name="purpose"),
        Index("ix_verification_code_mailbox_id_purpose", "mailbox_id", "purpose"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(254))
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Set when the code was entered right, or replaced by a newer one: never valid again.
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class ChangeEvent(Base):
    """One change saved on the page, to be told to ``mailbox_address`` in a change
    notice (seed 001).  Written in the transaction of the change itself.

    Keyed by address, not by mailbox id: the notice of a change made by an
    admin on a mailbox it then deleted still reaches the admin, and a row
    outlives nothing it needs.  What changed is kept as rendered text in both
    languages (``details``: ``{"ja": {"title": …, "rows": [[label, [values]]]},
    "en": {…}}``), so the notice says what the page said, whatever the code
    later becomes."""

    __tablename__ = "change_event"
    __table_args__ = (
        Index("ix_change_event_mailbox_address_notified_at", "mailbox_address", "notified_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox_address: Mapped[str] = mapped_column(String(254))
    changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    client_ip: Mapped[str] = mapped_column(String(64))
    # The mailbox that logged in and the one the change was made on.
    login_address: Mapped[str] = mapped_column(String(254))
    target_address: Mapped[str] = mapped_column(String(254))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Further recipients of this change's notice (the old contact address).
    also_notify: Mapped[list[str]] = mapped_column(JSON)
    notified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())


class WebSession(Base):
    """One logged-in browser."""

    __tablename__ = "web_session"
    __table_args__ = (Index("ix_web_session_last_seen_at", "last_seen_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailbox.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    # The contract mailbox an admin session acts on (seed 002), None: its own.
    # Re-authorised on every request (contracts.acting_target).
    acting_mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailbox.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
