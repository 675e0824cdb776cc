"""model aliases (e.g. prod) naming a (model, index) pair, and the history of their moves

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "aliases",
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("model_id", sa.String(length=40), nullable=False),
        sa.Column("index_id", sa.String(length=40), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("figures", JSON, nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"]),
        sa.ForeignKeyConstraint(["index_id"], ["indexes.id"]),
        sa.PrimaryKeyConstraint("project_id", "name"),
    )
    op.create_index("ix_aliases_model_id", "aliases", ["model_id"])
    op.create_index("ix_aliases_index_id", "aliases", ["index_id"])
    op.create_table(
        "alias_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("alias", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("model_id", sa.String(length=40), nullable=True),
        sa.Column("index_id", sa.String(length=40), nullable=True),
        sa.Column("previous_model_id", sa.String(length=40), nullable=True),
        sa.Column("previous_index_id", sa.String(length=40), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("actor_key_id", sa.String(length=40), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("figures", JSON, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_alias_events_project_alias", "alias_events", ["project_id", "alias"])


def downgrade() -> None:
    op.drop_index("ix_alias_events_project_alias", table_name="alias_events")
    op.drop_table("alias_events")
    op.drop_index("ix_aliases_index_id", table_name="aliases")
    op.drop_index("ix_aliases_model_id", table_name="aliases")
    op.drop_table("aliases")
