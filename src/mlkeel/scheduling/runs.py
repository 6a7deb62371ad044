"""The record of every job run (``mlkeel_job_runs``): what ran, why, when, how it ended.

Written by the scheduler that runs the jobs, read by ``mlkeel jobs`` and ``GET /v1/jobs``
(any replica can answer, whoever the leader is). A run is inserted as ``running`` when it
starts and updated when it ends: ``ok``, ``failed`` (with the error), ``interrupted`` (the
process stopped first) or ``skipped`` (it could not run: a run of the same job still going,
a retrain already holding its lock, a missed time under ``misfire = "skip"``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from mlkeel.db import Id, metadata

Outcome = Literal["running", "ok", "failed", "interrupted", "skipped"]
# What started a run: its cron time, a missed time caught up, a monitoring alert, a person.
Trigger = Literal["schedule", "catch-up", "alert", "manual"]
SUMMARY_VERSION = 1

job_runs = sa.Table(
    "mlkeel_job_runs",
    metadata,
    sa.Column("id", Id, primary_key=True),
    sa.Column("job", sa.String(200), nullable=False, comment="kind:model, e.g. monitor:churn"),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("model", sa.String(200), nullable=True),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("scheduled", sa.Float, nullable=True, comment="the cron time it ran for"),
    sa.Column("started", sa.Float, nullable=False, comment="UTC epoch seconds"),
    sa.Column("ended", sa.Float, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("summary", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("runner", sa.String(200), nullable=False, comment="host pid N"),
)
sa.Index("ix_mlkeel_job_runs_job_started", job_runs.c.job, job_runs.c.started)
sa.Index("ix_mlkeel_job_runs_started", job_runs.c.started)


@dataclass(frozen=True)
class JobRun:
    id: int
    job: str
    kind: str
    model: str | None
    trigger: str
    scheduled: float | None
    started: float
    ended: float | None
    outcome: str
    summary: dict[str, Any] | None
    error: str | None
    runner: str

    @property
    def seconds(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    def to_dict(self) -> dict[str, Any]:
        """The public form (``mlkeel jobs --json``, ``GET /v1/jobs``): ISO times, seconds."""
        return {
            "id": self.id, "job": self.job, "kind": self.kind, "model": self.model,
            "trigger": self.trigger, "scheduled": _iso(self.scheduled),
            "started": _iso(self.started), "ended": _iso(self.ended),
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "outcome": self.outcome, "summary": self.summary, "error": self.error,
            "runner": self.runner,
        }  # fmt: skip


class JobRunStore:
    """Reads and writes ``mlkeel_job_runs``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
        self, job: str, kind: str, model: str | None, trigger: Trigger, scheduled: float | None,
        runner: str,
    ) -> int:  # fmt: skip
        values = {"job": job, "kind": kind, "model": model, "trigger": trigger,
                  "scheduled": scheduled, "started": time.time(), "outcome": "running",
                  "runner": runner}  # fmt: skip
        with self.engine.begin() as connection:
            query = job_runs.insert().values(**values).returning(job_runs.c.id)
            return int(connection.execute(query).scalar_one())

    def finish(
        self, run_id: int, outcome: Outcome, summary: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:  # fmt: skip
        document = None if summary is None else {"v": SUMMARY_VERSION, **summary}
        query = (
            job_runs.update()
            .where(job_runs.c.id == run_id)
            .values(ended=time.time(), outcome=outcome, summary=document, error=error)
        )
        with self.engine.begin() as connection:
            connection.execute(query)

    def skipped(
        self, job: str, kind: str, model: str | None, trigger: Trigger, scheduled: float | None,
        runner: str, reason: str, summary: Mapping[str, Any] | None = None,
    ) -> int:  # fmt: skip
        """Record a run that did not happen, and why."""
        run_id = self.start(job, kind, model, trigger, scheduled, runner)
        self.finish(run_id, "skipped", summary, reason)
        return run_id

    def interrupt_running(self, reason: str, runner: str | None = None) -> int:
        """Mark runs still ``running`` (of `runner`, or of anyone) as interrupted."""
        query = job_runs.update().where(job_runs.c.outcome == "running")
        if runner is not None:
            query = query.where(job_runs.c.runner == runner)
        with self.engine.begin() as connection:
            changed = connection.execute(query.values(outcome="interrupted", error=reason,
                                                      ended=time.time()))  # fmt: skip
            return int(changed.rowcount)

    def prune(self, before: float) -> int:
        """Delete finished runs that started before `before`; return how many."""
        query = job_runs.delete().where(
            job_runs.c.started < before, job_runs.c.outcome != "running"
        )
        with self.engine.begin() as connection:
            return int(connection.execute(query).rowcount)

    def last_started(self, job: str) -> float | None:
        """When the newest run of `job` that its schedule started began (catch-up's anchor)."""
        query = sa.select(sa.func.max(job_runs.c.started)).where(
            job_runs.c.job == job, job_runs.c.trigger.in_(("schedule", "catch-up"))
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar_one_or_none()
        return None if found is None else float(found)

    def recent(
        self, limit: int = 50, model: str | None = None, kind: str | None = None,
        outcome: str | None = None,
    ) -> list[JobRun]:  # fmt: skip
        """The newest runs first, optionally of one model, kind or outcome."""
        query = sa.select(job_runs).order_by(job_runs.c.started.desc(), job_runs.c.id.desc())
        for column, value in ((job_runs.c.model, model), (job_runs.c.kind, kind),
                              (job_runs.c.outcome, outcome)):  # fmt: skip
            if value is not None:
                query = query.where(column == value)
        with self.engine.connect() as connection:
            rows = connection.execute(query.limit(limit)).mappings().all()
        return [_run(row) for row in rows]


def _run(row: RowMapping) -> JobRun:
    return JobRun(
        id=row["id"], job=row["job"], kind=row["kind"], model=row["model"],
        trigger=row["trigger"], scheduled=row["scheduled"], started=row["started"],
        ended=row["ended"], outcome=row["outcome"], summary=row["summary"], error=row["error"],
        runner=row["runner"],
    )  # fmt: skip


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
