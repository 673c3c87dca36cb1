"""Contact addresses, one-time codes and change events (seeds 000, 001): a
mailbox's confirmed 連絡先メールアドレス, the hashed 認証コード sent to confirm one
or to reset a password, and every change saved on the page until its notice
is sent.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('contact_address',
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailbox.id'], name=op.f('fk_contact_address_mailbox_id_mailbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('mailbox_id', name=op.f('pk_contact_address'))
    )
    op.create_table('verification_code',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('code_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("purpose IN ('contact', 'reset')", name=op.f('ck_verification_code_purpose')),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailbox.id'], name=op.f('fk_verification_code_mailbox_id_mailbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verification_code'))
    )
    op.create_index('ix_verification_code_mailbox_id_purpose', 'verification_code', ['mailbox_id', 'purpose'], unique=False)
    op.create_table('change_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox_address', sa.String(length=254), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client_ip', sa.String(length=64), nullable=False),
    sa.Column('login_address', sa.String(length=254), nullable=False),
    sa.Column('target_address', sa.String(length=254), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('also_notify', sa.JSON(), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_event'))
    )
    op.create_index('ix_change_event_mailbox_address_notified_at', 'change_event', ['mailbox_address', 'notified_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_change_event_mailbox_address_notified_at', table_name='change_event')
    op.drop_table('change_event')
    op.drop_index('ix_verification_code_mailbox_id_purpose', table_name='verification_code')
    op.drop_table('verification_code')
    op.drop_table('contact_address')
