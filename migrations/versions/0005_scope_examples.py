"""scope overlay: examples added and removed at run time; which layer of the gate decided each answer

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows get empty lists; new rows always carry both (the model writes them).
    with op.batch_alter_table("scope_overlay", schema=None) as batch_op:
        batch_op.add_column(sa.Column("added_examples", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column("removed_examples", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    with op.batch_alter_table("bot_answer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gate_rule", sa.String(length=256), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("bot_answer", schema=None) as batch_op:
        batch_op.drop_column("gate_rule")
    with op.batch_alter_table("scope_overlay", schema=None) as batch_op:
        batch_op.drop_column("removed_examples")
        batch_op.drop_column("added_examples")
