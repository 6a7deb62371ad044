"""What ``mlkeel up`` runs: the jobs of a project (`plan`) and one adapter per kind.

Each adapter calls the library entry point of its job and turns the answer into a
`JobResult` with a small JSON summary, so the scheduler never depends on those entry points'
signatures: when one changes, only its adapter here changes.

==========  ======================================================  =====================
kind        calls                                                   per
==========  ======================================================  =====================
monitor     monitoring.pipeline.monitor over schedules.monitor_window  model
canary      rollout.check (analyse the canary, promote/roll back)    model
retrain     retraining.pipeline.retrain (trigger schedule/drift/…)   model
retention   PredictionRepository.prune, SummaryStore.prune,          project
            JobRunStore.prune (older than schedules.retention)
==========  ======================================================  =====================
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from mlkeel.errors import JobInterruptedError, LockedError, MlkeelError, PipelineError
from mlkeel.scheduling.cron import Cron, parse_cron

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mlkeel.registry import Registry
    from mlkeel.settings import Settings

Kind = Literal["monitor", "canary", "retrain", "retention"]
MODEL_KINDS: tuple[Kind, ...] = ("monitor", "canary", "retrain")
RetrainTrigger = Literal["schedule", "drift", "performance"]
ACTOR = "mlkeel-up"


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: its kind, its model (None for project-wide jobs), its times."""

    kind: Kind
    model: str | None
    cron: Cron | None  # None: runs only when asked (a retrain on alert with no schedule)

    @property
    def id(self) -> str:
        return self.kind if self.model is None else f"{self.kind}:{self.model}"

    @property
    def key(self) -> str:
        """The setting that schedules it."""
        if self.model is None:
            return "schedules.prune"
        return f"models.{self.model}.schedules.{self.kind}"


@dataclass(frozen=True)
class JobContext:
    """What the adapters need; `stopping` is set when the process is asked to stop."""

    settings: Settings
    registry: Registry
    engine: Engine
    stopping: threading.Event = field(default_factory=threading.Event)
    actor: str = ACTOR


@dataclass(frozen=True)
class JobResult:
    outcome: Literal["ok", "skipped"]
    summary: dict[str, Any]
    reason: str | None = None  # why it was skipped
    retrain: RetrainTrigger | None = None  # a monitoring run asks for a retrain


def plan(settings: Settings) -> list[JobSpec]:
    """Every job the settings schedule, cron expressions parsed (errors name the key)."""
    specs: list[JobSpec] = []
    for name, config in settings.models.items():
        for kind in MODEL_KINDS:
            text = getattr(config.schedules, kind)
            if text != "off":
                cron = parse_cron(text, f"models.{name}.schedules.{kind}")
                specs.append(JobSpec(kind, name, cron))
    if settings.schedules.prune != "off":
        cron = parse_cron(settings.schedules.prune, "schedules.prune")
        specs.append(JobSpec("retention", None, cron))
    return specs


def run_job(spec: JobSpec, context: JobContext, retrain_trigger: RetrainTrigger) -> JobResult:
    """Run `spec` once through its adapter."""
    if spec.kind == "retention":
        return prune_old_records(context)
    if spec.model is None:
        raise MlkeelError(f"job {spec.id!r} needs a model")
    if spec.kind == "monitor":
        return monitor_model(context, spec.model)
    if spec.kind == "canary":
        return check_canary(context, spec.model)
    return retrain_model(context, spec.model, retrain_trigger)


# ---- adapters ------------------------------------------------------------------------------
def monitor_model(context: JobContext, model: str) -> JobResult:
    from mlkeel.monitoring.pipeline import monitor, window_ending

    config = context.settings.model(model)
    since, until = window_ending(None, config.schedules.monitor_window)
    result = monitor(context.settings, context.registry, context.engine, model, since, until)
    report = result.report
    summary = {
        "status": report.status, "version": report.version, "rows": report.rows,
        "window": list(report.window), "dataset_drift": report.dataset_drift,
        "drift_share": round(report.drift_share, 4), "alerts": list(report.alerts),
        "retrain_asked": result.retrain,
    }  # fmt: skip
    trigger: RetrainTrigger | None = None
    if result.retrain and config.schedules.retrain_on_alert:
        asks = config.alerts.retrain_on
        trigger = "drift" if report.dataset_drift and "drift" in asks else "performance"
    return JobResult("ok", summary, retrain=trigger)


def check_canary(context: JobContext, model: str) -> JobResult:
    from mlkeel.history import HistoryRepository
    from mlkeel.prediction_log.repository import PredictionRepository
    from mlkeel.rollout import Rollout, check

    rollout = Rollout(context.registry, HistoryRepository(context.engine), actor=context.actor)
    verdict = check(context.settings, rollout, PredictionRepository(context.engine), model)
    if verdict is None:
        return JobResult("ok", {"canary": None})
    summary = {"canary": verdict.version, "decision": verdict.decision,
               "reasons": list(verdict.reasons)}  # fmt: skip
    return JobResult("ok", summary)


def retrain_model(context: JobContext, model: str, trigger: RetrainTrigger) -> JobResult:
    from mlkeel.history import HistoryRepository
    from mlkeel.retraining.pipeline import retrain

    def checkpoint(step: str) -> None:
        """Called before each step: a stopping process ends the run here, cleanly."""
        if context.stopping.is_set():
            raise JobInterruptedError(f"mlkeel up was stopping; the run ended before step {step!r}")

    reason = "scheduled retrain" if trigger == "schedule" else f"{trigger} alert"
    try:
        result = retrain(
            context.settings, context.registry, HistoryRepository(context.engine), model,
            actor=context.actor, trigger=trigger, reason=reason, announce=checkpoint,
        )  # fmt: skip
    except LockedError as exc:
        return JobResult("skipped", {}, reason=str(exc))
    except PipelineError as exc:
        if isinstance(exc.__cause__, JobInterruptedError):
            raise exc.__cause__ from None
        raise
    summary = {
        "outcome": result.outcome, "version": result.version, "run_id": result.run.id,
        "trigger": trigger, "gate": result.gate.summary() if result.gate is not None else None,
    }  # fmt: skip
    return JobResult("ok", summary)


def prune_old_records(context: JobContext) -> JobResult:
    from mlkeel.durations import parse_age
    from mlkeel.monitoring.summary_store import SummaryStore
    from mlkeel.prediction_log.repository import PredictionRepository
    from mlkeel.scheduling.runs import JobRunStore

    retention = context.settings.schedules.retention
    before = time.time() - parse_age(retention).total_seconds()
    summary = {
        "retention": retention,
        "before": datetime.fromtimestamp(before, UTC).isoformat(timespec="seconds"),
        "predictions": PredictionRepository(context.engine).prune(before),
        "summaries": SummaryStore(context.engine).prune(before),
        "job_runs": JobRunStore(context.engine).prune(before),
    }
    return JobResult("ok", summary)
