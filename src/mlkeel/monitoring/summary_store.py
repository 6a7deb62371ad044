"""Hourly summaries in the database: each writer process overwrites its own row per hour.

A row holds one process's complete fold for (model, version, variant, hour), so writing is
an upsert without reading, and replicas never contend for a row. A window merges the rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlkeel.monitoring.tables import summaries

Key = tuple[str, int, str, int]  # model, version, variant, hour (epoch seconds)


class SummaryStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, writer: str, payloads: Mapping[Key, dict[str, Any]]) -> None:
        """Replace this writer's rows for these keys with their current payloads."""
        if not payloads:
            return
        now = time.time()
        values = [
            {"model": m, "version": v, "variant": variant, "hour": hour, "writer": writer,
             "payload": payload, "updated": now}
            for (m, v, variant, hour), payload in payloads.items()
        ]  # fmt: skip
        statement = _insert(self.engine.dialect.name)
        upsert = statement.on_conflict_do_update(
            index_elements=["model", "version", "variant", "hour", "writer"],
            set_={"payload": statement.excluded.payload, "updated": statement.excluded.updated},
        )
        with self.engine.begin() as connection:
            connection.execute(upsert, values)

    def window(
        self, model: str, since: float, until: float, variant: str | None = None
    ) -> Iterator[tuple[Key, dict[str, Any]]]:
        """Every stored row of `model` whose hour starts in [since, until)."""
        query = (
            sa.select(
                summaries.c.model,
                summaries.c.version,
                summaries.c.variant,
                summaries.c.hour,
                summaries.c.payload,
            )  # fmt: skip
            .where(
                summaries.c.model == model,
                summaries.c.hour >= since,
                summaries.c.hour < until,
            )
            .order_by(summaries.c.hour)
        )
        if variant is not None:
            query = query.where(summaries.c.variant == variant)
        with self.engine.connect() as connection:
            for model_name, version, row_variant, hour, payload in connection.execute(query):
                yield (model_name, version, row_variant, int(hour)), payload

    def prune(self, before: float) -> int:
        with self.engine.begin() as connection:
            result = connection.execute(summaries.delete().where(summaries.c.hour < before))
            return int(result.rowcount)


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(summaries)
