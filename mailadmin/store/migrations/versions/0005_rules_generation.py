"""A generation counter the rule tables bump on every change, so a daemon can
keep rules snapshots in memory and still see a change within a second
(SPEC §10; store/rules_cache.py).

Triggers, not application code, bump it: every path that writes rules
(page, CLI, import, another host, a postmaster's SQL) is covered.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every table a rules snapshot (store/rules.py load_rules) is read from.
WATCHED = ("domain", "mailbox", "rule_entry", "forward_destination", "auto_reply_sender")
EVENTS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    op.create_table('rules_generation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rules_generation'))
    )
    op.execute("INSERT INTO rules_generation (id, value) VALUES (1, 1)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION mailadmin_bump_rules_generation() RETURNS trigger AS $$
            BEGIN
                UPDATE rules_generation SET value = value + 1 WHERE id = 1;
                RETURN NULL;
            END $$ LANGUAGE plpgsql""")
        for table in WATCHED:
            op.execute(f"CREATE TRIGGER trg_{table}_rules_generation AFTER INSERT OR UPDATE OR DELETE "
                       f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION mailadmin_bump_rules_generation()")
    else:
        for table in WATCHED:
            for event in EVENTS:
                op.execute(f"CREATE TRIGGER trg_{table}_{event.lower()}_rules_generation AFTER {event} ON {table} "
                           "BEGIN UPDATE rules_generation SET value = value + 1 WHERE id = 1; END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER trg_{table}_rules_generation ON {table}")
        op.execute("DROP FUNCTION mailadmin_bump_rules_generation()")
    else:
        for table in WATCHED:
            for event in EVENTS:
                op.execute(f"DROP TRIGGER trg_{table}_{event.lower()}_rules_generation")
    op.drop_table('rules_generation')
