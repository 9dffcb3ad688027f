"""foundation: bot answers

Revision ID: 0001
Revises: 
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('bot_answer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=False),
    sa.Column('workspace', sa.String(length=128), nullable=False),
    sa.Column('channel', sa.String(length=128), nullable=False),
    sa.Column('thread', sa.String(length=128), nullable=True),
    sa.Column('question_message_id', sa.String(length=128), nullable=False),
    sa.Column('answer_key', sa.String(length=512), nullable=True),
    sa.Column('author_id', sa.String(length=128), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('gate_score', sa.Float(), nullable=False),
    sa.Column('passages', sa.JSON(), nullable=False),
    sa.Column('model', sa.String(length=512), nullable=False),
    sa.Column('model_params', sa.JSON(), nullable=False),
    sa.Column('config_version', sa.String(length=64), nullable=False),
    sa.Column('timings', sa.JSON(), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('truncated', sa.Boolean(), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('bot_answer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bot_answer_answer_key'), ['answer_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_bot_answer_request_id'), ['request_id'], unique=False)
        batch_op.create_index('ix_bot_answer_thread', ['platform', 'channel', 'thread', 'author_id'], unique=False)

    op.create_table('bot_answer_part',
    sa.Column('message_key', sa.String(length=512), nullable=False),
    sa.Column('answer_id', sa.Integer(), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['answer_id'], ['bot_answer.id'], ),
    sa.PrimaryKeyConstraint('message_key')
    )
    with op.batch_alter_table('bot_answer_part', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bot_answer_part_answer_id'), ['answer_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('bot_answer_part', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_bot_answer_part_answer_id'))

    op.drop_table('bot_answer_part')
    with op.batch_alter_table('bot_answer', schema=None) as batch_op:
        batch_op.drop_index('ix_bot_answer_thread')
        batch_op.drop_index(batch_op.f('ix_bot_answer_request_id'))
        batch_op.drop_index(batch_op.f('ix_bot_answer_answer_key'))

    op.drop_table('bot_answer')
