"""Alembic environment: runs on the connection ``mlkeel.db.upgrade`` hands it."""

from __future__ import annotations

from alembic import context

from mlkeel import history  # noqa: F401 - registers the history and lock tables
from mlkeel.db import VERSION_TABLE, metadata
from mlkeel.monitoring import tables as monitoring_tables  # noqa: F401 - registers tables
from mlkeel.prediction_log import tables  # noqa: F401 - registers the tables on metadata
from mlkeel.scheduling import runs  # noqa: F401 - registers the job-runs table

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
