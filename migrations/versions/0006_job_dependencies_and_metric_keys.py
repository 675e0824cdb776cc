"""job dependencies (a job waits for others without a worker waiting); one metric per
(job, name, step)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_dependencies",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("depends_on", sa.String(length=40), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["depends_on"], ["jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", "depends_on"),
    )
    op.create_index("ix_job_dependencies_depends_on", "job_dependencies", ["depends_on"])
    # A resumed fine-tune could record a step twice: keep the last value of each.
    op.execute(
        "DELETE FROM metrics WHERE id NOT IN "
        "(SELECT max_id FROM (SELECT MAX(id) AS max_id FROM metrics "
        "GROUP BY job_id, name, step) AS last)"
    )
    op.drop_index("ix_metrics_job_name_step", table_name="metrics")
    op.create_index("ux_metrics_job_name_step", "metrics", ["job_id", "name", "step"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_metrics_job_name_step", table_name="metrics")
    op.create_index("ix_metrics_job_name_step", "metrics", ["job_id", "name", "step"])
    op.drop_index("ix_job_dependencies_depends_on", table_name="job_dependencies")
    op.drop_table("job_dependencies")
