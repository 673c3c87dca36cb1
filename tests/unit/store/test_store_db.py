"""Engines and migrations: the schema comes only from the Alembic revisions, and
those revisions agree with the models."""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import warnings
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.errors import ServiceUnavailable
from mailadmin.store import db
from mailadmin.config.model import Policy
from mailadmin.store import mailboxes, quarantine
from tests.fixtures.databases import Backend, start_postgres, stop_postgres
from tests.fixtures.scanners import free_tcp_port
from mailadmin.store.models import Base, Domain, ForwardDestination, Mailbox, OutboxMessage, QuarantineItem

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
# Revision files are numbered NNNN_what.py: the highest number is the head.
NEWEST_REVISION = max(p.name[:4] for p in
                      (Path(db.__file__).parent / "migrations" / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def test_upgrade_creates_the_directory_and_reaches_head(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "mail.db"
    url = f"sqlite:///{path}"
    assert db.current_revision(url) is None
    assert not path.exists()  # asking for the revision creates nothing
    db.upgrade(url)
    assert path.is_file()
    assert db.current_revision(url) == db.head_revision() == NEWEST_REVISION
    db.upgrade(url)  # idempotent
    assert db.current_revision(url) == NEWEST_REVISION


def test_url_with_percent_sign(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/100%25/mail.db"
    db.upgrade(url)
    assert db.current_revision(url) == NEWEST_REVISION


def test_models_and_migrations_agree(db_url: str) -> None:
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as connection, warnings.catch_warnings():
            # SQLite can't reflect expression indexes; that one is checked below.
            warnings.filterwarnings("ignore", message=".*expression-based index.*")
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            query = ("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'forward_destination'"
                     if connection.dialect.name == "sqlite" else
                     "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'forward_destination'")
            indexes: dict[str, str] = dict(connection.execute(text(query)).all())
    finally:
        engine.dispose()
    # SQLite keeps the statement as written; PostgreSQL writes lower((address)::text).
    assert re.search(r"lower\(\(?address\)?(::text)?\)", indexes["uq_forward_destination_mailbox_id_address"])
    assert "UNIQUE" in indexes["uq_forward_destination_mailbox_id_address"]


def test_every_model_table_is_created_by_the_migration(db_url: str) -> None:
    engine = db.make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) | {"alembic_version"} == tables


def test_downgrade_to_base_and_back(db_url: str) -> None:
    db.downgrade(db_url, "base")
    assert db.current_revision(db_url) is None
    engine = db.make_engine(db_url)
    try:
        assert inspect(engine).get_table_names() == ["alembic_version"]
    finally:
        engine.dispose()
    db.upgrade(db_url)
    assert db.current_revision(db_url) == NEWEST_REVISION


def test_mailboxes_before_contracts_get_a_contract_of_their_own(tmp_path: Path) -> None:
    """Migration 0003: each mailbox that stood alone becomes the admin of its own contract."""
    url = f"sqlite:///{tmp_path}/old.db"
    db.upgrade(url, "0002")
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO domain (id, name, smtp_server, pop_server, created_at) "
                              "VALUES (1, 'example.jp', 'smtp.example.jp', 'pop.example.jp', '2026-01-01')"))
            for box_id, address in ((1, "taro@example.jp"), (2, "hanako@example.jp")):
                conn.execute(text(
                    "INSERT INTO mailbox (id, address, domain_id, password_hash, status, must_change_password,"
                    " created_at, virus_scan_enabled, spam_scan_enabled, spam_quarantine_enabled,"
                    " quarantine_notice_enabled, header_conditions, auto_reply_enabled, auto_reply_subject,"
                    " auto_reply_body) VALUES (:id, :address, 1, 'x', 'active', 0, '2026-01-01', 1, 1, 0, 0,"
                    " '', 0, '', '')"), {"id": box_id, "address": address})
    finally:
        engine.dispose()
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        with db.make_session_factory(engine)() as session:
            boxes = {b.address: b for b in mailboxes.list_mailboxes(session)}
    finally:
        engine.dispose()
    assert {b.role for b in boxes.values()} == {"admin"}
    assert boxes["taro@example.jp"].contract == "10000000000001"
    assert boxes["hanako@example.jp"].contract == "10000000000002"


@pytest.mark.sqlite_only
def test_sqlite_connection_settings(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert session.execute(text("PRAGMA busy_timeout")).scalar() == 10_000


def test_foreign_keys_are_enforced(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        with pytest.raises(IntegrityError):
            session.execute(insert(ForwardDestination).values(mailbox_id=9999, address="a@b.example",
                                                              keep_copy=True))
            session.flush()


def test_forward_destinations_are_unique_regardless_of_case(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        box_id = session.scalar(select(Mailbox.id))
        session.add(ForwardDestination(mailbox_id=box_id, address="Hanako@Elsewhere.example", keep_copy=True))
        session.flush()
        session.add(ForwardDestination(mailbox_id=box_id, address="hanako@elsewhere.example", keep_copy=False))
        with pytest.raises(IntegrityError):
            session.flush()


def test_mailbox_addresses_are_stored_lower_case(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        box = session.scalars(select(Mailbox)).one()
        box.address = "Taro@example.jp"
        with pytest.raises(IntegrityError):
            session.flush()


def test_times_are_stored_as_utc_and_come_back_aware(factory: sessionmaker[Session]) -> None:
    jst = dt.timezone(dt.timedelta(hours=9))
    local = dt.datetime(2026, 11, 23, 21, 0, tzinfo=jst)
    with factory.begin() as session:
        session.add(Domain(name="example.net", smtp_server="s", pop_server="p", created_at=local))
    with factory() as session:
        back = session.scalars(select(Domain.created_at).where(Domain.name == "example.net")).one()
        raw = session.execute(text("SELECT created_at FROM domain WHERE name = 'example.net'")).scalar()
    assert back == local and back.tzinfo == dt.timezone.utc and back.hour == 12
    assert str(raw).startswith("2026-11-23 12:00:00")


def test_naive_datetimes_are_refused(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.add(OutboxMessage(purpose="x", mail_from="", rcpt_tos=["a@b.example"], message=b"",
                                  created_at=dt.datetime(2026, 1, 1), next_attempt_at=NOW, attempts=0))
        with pytest.raises(StatementError, match="naive datetime"):
            session.flush()


def test_times_sort_in_time_order_across_offsets(factory: sessionmaker[Session]) -> None:
    # Stored as UTC text, so a later instant written with a smaller local
    # hour still compares as later.
    early = dt.datetime(2026, 11, 23, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))  # 11:00Z
    late = dt.datetime(2026, 11, 23, 11, 30, tzinfo=dt.timezone.utc)
    with factory.begin() as session:
        for name, when in (("early.example", early), ("late.example", late)):
            session.add(Domain(name=name, smtp_server="s", pop_server="p", created_at=when))
    with factory() as session:
        after = session.scalars(select(Domain.name).where(Domain.created_at > early)).all()
    assert "late.example" in after and "early.example" not in after


def test_unmigrated_database_is_a_service_error_naming_the_fix(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/empty.db")
    try:
        with engine.connect() as connection, pytest.raises(ServiceUnavailable) as info:
            connection.execute(select(Mailbox.id))
    finally:
        engine.dispose()
    assert info.value.service == "database"
    assert "db upgrade" in info.value.detail


def test_unreachable_database_is_a_service_error(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/missing-dir/mail.db")
    try:
        with pytest.raises(ServiceUnavailable), engine.connect():
            pass
    finally:
        engine.dispose()


def test_an_unreachable_postgresql_server_is_a_service_error() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_tcp_port()}/mailadmin"
    with pytest.raises(ServiceUnavailable) as info:
        db.current_revision(url)
    assert info.value.service == "database"
    engine = db.make_engine(url)
    try:
        with pytest.raises(ServiceUnavailable), engine.connect():
            pass
    finally:
        engine.dispose()


def test_a_file_that_is_no_database_is_a_service_error(tmp_path: Path) -> None:
    garbage = tmp_path / "mail.db"
    garbage.write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(ServiceUnavailable) as info:
        db.current_revision(f"sqlite:///{garbage}")
    assert info.value.service == "database"
    with pytest.raises(ServiceUnavailable):
        db.upgrade(f"sqlite:///{garbage}")


@pytest.mark.sqlite_only
def test_locked_database_times_out_as_a_service_error(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_SECONDS", 0.05)
    path = db_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    engine = db.make_engine(db_url)
    try:
        with db.make_session_factory(engine)() as session, pytest.raises(ServiceUnavailable, match="locked"):
            session.add(Domain(name="example.org", smtp_server="s", pop_server="p", created_at=NOW))
            session.flush()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        engine.dispose()


def test_a_postgresql_restart_costs_no_operation_and_an_outage_is_unavailable() -> None:
    """Regression (issue 10, PostgreSQL stopped under load): the error mapping
    replaced the pre-ping's disconnect error with ServiceUnavailable, so the
    pool never reconnected a connection the restart had ended: every pooled
    connection failed once more after the server was back (the fault tier's
    own store view failed on it)."""
    cluster = start_postgres()
    try:
        engine = db.make_engine(cluster.create_database("restart"), pool_size=3, max_overflow=0)
        held = [engine.connect() for _ in range(3)]
        for conn in held:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            conn.close()  # back to the pool, alive
        cluster.stop()
        with pytest.raises(ServiceUnavailable):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        cluster.start()
        again = [engine.connect() for _ in range(3)]
        assert [c.execute(text("SELECT 1")).scalar() for c in again] == [1, 1, 1]
        for conn in again:
            conn.close()
        engine.dispose()
    finally:
        stop_postgres(cluster)


def test_quarantine_reason_becomes_rule_and_entry_and_back(backend: Backend, tmp_path: Path) -> None:
    """Migration 0007: an item's reason splits at its first ``:`` into rule and
    entry (the entry may hold colons itself); downgrading joins them again."""
    url = backend.new_url(tmp_path, "quarantine_0007")
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        with db.make_session_factory(engine).begin() as session:
            mailboxes.add_domain(session, "example.jp", smtp_server="smtp.example.jp", pop_server="pop.example.jp")
            mailboxes.add_mailbox(session, "taro@example.jp", Policy())
            quarantine.add_item(session, "taro@example.jp", b"Subject: a\r\n\r\nx\r\n", sender="a@example.org",
                                subject="a", rule="spam", entry="9.5/5.0", queue_id=None, now=NOW,
                                retention_days=7)
    finally:
        engine.dispose()
    db.downgrade(url, "0006")
    engine = db.make_engine(url)
    try:
        with engine.begin() as conn:
            assert conn.execute(text("SELECT reason FROM quarantine_item")).scalars().all() == ["spam:9.5/5.0"]
            # Rows as earlier releases wrote them: an entry with a colon, a bare rule.
            for reason in ("header_conditions:x-mailer:bulk", "virus_scan"):
                conn.execute(text(
                    "INSERT INTO quarantine_item (mailbox_id, received_at, expires_at, sender, subject, reason,"
                    " message) SELECT id, :now, :now, 'b@example.org', 'b', :reason, :raw FROM mailbox"),
                    {"now": NOW, "reason": reason, "raw": b"Subject: b\r\n\r\ny\r\n"})
    finally:
        engine.dispose()
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        with db.make_session_factory(engine)() as session:
            items = session.execute(
                select(QuarantineItem.rule, QuarantineItem.entry).order_by(QuarantineItem.id)).all()
            infected = [i.id for i in quarantine.list_items(session, "taro@example.jp")
                        if quarantine.is_infected(i.rule)]
    finally:
        engine.dispose()
    assert [tuple(i) for i in items] == [("spam", "9.5/5.0"), ("header_conditions", "x-mailer:bulk"),
                                        ("virus_scan", "")]
    assert len(infected) == 1  # the old scan name still marks it infected: never released
