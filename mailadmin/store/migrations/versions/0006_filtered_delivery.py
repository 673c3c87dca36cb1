"""The messages the after-queue content filter has taken, per recipient: the
MTA's queue ID and the message digest, so a message handed over again after
its reply was lost (the filter killed between its commit and its 250) is
recognised and its effects are not applied twice (store/filtered.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('filtered_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_filtered_delivery')),
    sa.UniqueConstraint('digest', 'recipient', name=op.f('uq_filtered_delivery_digest_recipient'))
    )
    with op.batch_alter_table('filtered_delivery', schema=None) as batch_op:
        batch_op.create_index('ix_filtered_delivery_created_at', ['created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('filtered_delivery', schema=None) as batch_op:
        batch_op.drop_index('ix_filtered_delivery_created_at')
    op.drop_table('filtered_delivery')
