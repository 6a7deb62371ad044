"""The prediction log: predictions and their labels.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON()
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mlkeel_predictions",
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
        sa.UniqueConstraint("request_id", "row", "variant", name="uq_mlkeel_predictions_record"),
    )
    op.create_index("ix_mlkeel_predictions_model_ts", "mlkeel_predictions", ["model", "ts"])
    op.create_table(
        "mlkeel_labels",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("row", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("label", Json, nullable=False),
        sa.Column("ts", sa.Float, nullable=False, comment="when the label arrived, epoch seconds"),
    )


def downgrade() -> None:
    op.drop_table("mlkeel_labels")
    op.drop_index("ix_mlkeel_predictions_model_ts", "mlkeel_predictions")
    op.drop_table("mlkeel_predictions")
