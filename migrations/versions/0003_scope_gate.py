"""scope gate: run-time scope overlay

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scope_overlay",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("added_words", sa.JSON(), nullable=False),
        sa.Column("removed_words", sa.JSON(), nullable=False),
        sa.Column("added_channels", sa.JSON(), nullable=False),
        sa.Column("removed_channels", sa.JSON(), nullable=False),
        sa.Column("strictness", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("scope"),
    )


def downgrade() -> None:
    op.drop_table("scope_overlay")
