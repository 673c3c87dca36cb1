"""Store fixtures: a database per test, on SQLite and on PostgreSQL (the
``backend`` fixture), migrated by the real migrations.

Migrating and hashing a password (Argon2id, 64 MiB) take time, so one
template database with a domain and a mailbox is built per session and
cloned for each test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.config.model import Policy
from mailadmin.store import db, mailboxes
from tests.fixtures.databases import Backend

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
DOMAIN = "example.jp"
MAILBOX = "taro@example.jp"


@dataclass(frozen=True)
class Template:
    url: str
    temporary_password: str


@pytest.fixture(scope="session")
def template(backend: Backend) -> Template:
    passwords: list[str] = []

    def build(url: str) -> None:
        db.upgrade(url)
        engine = db.make_engine(url)
        with db.make_session_factory(engine).begin() as session:
            mailboxes.add_domain(session, DOMAIN, smtp_server="smtp.example.jp", pop_server="pop.example.jp")
            passwords.append(mailboxes.add_mailbox(session, MAILBOX, Policy()))
        # Disposing closes the last connection: SQLite checkpoints the WAL into the
        # file, and PostgreSQL can copy a template nobody is connected to.
        engine.dispose()

    url = backend.template("store", build)  # session scope: built once per backend
    return Template(url, passwords[0])


@pytest.fixture
def db_url(template: Template, backend: Backend, tmp_path: Path) -> str:
    return backend.clone(template.url, tmp_path)


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = db.make_engine(db_url)
    yield db.make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def session(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as s:
        yield s


@pytest.fixture
def temporary_password(template: Template) -> str:
    return template.temporary_password
