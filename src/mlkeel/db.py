"""The operational database: mlkeel's own tables, an engine factory, migrations.

SQLite (the default, embedded) runs in WAL mode so the log writer and readers don't block
each other; PostgreSQL when several replicas write. One code path for both: the few places
that differ (bulk insert) branch on ``engine.dialect.name``. Nothing connects at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlkeel.errors import DatabaseError

metadata = sa.MetaData()
# Primary keys: BIGINT on PostgreSQL; SQLite's rowid alias must be exactly INTEGER.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
VERSION_TABLE = "mlkeel_alembic_version"  # not alembic_version: MLflow may share the database


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and its folder created."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True, **options)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30}, **options)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across application crashes in WAL mode; only a power loss can
        # drop the last transactions, and the spool covers what matters there.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def upgrade(engine: Engine) -> None:
    """Bring mlkeel's tables to the newest schema (Alembic ``upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.set_main_option("version_table", VERSION_TABLE)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(
            f"cannot migrate the mlkeel database {engine.url!r}: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        ) from exc
