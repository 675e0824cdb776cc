"""index versions: method and tuning

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 06:35:20.820595
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("indexes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("method", sa.String(length=20), server_default="base", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "tuning",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default=sa.text("'{}'"),
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("indexes", schema=None) as batch_op:
        batch_op.drop_column("tuning")
        batch_op.drop_column("method")
