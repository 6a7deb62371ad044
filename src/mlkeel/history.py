"""What happened to each model: deployment events and the audit trail of pipeline runs.

Three tables (migration 0003):

- ``mlkeel_deployments``: one row per deployment event (a version became champion, was rolled
  back to, approved, is awaiting approval, or was blocked by the gate), with who, why, the
  trigger, the version's metrics and the gate's results. "When was version N deployed and
  retired" is derived from it (`served_periods`).
- ``mlkeel_pipeline_runs``: one row per retraining run, updated as each step ends: its steps
  (status and duration), outcome, failed step and error, parent and challenger versions.
- ``mlkeel_locks``: named locks with a holder and an expiry (retraining/lock.py uses them).

Imported by retraining, the CLI and serving; it imports none of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from mlkeel.db import Id, metadata
from mlkeel.errors import DatabaseError

Action = Literal["promoted", "approved", "rolled_back", "awaiting_approval", "blocked"]
# The actions after which the event's version is the champion.
MOVES_CHAMPION: frozenset[str] = frozenset({"promoted", "approved", "rolled_back"})
Outcome = Literal["running", "promoted", "awaiting_approval", "blocked", "failed"]


deployments = sa.Table(
    "mlkeel_deployments",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("ts", sa.Float, nullable=False, comment="UTC epoch seconds"),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("alias", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("previous", sa.Integer, nullable=True, comment="the alias's version before"),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("trigger", sa.String(32), nullable=True),
    sa.Column("forced", sa.Boolean, nullable=False),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("gate", sa.JSON, nullable=True),
)
sa.Index("ix_mlkeel_deployments_model_ts", deployments.c.model, deployments.c.ts)

pipeline_runs = sa.Table(
    "mlkeel_pipeline_runs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("started", sa.Float, nullable=False),
    sa.Column("ended", sa.Float, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("failed_step", sa.String(32), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("steps", sa.JSON, nullable=False),
    sa.Column("parent_version", sa.Integer, nullable=True),
    sa.Column("challenger_version", sa.Integer, nullable=True),
    sa.Column("gate", sa.JSON, nullable=True),
    sa.Column("data", sa.JSON, nullable=True),
)
sa.Index("ix_mlkeel_pipeline_runs_model_started", pipeline_runs.c.model, pipeline_runs.c.started)

locks = sa.Table(
    "mlkeel_locks",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("token", sa.String(32), nullable=False),
    sa.Column("holder", sa.String(200), nullable=False, comment="user@host pid N"),
    sa.Column("acquired", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
)


@dataclass(frozen=True)
class DeploymentEvent:
    """One change to which version serves, or a decision not to change it."""

    model: str
    action: Action
    version: int
    actor: str
    previous: int | None = None
    alias: str = "champion"
    reason: str | None = None
    trigger: str | None = None
    forced: bool = False
    run_id: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    gate: Mapping[str, Any] | None = None
    ts: float = 0.0
    id: int | None = None

    @property
    def at(self) -> str:
        return _iso(self.ts)

    def to_dict(self) -> dict[str, Any]:
        """The event as the CLI (``--json``) and the HTTP API show it."""
        document = asdict(self)
        document["at"] = self.at
        document["metrics"] = dict(self.metrics)
        document["gate"] = None if self.gate is None else dict(self.gate)
        return document


@dataclass(frozen=True)
class StepRecord:
    """One pipeline step as it ended."""

    name: str
    status: Literal["ok", "failed", "skipped"]
    seconds: float
    detail: str | None = None


@dataclass(frozen=True)
class PipelineRun:
    """One retraining run, as audited."""

    id: str
    model: str
    trigger: str
    actor: str
    started: float
    outcome: Outcome = "running"
    reason: str | None = None
    ended: float | None = None
    failed_step: str | None = None
    error: str | None = None
    steps: Sequence[StepRecord] = ()
    parent_version: int | None = None
    challenger_version: int | None = None
    gate: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["steps"] = [asdict(step) for step in self.steps]
        document["started_at"] = _iso(self.started)
        document["ended_at"] = None if self.ended is None else _iso(self.ended)
        return document


@dataclass(frozen=True)
class ServedPeriod:
    """A stretch of time during which `version` was the champion; `until` None: still is."""

    version: int
    since: float
    until: float | None


class HistoryRepository:
    """Deployment events and pipeline runs in the operational database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- deployment events ---------------------------------------------------------------
    def record(self, event: DeploymentEvent) -> DeploymentEvent:
        with self._writing() as connection:
            return self._insert_event(connection, event)

    @contextmanager
    def recording(self, event: DeploymentEvent) -> Iterator[DeploymentEvent]:
        """Record `event` in a transaction that commits only if the block succeeds.

        Wrap the alias move in it: a move that fails leaves no event, and an event is never
        missing for a move that succeeded unless the commit itself fails.
        """
        with self._writing() as connection:
            yield self._insert_event(connection, event)

    def events(self, model: str, limit: int | None = None) -> list[DeploymentEvent]:
        """`model`'s deployment events, oldest first (the newest `limit` when given)."""
        query = sa.select(deployments).where(deployments.c.model == model)
        query = query.order_by(deployments.c.ts.desc(), deployments.c.id.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as connection:
            rows = connection.execute(query).mappings().all()
        return [_event(row) for row in reversed(rows)]

    def pending_approval(self, model: str) -> list[DeploymentEvent]:
        """`awaiting_approval` events whose version has not been deployed since."""
        pending: dict[int, DeploymentEvent] = {}
        for event in self.events(model):
            if event.action == "awaiting_approval":
                pending[event.version] = event
            elif event.action in MOVES_CHAMPION:
                pending.pop(event.version, None)
        return list(pending.values())

    # ---- pipeline runs -------------------------------------------------------------------
    def start_run(self, run: PipelineRun) -> None:
        with self._writing() as connection:
            connection.execute(pipeline_runs.insert().values(**_run_values(run)))

    def save_run(self, run: PipelineRun) -> None:
        """Write `run`'s current state (steps so far, outcome, versions)."""
        values = _run_values(run)
        del values["id"]
        with self._writing() as connection:
            connection.execute(
                pipeline_runs.update().where(pipeline_runs.c.id == run.id).values(**values)
            )

    def runs(self, model: str, limit: int | None = None) -> list[PipelineRun]:
        """`model`'s pipeline runs, newest first."""
        query = sa.select(pipeline_runs).where(pipeline_runs.c.model == model)
        query = query.order_by(pipeline_runs.c.started.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as connection:
            return [_run(row) for row in connection.execute(query).mappings()]

    def run(self, run_id: str) -> PipelineRun | None:
        query = sa.select(pipeline_runs).where(pipeline_runs.c.id == run_id)
        with self._reading() as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else _run(row)

    def abandon_running(self, model: str, reason: str) -> int:
        """Mark `model`'s runs still 'running' as failed: call only while holding its lock,
        when any such run belongs to a process that died."""
        query = (
            pipeline_runs.update()
            .where(pipeline_runs.c.model == model, pipeline_runs.c.outcome == "running")
            .values(outcome="failed", error=reason, ended=time.time())
        )
        with self._writing() as connection:
            return int(connection.execute(query).rowcount)

    # ---- plumbing ------------------------------------------------------------------------
    def _insert_event(self, connection: Connection, event: DeploymentEvent) -> DeploymentEvent:
        values = asdict(event)
        del values["id"]
        values["ts"] = event.ts or time.time()
        values["metrics"] = dict(event.metrics)
        values["gate"] = None if event.gate is None else dict(event.gate)
        new_id = connection.execute(deployments.insert().values(**values)).inserted_primary_key
        return DeploymentEvent(**{**values, "id": int(new_id[0]) if new_id else None})

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        with _database_errors(self.engine), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with _database_errors(self.engine), self.engine.connect() as connection:
            yield connection


def served_periods(events: Sequence[DeploymentEvent]) -> list[ServedPeriod]:
    """When each version was champion, oldest first, from events ordered oldest first."""
    periods: list[ServedPeriod] = []
    for event in events:
        if event.action not in MOVES_CHAMPION or event.alias != "champion":
            continue
        if periods and periods[-1].until is None:
            if periods[-1].version == event.version:
                continue  # promoted again while already champion: one period
            periods[-1] = ServedPeriod(periods[-1].version, periods[-1].since, event.ts)
        periods.append(ServedPeriod(event.version, event.ts, None))
    return periods


def rollback_target(events: Sequence[DeploymentEvent], current: int) -> int | None:
    """The version a rollback from `current` returns to: the latest earlier champion that was
    not itself rolled back from (unless promoted again since), so rolling back twice walks
    back through the history rather than returning to the version just left."""
    rolled_back_from: set[int] = set()
    for event in events:
        if event.alias != "champion":
            continue
        if event.action in MOVES_CHAMPION:
            rolled_back_from.discard(event.version)
        if event.action == "rolled_back" and event.previous is not None:
            rolled_back_from.add(event.previous)
    for period in reversed(served_periods(events)):
        if period.version != current and period.version not in rolled_back_from:
            return period.version
    return None


@contextmanager
def _database_errors(engine: Engine) -> Iterator[None]:
    try:
        yield
    except sa.exc.OperationalError as exc:
        detail = (str(exc.orig or exc).strip().splitlines() or [""])[0]
        hint = ""
        if "no such table" in detail or "does not exist" in detail:
            hint = "; run 'mlkeel db upgrade' to create mlkeel's tables"
        raise DatabaseError(
            f"the mlkeel database {engine.url!r} refused a history query: {detail}{hint}"
        ) from exc
    except sa.exc.ProgrammingError as exc:
        detail = (str(exc.orig or exc).strip().splitlines() or [""])[0]
        raise DatabaseError(
            f"the mlkeel database {engine.url!r} refused a history query: {detail}; "
            "run 'mlkeel db upgrade' if its tables are missing"
        ) from exc


def _run_values(run: PipelineRun) -> dict[str, Any]:
    values = asdict(run)
    values["steps"] = [asdict(step) for step in run.steps]
    values["gate"] = None if run.gate is None else dict(run.gate)
    values["data"] = None if run.data is None else dict(run.data)
    return values


def _event(row: RowMapping) -> DeploymentEvent:
    return DeploymentEvent(
        model=row["model"],
        action=row["action"],
        version=int(row["version"]),
        actor=row["actor"],
        previous=row["previous"],
        alias=row["alias"],
        reason=row["reason"],
        trigger=row["trigger"],
        forced=bool(row["forced"]),
        run_id=row["run_id"],
        metrics=dict(row["metrics"] or {}),
        gate=row["gate"],
        ts=float(row["ts"]),
        id=int(row["id"]),
    )


def _run(row: RowMapping) -> PipelineRun:
    return PipelineRun(
        id=row["id"],
        model=row["model"],
        trigger=row["trigger"],
        actor=row["actor"],
        started=float(row["started"]),
        outcome=row["outcome"],
        reason=row["reason"],
        ended=row["ended"],
        failed_step=row["failed_step"],
        error=row["error"],
        steps=[StepRecord(**step) for step in row["steps"] or []],
        parent_version=row["parent_version"],
        challenger_version=row["challenger_version"],
        gate=row["gate"],
        data=row["data"],
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
