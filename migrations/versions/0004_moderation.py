"""moderation: reports, cases, evidence, reviewer actions, mutes, regression examples, scheduler jobs

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('apscheduler_jobs',
    sa.Column('id', sa.Unicode(length=191), nullable=False),
    sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_apscheduler_jobs_next_run_time'), ['next_run_time'], unique=False)

    op.create_table('moderation_notice',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('moderation_case',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_key', sa.String(length=512), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=False),
    sa.Column('workspace', sa.String(length=128), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=False),
    sa.Column('thread', sa.String(length=128), nullable=True),
    sa.Column('message_id', sa.String(length=128), nullable=False),
    sa.Column('is_direct', sa.Boolean(), nullable=False),
    sa.Column('author_id', sa.String(length=128), nullable=False),
    sa.Column('author_is_bot', sa.Boolean(), nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=True),
    sa.Column('answer_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('escalated', sa.Boolean(), nullable=False),
    sa.Column('escalation_reason', sa.String(length=128), nullable=False),
    sa.Column('reporters', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('card_revision', sa.Integer(), nullable=False),
    sa.Column('dirty', sa.Boolean(), nullable=False),
    sa.Column('card_workspace', sa.String(length=128), nullable=True),
    sa.Column('card_channel', sa.String(length=128), nullable=True),
    sa.Column('card_message_id', sa.String(length=128), nullable=True),
    sa.Column('card_pending', sa.Boolean(), nullable=False),
    sa.Column('hide_pending', sa.Boolean(), nullable=False),
    sa.Column('ping_pending', sa.Boolean(), nullable=False),
    sa.Column('lease_token', sa.String(length=32), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('claimed_by_id', sa.String(length=128), nullable=True),
    sa.Column('claimed_by_name', sa.String(length=256), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.String(length=32), nullable=True),
    sa.Column('resolved_by_id', sa.String(length=128), nullable=True),
    sa.Column('resolved_by_name', sa.String(length=256), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('routed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('evidence_purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['answer_id'], ['bot_answer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_key')
    )
    with op.batch_alter_table('moderation_case', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_moderation_case_resolved_at'), ['resolved_at'], unique=False)
        batch_op.create_index('ix_moderation_case_state', ['state', 'platform'], unique=False)
        batch_op.create_index('ix_moderation_case_work', ['dirty', 'next_attempt_at'], unique=False)

    op.create_table('case_action',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('dedupe', sa.String(length=600), nullable=False),
    sa.Column('actor_platform', sa.String(length=32), nullable=False),
    sa.Column('actor_id', sa.String(length=128), nullable=False),
    sa.Column('actor_name', sa.String(length=256), nullable=False),
    sa.Column('argument', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('lease_token', sa.String(length=32), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['moderation_case.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_id', 'dedupe', name='uq_case_action_once')
    )
    with op.batch_alter_table('case_action', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_action_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_action_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_case_action_work', ['status', 'next_attempt_at'], unique=False)

    op.create_table('case_evidence',
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('captured_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fetched', sa.Boolean(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('author_name', sa.String(length=256), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('permalink', sa.String(length=1024), nullable=False),
    sa.Column('provenance', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['moderation_case.id'], ),
    sa.PrimaryKeyConstraint('case_id')
    )
    op.create_table('member_mute',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=False),
    sa.Column('workspace', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['moderation_case.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('member_mute', schema=None) as batch_op:
        batch_op.create_index('ix_member_mute_who', ['platform', 'workspace', 'user_id', 'until'], unique=False)

    op.create_table('moderation_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('message_key', sa.String(length=512), nullable=False),
    sa.Column('reporter_platform', sa.String(length=32), nullable=False),
    sa.Column('reporter_id', sa.String(length=128), nullable=False),
    sa.Column('reporter_name', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('snapshot', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['moderation_case.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('message_key', 'reporter_platform', 'reporter_id', name='uq_report_message_reporter')
    )
    with op.batch_alter_table('moderation_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_moderation_report_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_report_reporter_time', ['reporter_platform', 'reporter_id', 'created_at'], unique=False)

    op.create_table('regression_example',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('answer_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['answer_id'], ['bot_answer.id'], ),
    sa.ForeignKeyConstraint(['case_id'], ['moderation_case.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_id')
    )
    with op.batch_alter_table('regression_example', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_regression_example_scope'), ['scope'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('regression_example', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_regression_example_scope'))

    op.drop_table('regression_example')
    with op.batch_alter_table('moderation_report', schema=None) as batch_op:
        batch_op.drop_index('ix_report_reporter_time')
        batch_op.drop_index(batch_op.f('ix_moderation_report_case_id'))

    op.drop_table('moderation_report')
    with op.batch_alter_table('member_mute', schema=None) as batch_op:
        batch_op.drop_index('ix_member_mute_who')

    op.drop_table('member_mute')
    op.drop_table('case_evidence')
    with op.batch_alter_table('case_action', schema=None) as batch_op:
        batch_op.drop_index('ix_case_action_work')
        batch_op.drop_index(batch_op.f('ix_case_action_case_id'))
        batch_op.drop_index(batch_op.f('ix_case_action_actor_id'))

    op.drop_table('case_action')
    with op.batch_alter_table('moderation_case', schema=None) as batch_op:
        batch_op.drop_index('ix_moderation_case_work')
        batch_op.drop_index('ix_moderation_case_state')
        batch_op.drop_index(batch_op.f('ix_moderation_case_resolved_at'))

    op.drop_table('moderation_case')
    op.drop_table('moderation_notice')
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_apscheduler_jobs_next_run_time'))

    op.drop_table('apscheduler_jobs')
