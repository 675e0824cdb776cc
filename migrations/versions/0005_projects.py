"""projects: every dataset, job, model, index and API key belongs to one

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:05:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DEFAULT = "prj_default"  # core.store.tables.DEFAULT_PROJECT, frozen here
OWNED = ("datasets", "jobs", "models", "indexes", "api_keys")


def upgrade() -> None:
    projects = op.create_table(
        "projects",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.bulk_insert(projects, [{"id": DEFAULT, "name": "default", "created_at": datetime.now(UTC)}])
    for table in OWNED:
        # Add nullable, fill, then constrain: on SQLite the last step copies filled rows.
        op.add_column(table, sa.Column("project_id", sa.String(length=40), nullable=True))
        op.execute(sa.text(f"UPDATE {table} SET project_id = :p").bindparams(p=DEFAULT))
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("project_id", existing_type=sa.String(length=40), nullable=False)
            batch_op.create_index(f"ix_{table}_project_id", ["project_id"])
            batch_op.create_foreign_key(
                f"fk_{table}_project_id", "projects", ["project_id"], ["id"]
            )


def downgrade() -> None:
    for table in OWNED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_project_id", type_="foreignkey")
            batch_op.drop_index(f"ix_{table}_project_id")
            batch_op.drop_column("project_id")
    op.drop_table("projects")
