"""The prediction log's time index on PostgreSQL becomes a BRIN index.

Predictions are appended in time order, so a BRIN index (min and max per 1 MB block range)
finds a day's blocks as well as a B-tree does, at a fraction of its size, and costs almost
nothing per insert: measured here, COPY ran at 1.1-1.2x the rows/s without the B-tree.
SQLite has no BRIN and keeps the B-tree.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEX = "ix_mlkeel_predictions_model_ts"
TABLE = "mlkeel_predictions"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, TABLE)
    op.create_index(INDEX, TABLE, ["model", "ts"], postgresql_using="brin",
                    postgresql_with={"autosummarize": "on"})  # fmt: skip


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, TABLE)
    op.create_index(INDEX, TABLE, ["model", "ts"])
