"""Contracts (seed 002): every mailbox belongs to one contract and has a role;
an admin's page session may act on another mailbox of its contract.

Each mailbox that exists before this revision gets a contract of its own,
numbered 10000000000000 + its id, in which it is the admin.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MIGRATED_NUMBER_BASE = 10_000_000_000_000


def upgrade() -> None:
    op.create_table('contract',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('max_mailboxes', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domain.id'], name=op.f('fk_contract_domain_id_domain'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract')),
    sa.UniqueConstraint('number', name=op.f('uq_contract_number'))
    )
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contract_domain_id'), ['domain_id'], unique=False)

    with op.batch_alter_table('mailbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contract_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('role', sa.String(length=8), nullable=True))

    bind = op.get_bind()
    mailbox = sa.table('mailbox', sa.column('id', sa.Integer()), sa.column('domain_id', sa.Integer()),
                       sa.column('contract_id', sa.Integer()), sa.column('role', sa.String()))
    contract = sa.table('contract', sa.column('id', sa.Integer()), sa.column('number', sa.String()),
                        sa.column('domain_id', sa.Integer()), sa.column('created_at', sa.DateTime(timezone=True)))
    now = dt.datetime.now(dt.timezone.utc)
    if bind.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # the store keeps naive UTC text on SQLite
    for box_id, domain_id in bind.execute(sa.select(mailbox.c.id, mailbox.c.domain_id)).all():
        contract_id = bind.execute(
            contract.insert().values(number=str(MIGRATED_NUMBER_BASE + box_id), domain_id=domain_id,
                                     created_at=now).returning(contract.c.id)).scalar_one()
        bind.execute(mailbox.update().where(mailbox.c.id == box_id)
                     .values(contract_id=contract_id, role="admin"))

    with op.batch_alter_table('mailbox', schema=None) as batch_op:
        batch_op.alter_column('contract_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('role', existing_type=sa.String(length=8), nullable=False)
        batch_op.create_index(batch_op.f('ix_mailbox_contract_id'), ['contract_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_mailbox_contract_id_contract'), 'contract',
                                    ['contract_id'], ['id'], ondelete='RESTRICT')
        batch_op.create_check_constraint('role', "role IN ('admin', 'user')")

    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('acting_mailbox_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_web_session_acting_mailbox_id_mailbox'), 'mailbox',
                                    ['acting_mailbox_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_web_session_acting_mailbox_id_mailbox'), type_='foreignkey')
        batch_op.drop_column('acting_mailbox_id')
    with op.batch_alter_table('mailbox', schema=None) as batch_op:
        batch_op.drop_constraint('role', type_='check')
        batch_op.drop_constraint(batch_op.f('fk_mailbox_contract_id_contract'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_mailbox_contract_id'))
        batch_op.drop_column('role')
        batch_op.drop_column('contract_id')
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contract_domain_id'))
    op.drop_table('contract')
