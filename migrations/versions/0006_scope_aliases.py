"""scope overlay: aliases (other names for the organisation) added and removed at run time

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows get empty lists; new rows always carry both (the model writes them).
    with op.batch_alter_table("scope_overlay", schema=None) as batch_op:
        batch_op.add_column(sa.Column("added_aliases", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch_op.add_column(sa.Column("removed_aliases", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))


def downgrade() -> None:
    with op.batch_alter_table("scope_overlay", schema=None) as batch_op:
        batch_op.drop_column("removed_aliases")
        batch_op.drop_column("added_aliases")
