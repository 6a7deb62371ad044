"""Monitoring's tables (created by migration 0002)."""

from __future__ import annotations

import sqlalchemy as sa

from mlkeel.db import Id, metadata

# One row per (model, version, variant, hour, writer process): that process's fold of every
# record it wrote in that hour. A window merges rows; it never reads raw records.
summaries = sa.Table(
    "mlkeel_summaries",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("variant", sa.String(16), nullable=False),
    sa.Column("hour", sa.BigInteger, nullable=False),
    sa.Column("writer", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.UniqueConstraint(
        "model", "version", "variant", "hour", "writer", name="uq_mlkeel_summaries_key"
    ),  # fmt: skip
)
sa.Index("ix_mlkeel_summaries_model_hour", summaries.c.model, summaries.c.hour)

reports = sa.Table(
    "mlkeel_monitoring_reports",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("window_start", sa.Float, nullable=False),
    sa.Column("window_end", sa.Float, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
)
sa.Index("ix_mlkeel_monitoring_reports_model_created", reports.c.model, reports.c.created)

alerts = sa.Table(
    "mlkeel_alerts",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("last_seen_at", sa.Float, nullable=False),
    sa.Column("notified_at", sa.Float, nullable=True),
    sa.Column("resolved_at", sa.Float, nullable=True),
)
sa.Index("ix_mlkeel_alerts_open", alerts.c.model, alerts.c.rule, alerts.c.subject, alerts.c.status)
