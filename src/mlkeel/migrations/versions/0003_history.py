"""History: deployment events, the pipeline-run audit trail, named locks.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mlkeel_deployments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("ts", sa.Float, nullable=False, comment="UTC epoch seconds"),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous", sa.Integer, nullable=True, comment="the alias's version before"),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("trigger", sa.String(32), nullable=True),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("gate", sa.JSON, nullable=True),
    )
    op.create_index("ix_mlkeel_deployments_model_ts", "mlkeel_deployments", ["model", "ts"])
    op.create_table(
        "mlkeel_pipeline_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("started", sa.Float, nullable=False),
        sa.Column("ended", sa.Float, nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("failed_step", sa.String(32), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("parent_version", sa.Integer, nullable=True),
        sa.Column("challenger_version", sa.Integer, nullable=True),
        sa.Column("gate", sa.JSON, nullable=True),
        sa.Column("data", sa.JSON, nullable=True),
    )
    op.create_index(
        "ix_mlkeel_pipeline_runs_model_started", "mlkeel_pipeline_runs", ["model", "started"]
    )
    op.create_table(
        "mlkeel_locks",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False, comment="user@host pid N"),
        sa.Column("acquired", sa.Float, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mlkeel_locks")
    op.drop_index("ix_mlkeel_pipeline_runs_model_started", "mlkeel_pipeline_runs")
    op.drop_table("mlkeel_pipeline_runs")
    op.drop_index("ix_mlkeel_deployments_model_ts", "mlkeel_deployments")
    op.drop_table("mlkeel_deployments")
