"""Alembic environment of the rule store.

``mailadmin db upgrade`` (:func:`mailadmin.store.db.upgrade`) runs this with
an open connection in ``config.attributes["connection"]``.  A new revision is
written by changing ``store/models.py``, running
:func:`mailadmin.store.db.new_revision` and reviewing the generated file.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from mailadmin.store.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite can't ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from mailadmin.store.db import make_engine

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given to the migrations")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported: run `mailadmin db upgrade`")
_main()
