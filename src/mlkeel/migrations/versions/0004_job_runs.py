"""Job runs: every run of a job scheduled by ``mlkeel up``.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mlkeel_job_runs",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("job", sa.String(200), nullable=False, comment="kind:model, e.g. monitor:churn"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("scheduled", sa.Float, nullable=True, comment="the cron time it ran for"),
        sa.Column("started", sa.Float, nullable=False, comment="UTC epoch seconds"),
        sa.Column("ended", sa.Float, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("summary", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("runner", sa.String(200), nullable=False, comment="host pid N"),
    )
    op.create_index("ix_mlkeel_job_runs_job_started", "mlkeel_job_runs", ["job", "started"])
    op.create_index("ix_mlkeel_job_runs_started", "mlkeel_job_runs", ["started"])


def downgrade() -> None:
    op.drop_index("ix_mlkeel_job_runs_started", table_name="mlkeel_job_runs")
    op.drop_index("ix_mlkeel_job_runs_job_started", table_name="mlkeel_job_runs")
    op.drop_table("mlkeel_job_runs")
