"""The prediction log's tables. Migrations in ``mlkeel/migrations`` create and change them."""

from __future__ import annotations

import sqlalchemy as sa

from mlkeel.db import Id, metadata

# SQL aggregates features as JSON: ``(features->>'x')::float`` on PostgreSQL, json_extract on
# SQLite. PostgreSQL's json, not jsonb: COPY into jsonb parsed it to binary and ran at 0.74x
# the rows/s here, for a table that is written far more than it is queried.
Json = sa.JSON()

predictions = sa.Table(
    "mlkeel_predictions",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False, comment="UTC epoch seconds"),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("variant", sa.String(16), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Column("features", Json, nullable=False),
    sa.Column("prediction", Json, nullable=True),
    sa.Column("probabilities", Json, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("record_version", sa.SmallInteger, nullable=False),
    # Replaying a spool inserts each record at most once; feedback finds records by it.
    sa.UniqueConstraint("request_id", "row", "variant", name="uq_mlkeel_predictions_record"),
)
# A day's window of one model is an index scan, not a table scan. On PostgreSQL a BRIN index
# (rows arrive in time order): nearly free per insert, where a B-tree cost COPY ~15% of its
# rows/s (migration 0005).
sa.Index(
    "ix_mlkeel_predictions_model_ts", predictions.c.model, predictions.c.ts,
    postgresql_using="brin", postgresql_with={"autosummarize": "on"},
)  # fmt: skip

labels = sa.Table(
    "mlkeel_labels",
    metadata,
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("row", sa.Integer, primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("label", Json, nullable=False),
    sa.Column("ts", sa.Float, nullable=False, comment="when the label arrived, epoch seconds"),
)
