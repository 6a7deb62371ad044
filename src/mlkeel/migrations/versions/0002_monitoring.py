"""Monitoring: hourly summaries folded by the log writer, stored reports, alerts.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mlkeel_summaries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(16), nullable=False),
        sa.Column("hour", sa.BigInteger, nullable=False, comment="epoch seconds of the hour"),
        sa.Column("writer", sa.String(64), nullable=False, comment="the process that folded it"),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("updated", sa.Float, nullable=False),
        sa.UniqueConstraint(
            "model", "version", "variant", "hour", "writer", name="uq_mlkeel_summaries_key"
        ),  # fmt: skip
    )
    op.create_index("ix_mlkeel_summaries_model_hour", "mlkeel_summaries", ["model", "hour"])
    op.create_table(
        "mlkeel_monitoring_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("window_start", sa.Float, nullable=False),
        sa.Column("window_end", sa.Float, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
    )
    op.create_index(
        "ix_mlkeel_monitoring_reports_model_created", "mlkeel_monitoring_reports",
        ["model", "created"],
    )  # fmt: skip
    op.create_table(
        "mlkeel_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False, comment="feature or metric"),
        sa.Column("status", sa.String(16), nullable=False, comment="open or resolved"),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("opened_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.Column("notified_at", sa.Float, nullable=True),
        sa.Column("resolved_at", sa.Float, nullable=True),
    )
    op.create_index(
        "ix_mlkeel_alerts_open", "mlkeel_alerts", ["model", "rule", "subject", "status"]
    )


def downgrade() -> None:
    op.drop_table("mlkeel_alerts")
    op.drop_table("mlkeel_monitoring_reports")
    op.drop_table("mlkeel_summaries")
