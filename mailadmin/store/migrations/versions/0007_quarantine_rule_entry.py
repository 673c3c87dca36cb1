"""A quarantine item names the rule that held it and the entry that matched as
two columns (``reject_sender`` / ``spam.example``), not one ``reason`` string
the page and the release path had to split again.

Existing rows are split at the first ``:`` of their reason (the format every
release wrote: ``rule:entry``).  Downgrading joins them back.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('quarantine_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('entry', sa.Text(), nullable=True))
    position = "instr(reason, ':')" if op.get_bind().dialect.name == "sqlite" else "strpos(reason, ':')"
    op.execute(f"""
        UPDATE quarantine_item SET
            rule = substr(CASE WHEN {position} > 0 THEN substr(reason, 1, {position} - 1) ELSE reason END, 1, 64),
            entry = CASE WHEN {position} > 0 THEN substr(reason, {position} + 1) ELSE '' END
    """)
    with op.batch_alter_table('quarantine_item', schema=None) as batch_op:
        batch_op.alter_column('rule', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('entry', existing_type=sa.Text(), nullable=False)
        batch_op.drop_column('reason')


def downgrade() -> None:
    with op.batch_alter_table('quarantine_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.Text(), nullable=True))
    op.execute("UPDATE quarantine_item SET reason = CASE WHEN entry = '' THEN rule ELSE rule || ':' || entry END")
    with op.batch_alter_table('quarantine_item', schema=None) as batch_op:
        batch_op.alter_column('reason', existing_type=sa.Text(), nullable=False)
        batch_op.drop_column('entry')
        batch_op.drop_column('rule')
