"""Create the rule store: domains, mailboxes and their rules, quarantine,
auto-reply claims, the outbox, login failures and retired addresses.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('auto_reply_claim',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox_address', sa.String(length=254), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('last_sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auto_reply_claim')),
    sa.UniqueConstraint('mailbox_address', 'sender', name=op.f('uq_auto_reply_claim_mailbox_address_sender'))
    )
    op.create_table('deleted_address',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deleted_address')),
    sa.UniqueConstraint('address', name=op.f('uq_deleted_address_address'))
    )
    op.create_table('domain',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('smtp_server', sa.String(length=253), nullable=False),
    sa.Column('pop_server', sa.String(length=253), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domain')),
    sa.UniqueConstraint('name', name=op.f('uq_domain_name'))
    )
    op.create_table('login_failure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failure'))
    )
    op.create_index('ix_login_failure_key_failed_at', 'login_failure', ['key', 'failed_at'], unique=False)
    op.create_table('outbox_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('mail_from', sa.String(length=320), nullable=False),
    sa.Column('rcpt_tos', sa.JSON(), nullable=False),
    sa.Column('message', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_message'))
    )
    op.create_index('ix_outbox_message_sent_at_next_attempt_at', 'outbox_message', ['sent_at', 'next_attempt_at'], unique=False)
    op.create_table('mailbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('must_change_password', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('virus_scan_enabled', sa.Boolean(), nullable=False),
    sa.Column('spam_scan_enabled', sa.Boolean(), nullable=False),
    sa.Column('spam_quarantine_enabled', sa.Boolean(), nullable=False),
    sa.Column('quarantine_notice_enabled', sa.Boolean(), nullable=False),
    sa.Column('header_conditions', sa.Text(), nullable=False),
    sa.Column('overseas_unlocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('auto_reply_enabled', sa.Boolean(), nullable=False),
    sa.Column('auto_reply_subject', sa.Text(), nullable=False),
    sa.Column('auto_reply_body', sa.Text(), nullable=False),
    sa.Column('auto_reply_start_date', sa.Date(), nullable=True),
    sa.Column('auto_reply_end_date', sa.Date(), nullable=True),
    sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f('ck_mailbox_status')),
    sa.CheckConstraint('address = lower(address)', name=op.f('ck_mailbox_address_lower_case')),
    sa.ForeignKeyConstraint(['domain_id'], ['domain.id'], name=op.f('fk_mailbox_domain_id_domain'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mailbox')),
    sa.UniqueConstraint('address', name=op.f('uq_mailbox_address'))
    )
    op.create_index(op.f('ix_mailbox_domain_id'), 'mailbox', ['domain_id'], unique=False)
    op.create_table('auto_reply_sender',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('pattern', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailbox.id'], name=op.f('fk_auto_reply_sender_mailbox_id_mailbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auto_reply_sender')),
    sa.UniqueConstraint('mailbox_id', 'position', name=op.f('uq_auto_reply_sender_mailbox_id_position'))
    )
    op.create_table('forward_destination',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('keep_copy', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailbox.id'], name=op.f('fk_forward_destination_mailbox_id_mailbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forward_destination'))
    )
    # Two spellings of one address are one destination; the local part keeps its case.
    op.create_index('uq_forward_destination_mailbox_id_address', 'forward_destination',
                    ['mailbox_id', sa.text('lower(address)')], unique=True)
    op.create_table('quarantine_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sender', sa.Text(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('message', sa.LargeBinary(), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('queue_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailbox.id'], name=op.f('fk_quarantine_item_mailbox_id_mailbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine_item'))
    )
    op.create_index(op.f('ix_quarantine_item_expires_at'), 'quarantine_item', ['expires_at'], unique=False)
    op.create_index('ix_quarantine_item_mailbox_id_received_at', 'quarantine_item', ['mailbox_id', 'received_at'], unique=False)
    op.create_table('rule_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('normalized', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('reject_sender', 'reject_subject', 'allow_list')", name=op.f('ck_rule_entry_kind')),
    sa.ForeignKeyConstraint(['mailbox_id'], ['mailbox.id'], name=op.f('fk_rule_entry_mailbox_id_mailbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_entry')),
    sa.UniqueConstraint('mailbox_id', 'kind', 'normalized', name=op.f('uq_rule_entry_mailbox_id_kind_normalized'))
    )


def downgrade() -> None:
    op.drop_table('rule_entry')
    op.drop_index('ix_quarantine_item_mailbox_id_received_at', table_name='quarantine_item')
    op.drop_index(op.f('ix_quarantine_item_expires_at'), table_name='quarantine_item')
    op.drop_table('quarantine_item')
    op.drop_index('uq_forward_destination_mailbox_id_address', table_name='forward_destination')
    op.drop_table('forward_destination')
    op.drop_table('auto_reply_sender')
    op.drop_index(op.f('ix_mailbox_domain_id'), table_name='mailbox')
    op.drop_table('mailbox')
    op.drop_index('ix_outbox_message_sent_at_next_attempt_at', table_name='outbox_message')
    op.drop_table('outbox_message')
    op.drop_index('ix_login_failure_key_failed_at', table_name='login_failure')
    op.drop_table('login_failure')
    op.drop_table('domain')
    op.drop_table('deleted_address')
    op.drop_table('auto_reply_claim')
