"""Store fixtures: a SQLite file per test in tmp_path, migrated by the real migrations.

Migrating and hashing a password (Argon2id, 64 MiB) take time, so one
template database with a domain and a mailbox is built per session and
copied for each test.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.config.model import Policy
from mailadmin.store import db, mailboxes

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
DOMAIN = "example.jp"
MAILBOX = "taro@example.jp"


@dataclass(frozen=True)
class Template:
    path: Path
    temporary_password: str


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    path = tmp_path_factory.mktemp("template") / "store.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    engine = db.make_engine(url)
    with db.make_session_factory(engine).begin() as session:
        mailboxes.add_domain(session, DOMAIN, smtp_server="smtp.example.jp", pop_server="pop.example.jp")
        password = mailboxes.add_mailbox(session, MAILBOX, Policy())
    # Disposing closes the last connection, which checkpoints the WAL into the file.
    engine.dispose()
    return Template(path, password)


@pytest.fixture
def db_url(template: Template, tmp_path: Path) -> str:
    path = tmp_path / "store.db"
    shutil.copyfile(template.path, path)
    return f"sqlite:///{path}"


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
