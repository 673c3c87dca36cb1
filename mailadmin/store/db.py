"""Engines, sessions and schema migrations for the rule store (SPEC §11: SQLite by
default, PostgreSQL when several MTA hosts share one store).

SQLite is opened so that several daemon processes can share one file: WAL
journal (readers never wait for the writer), a 10 s busy timeout (writers
queue instead of failing) and foreign keys enforced.  The schema is created
and changed only by the Alembic revisions in ``store/migrations``; run them
with :func:`upgrade` (``mailadmin db upgrade``).

Database errors that mean "the store can't be used right now" (locked past
the timeout, unreachable server, missing file or schema) are raised as
:class:`~mailadmin.errors.ServiceUnavailable` with service ``"database"``,
so the adapters answer with the configured fail mode and the CLI exits with
EX_TEMPFAIL.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DatabaseError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mailadmin.errors import ServiceUnavailable

SQLITE_BUSY_TIMEOUT_SECONDS = 10.0
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

SERVICE = "database"


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_file(url: str) -> Path | None:
    """The file of a file-backed SQLite URL, ``None`` for memory databases."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # The timeout first: switching to WAL itself needs a lock another
        # process may hold at that moment.
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # WAL with NORMAL stays consistent after a crash; only the last
        # commits before a power loss can be lost.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _map_error(context: ExceptionContext) -> BaseException | None:
    if context.is_pre_ping:
        # The pool's liveness check of a pooled connection: left to SQLAlchemy,
        # a disconnect there discards the connection and opens a new one.
        # Replaced by ServiceUnavailable, the pool never reconnected, and every
        # connection a PostgreSQL restart had ended failed once more after it.
        return None
    error = context.sqlalchemy_exception
    # A bare DatabaseError (not Integrity/Programming...) is a damaged file.
    if isinstance(error, OperationalError) or type(error) is DatabaseError or context.is_disconnect:
        detail = str(context.original_exception)
        if "no such table" in detail:
            detail += " (the schema is missing: run `mailadmin db upgrade`)"
        return ServiceUnavailable(SERVICE, detail)
    return None


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys,
    PostgreSQL a pool of ``pool_size`` connections (+ ``max_overflow`` at a peak)."""
    if _is_sqlite(url):
        engine = create_engine(
            url,
            connect_args={
                "timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                # Sessions run in worker threads (asyncio.to_thread); the pool
                # hands one connection to one thread at a time.
                "check_same_thread": False,
            },
        )
        event.listen(engine, "connect", _on_sqlite_connect)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)
    event.listen(engine, "handle_error", _map_error)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (snapshots are built after it)."""
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection: Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The URL may hold '%' (escaped passwords), which ConfigParser would
    # interpolate: the connection is handed over as an object instead.
    config.attributes["connection"] = connection
    return config


def _prepare(url: str) -> None:
    if _is_sqlite(url):
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)


def upgrade(url: str, revision: str = "head") -> None:
    """Create or migrate the schema of the database at ``url`` to ``revision``."""
    _prepare(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), revision)
    except DBAPIError as exc:  # raised outside a statement, e.g. while committing
        raise ServiceUnavailable(SERVICE, str(exc.orig)) from exc
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    """Migrate the schema at ``url`` back to ``revision`` (``"base"``: drop every table)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            command.downgrade(_alembic_config(connection), revision)
    except DBAPIError as exc:
        raise ServiceUnavailable(SERVICE, str(exc.orig)) from exc
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The schema revision of the database at ``url``; ``None`` when it has none yet."""
    if _is_sqlite(url):
        path = _sqlite_file(url)
        if path is not None and not path.exists():
            return None
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            revision: str | None = MigrationContext.configure(connection).get_current_revision()
            return revision
    except DBAPIError as exc:
        raise ServiceUnavailable(SERVICE, str(exc.orig)) from exc
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision the shipped migrations know."""
    from alembic.script import ScriptDirectory

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head: str | None = ScriptDirectory.from_config(config).get_current_head()
    return head


def new_revision(url: str, message: str) -> None:
    """Write a new revision file for the difference between ``store/models.py`` and
    the schema of the database at ``url`` (migrated to head first).  For
    developers changing the schema; review the file before committing it."""
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = _alembic_config(connection)
            # Revision files are named by what they do, in order: 0002_add_….py
            number = len(list((MIGRATIONS_DIR / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))) + 1
            config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
            command.revision(config, message=message, autogenerate=True, rev_id=f"{number:04d}")
    finally:
        engine.dispose()
