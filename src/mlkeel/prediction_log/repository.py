"""Reading and writing the prediction log: bulk inserts, labels, windows, retention.

Inserts bypass SQLAlchemy's per-row processing: the writer hands tuples to the driver
(multi-row ``INSERT`` statements on SQLite, ``COPY`` on PostgreSQL), which is what makes
100,000+ rows/s.
Every insert is idempotent on (request_id, row, variant), so replaying a spool twice, or a
client retrying with the same X-Request-ID, never stores a prediction twice.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlkeel.prediction_log.record import PredictionRecord
from mlkeel.prediction_log.tables import labels, predictions

COLUMNS = (
    "ts", "model", "version", "variant", "request_id", "row",
    "features", "prediction", "probabilities", "latency_ms", "record_version",
)  # fmt: skip
_COLUMN_LIST = ", ".join(f'"{name}"' for name in COLUMNS)
# 11 parameters a row: 5,500 a statement, under SQLite's limit of 32,766 (999 before 3.32).
ROWS_PER_INSERT = 500 if sqlite3.sqlite_version_info >= (3, 32) else 90


@dataclass(frozen=True)
class Label:
    """Ground truth for one served row."""

    request_id: str
    label: Any
    row: int = 0


def to_row(record: PredictionRecord) -> tuple[Any, ...]:
    """The record as the driver wants it: JSON columns pre-encoded (orjson, ~1 µs a record)."""
    return (
        record.time.timestamp(),
        record.model,
        record.version,
        record.variant,
        record.request_id,
        record.row,
        _json(record.features),
        _json(record.prediction),
        None if record.probabilities is None else _json(record.probabilities),
        record.latency_ms,
        record.record_version,
    )


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


class PredictionRepository:
    """The prediction log in one database, SQLite or PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"

    def insert(self, records: Sequence[PredictionRecord]) -> int:
        """Store `records`; return how many were new (the rest were already there)."""
        if not records:
            return 0
        return self._copy(records) if self._postgres else self._executemany(records)

    def _executemany(self, records: Sequence[PredictionRecord]) -> int:
        # ROWS_PER_INSERT rows per statement: sqlite3 releases the GIL around every statement
        # it steps, and takes it back only once a busy request thread lets go (up to the 5 ms
        # switch interval). Beside a busy thread, 1,000 records took 150 ms in statements of
        # 50 rows, 27-33 ms in statements of 500 (8.5-8.8 ms alone either way).
        rows = list(map(to_row, records))
        inserted, at = 0, 0
        with self.engine.begin() as connection:
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            for size, count in _statements(len(rows)):
                chunks = (
                    tuple(chain.from_iterable(rows[start : start + size]))
                    for start in range(at, at + size * count, size)
                )
                cursor.executemany(_insert_sql(size), chunks)
                inserted += cursor.rowcount
                at += size * count
        return inserted

    def _copy(self, records: Sequence[PredictionRecord]) -> int:
        import psycopg

        try:
            with self.engine.begin() as connection:
                raw = connection.connection.driver_connection
                with raw.cursor() as cursor:  # type: ignore[union-attr]
                    _copy_rows(cursor, "mlkeel_predictions", records)
            return len(records)
        except psycopg.errors.UniqueViolation:
            pass
        # COPY cannot skip duplicates (a replayed spool, a client retrying with its request
        # id): this batch goes through a staging table and INSERT ... ON CONFLICT DO NOTHING.
        with self.engine.begin() as connection:
            raw = connection.connection.driver_connection
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                cursor.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS mlkeel_incoming "
                    "(LIKE mlkeel_predictions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                )
                _copy_rows(cursor, "mlkeel_incoming", records)
                cursor.execute(
                    f"INSERT INTO mlkeel_predictions ({_COLUMN_LIST}) "
                    f"SELECT {_COLUMN_LIST} FROM mlkeel_incoming ON CONFLICT DO NOTHING"
                )
                return int(cursor.rowcount)

    def record_labels(self, model: str, items: Sequence[Label]) -> list[Label]:
        """Store ground truth for served rows of `model`; return the items whose request id
        and row were never served by it (they are not stored)."""
        keys = {(item.request_id, item.row) for item in items}
        known = self._known(model, keys)
        found = [item for item in items if (item.request_id, item.row) in known]
        if found:
            now = datetime.now(UTC).timestamp()
            values = [
                {"request_id": i.request_id, "row": i.row, "model": model, "label": i.label,
                 "ts": now}
                for i in found
            ]  # fmt: skip
            with self.engine.begin() as connection:
                connection.execute(_upsert_labels(self.engine.dialect.name), values)
        return [item for item in items if (item.request_id, item.row) not in known]

    def _known(self, model: str, keys: set[tuple[str, int]]) -> set[tuple[str, int]]:
        ids = sorted({request_id for request_id, _ in keys})
        found: set[tuple[str, int]] = set()
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                query = sa.select(predictions.c.request_id, predictions.c.row).where(
                    predictions.c.model == model,
                    predictions.c.request_id.in_(ids[start : start + 500]),
                )
                found.update((r, n) for r, n in connection.execute(query))
        return found & keys

    def window(
        self, model: str | None = None, since: float | None = None, until: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Predictions in [since, until) with their labels, oldest first, streamed."""
        query = (
            sa.select(predictions, labels.c.label)
            .join(
                labels,
                sa.and_(
                    labels.c.request_id == predictions.c.request_id,
                    labels.c.row == predictions.c.row,
                ),
                isouter=True,
            )
            .order_by(predictions.c.ts, predictions.c.id)
        )
        if model is not None:
            query = query.where(predictions.c.model == model)
        if since is not None:
            query = query.where(predictions.c.ts >= since)
        if until is not None:
            query = query.where(predictions.c.ts < until)
        with self.engine.connect() as connection:
            result = connection.execution_options(yield_per=5000).execute(query)
            for row in result.mappings():
                yield dict(row)

    def labelled(
        self, model: str, version: int, since: float, until: float, variant: str = "champion"
    ) -> list[tuple[Any, Any, Any]]:
        """(prediction, probabilities, label) of the labelled rows in the window, read from
        the labels side: labels are few, so this never scans the window's raw records."""
        query = (
            sa.select(predictions.c.prediction, predictions.c.probabilities, labels.c.label)
            .select_from(labels)
            .join(
                predictions,
                sa.and_(
                    predictions.c.request_id == labels.c.request_id,
                    predictions.c.row == labels.c.row,
                    predictions.c.variant == variant,
                ),
            )
            .where(
                labels.c.model == model,
                predictions.c.version == version,
                predictions.c.ts >= since,
                predictions.c.ts < until,
            )
        )
        with self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(query)]

    def latest(self, model: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The newest `limit` predictions, newest first."""
        query = sa.select(predictions).order_by(predictions.c.id.desc()).limit(limit)
        if model is not None:
            query = query.where(predictions.c.model == model)
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def after(
        self, last_id: int, model: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Predictions stored after the one with id `last_id`, oldest first (for tailing)."""
        query = (
            sa.select(predictions)
            .where(predictions.c.id > last_id)
            .order_by(predictions.c.id)
            .limit(limit)
        )
        if model is not None:
            query = query.where(predictions.c.model == model)
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]

    def count(self, model: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(predictions)
        if model is not None:
            query = query.where(predictions.c.model == model)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def prune(self, before: float) -> int:
        """Delete predictions (and their labels) logged before `before`; return how many."""
        old = sa.select(predictions.c.request_id).where(predictions.c.ts < before)
        with self.engine.begin() as connection:
            connection.execute(
                labels.delete().where(
                    labels.c.request_id.in_(old),
                    ~labels.c.request_id.in_(
                        sa.select(predictions.c.request_id).where(predictions.c.ts >= before)
                    ),
                )
            )
            return int(
                connection.execute(predictions.delete().where(predictions.c.ts < before)).rowcount
            )


def _copy_rows(cursor: Any, table: str, records: Sequence[PredictionRecord]) -> None:
    # Each record is converted as it is sent: the server works through the rows already sent
    # meanwhile (the client waits on the socket with the GIL released), which measured 1.2x
    # the rows/s of converting the whole batch first.
    with cursor.copy(f"COPY {table} ({_COLUMN_LIST}) FROM STDIN") as copy:
        for record in records:
            copy.write_row(to_row(record))


def _statements(rows: int) -> list[tuple[int, int]]:
    """(rows per statement, statements) covering `rows`: full statements, then the rest in
    powers of two. sqlite3 keeps each distinct statement it compiled (128 per connection, the
    largest ~0.4 MB): a statement per batch size grew a server's RSS by 54 MB over 300
    batches of random sizes; with these ten sizes it stays flat."""
    full, rest = divmod(rows, ROWS_PER_INSERT)
    statements = [(ROWS_PER_INSERT, full)] if full else []
    return statements + [
        (1 << bit, 1) for bit in reversed(range(rest.bit_length())) if rest >> bit & 1
    ]


@functools.cache
def _insert_sql(rows: int) -> str:
    """SQLite's INSERT of `rows` rows at once, skipping rows already stored."""
    row = "(" + ", ".join("?" * len(COLUMNS)) + ")"
    values = ", ".join([row] * rows)
    return f"INSERT OR IGNORE INTO mlkeel_predictions ({_COLUMN_LIST}) VALUES {values}"


def _upsert_labels(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(labels)
    return statement.on_conflict_do_update(
        index_elements=[labels.c.request_id, labels.c.row],
        set_={"label": statement.excluded.label, "ts": statement.excluded.ts},
    )
