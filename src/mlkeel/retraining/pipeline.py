"""The retraining pipeline: data → train → evaluate → register → gate → deploy.

Each step is announced as it starts and recorded in ``mlkeel_pipeline_runs`` as it ends
(status, seconds, a one-line detail), so the audit row of a run that crashed says which
step failed and why. Production changes only in the last step, and only through an alias
move recorded in the history: any failure before it leaves every alias where it was.

The challenger is registered (no alias, ``mlkeel.status = candidate``) before the gate,
because the gate's smoke test loads it from the registry exactly as a server would; the
gate then tags the verdict (``accepted`` or ``rejected``) and its results on the version.
Two retrains of one model never overlap: the run holds a database lock throughout.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

from mlkeel.errors import (
    ConfigError,
    GateFailedError,
    MlkeelError,
    ModelNotFoundError,
    PipelineError,
    RegistryError,
)
from mlkeel.history import (
    DeploymentEvent,
    HistoryRepository,
    PipelineRun,
    StepRecord,
)
from mlkeel.metrics import metric_names
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.registry import Registry, VersionInfo
from mlkeel.retraining.data import TrainingData, load_training_data, write_snapshot
from mlkeel.retraining.deploy import current_champion, load_contender, move_champion
from mlkeel.retraining.evaluate import Contender, Evaluation, compare
from mlkeel.retraining.gates import GateReport, failed_load, judge, smoke_test
from mlkeel.retraining.lock import DEFAULT_TTL, DatabaseLock, holder_name
from mlkeel.settings import ModelConfig, Settings
from mlkeel.training import TrainedModel, to_candidate, train_model

Trigger = Literal["manual", "schedule", "drift", "performance"]
TRIGGERS: tuple[str, ...] = ("manual", "schedule", "drift", "performance")
STEPS = ("data", "train", "evaluate", "register", "gate", "deploy")
T = TypeVar("T")


@dataclass(frozen=True)
class RetrainResult:
    """How a run ended: promoted, awaiting approval or blocked (failures raise)."""

    run: PipelineRun
    gate: GateReport | None = None
    evaluation: Evaluation | None = None
    event: DeploymentEvent | None = None

    @property
    def outcome(self) -> str:
        return self.run.outcome

    @property
    def version(self) -> int | None:
        return self.run.challenger_version


def retrain(
    settings: Settings,
    registry: Registry,
    history: HistoryRepository,
    name: str | None = None,
    *,
    actor: str,
    trigger: Trigger = "manual",
    reason: str | None = None,
    predictions: PredictionRepository | None = None,
    announce: Callable[[str], None] | None = None,
    lock_ttl: float = DEFAULT_TTL,
) -> RetrainResult:
    """Run the pipeline once for model `name` (default: the project's only model).

    Raises `LockedError` when a retrain of the model is already running, `PipelineError`
    (naming the step) when a step fails; a gate that blocks is an outcome, not an error.
    """
    config = settings.model(name)
    _check(config, trigger)
    if config.retrain.include_production and predictions is None:
        predictions = PredictionRepository(history.engine)  # the same operational database
    lock = DatabaseLock(
        history.engine,
        f"retrain:{config.name}",
        holder_name(actor),
        f"a retrain of {config.name!r}",
        lock_ttl,
    )
    with lock:
        history.abandon_running(
            config.name, "abandoned: its process stopped before the run ended (lock expired)"
        )
        run = PipelineRun(
            id=uuid.uuid4().hex, model=config.name, trigger=trigger, actor=actor,
            started=time.time(), reason=reason,
        )  # fmt: skip
        history.start_run(run)
        pipeline = _Pipeline(settings, registry, history, config, lock, predictions, run)
        return pipeline.run(announce or (lambda _: None))


def _check(config: ModelConfig, trigger: str) -> None:
    if trigger not in TRIGGERS:
        raise ConfigError(f"trigger {trigger!r} is not one of {list(TRIGGERS)}")
    unfit = sorted(set(config.retrain.min_metrics) - set(metric_names(config.task)))
    if unfit:
        raise ConfigError(
            f"models.{config.name}.retrain.min_metrics names {unfit}, which a {config.task} "
            f"model is not scored on; allowed: {metric_names(config.task)}"
        )


class _Pipeline:
    """One run's state as it moves through the steps."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        history: HistoryRepository,
        config: ModelConfig,
        lock: DatabaseLock,
        predictions: PredictionRepository | None,
        run: PipelineRun,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.history = history
        self.config = config
        self.lock = lock
        self.predictions = predictions
        self.record = run
        self.steps: list[StepRecord] = []
        self.announce: Callable[[str], None] = lambda _: None

    @property
    def name(self) -> str:
        return self.config.name

    def run(self, announce: Callable[[str], None]) -> RetrainResult:
        self.announce = announce
        current = "data"
        try:
            parent = self.champion()
            self.save(parent_version=parent)
            data = self.step("data", self.load_data, _describe_data)
            current = "train"
            trained = self.step("train", lambda: self.train(data), _describe_training)
            current = "evaluate"
            evaluation = self.step(
                "evaluate", lambda: self.evaluate(trained, data, parent), _describe_evaluation
            )
            current = "register"
            info = self.step(
                "register",
                lambda: self.register(trained, data, evaluation, parent),
                lambda info: f"version {info.version} (no alias)",
            )
            self.save(challenger_version=info.version)
            current = "gate"
            gate = self.gate(evaluation, info.version)
            if not gate.passed:
                return self.blocked(gate, evaluation, info, parent)
            current = "deploy"
            return self.deploy(gate, evaluation, info, parent)
        except BaseException as exc:
            self.fail(current, exc)
            if isinstance(exc, Exception):
                raise PipelineError(self.failure_message(current, exc), step=current) from exc
            raise

    # ---- the steps -----------------------------------------------------------------------
    def load_data(self) -> TrainingData:
        data = load_training_data(self.settings, self.config, self.predictions)
        return write_snapshot(self.settings, self.config, data)

    def train(self, data: TrainingData) -> TrainedModel:
        if data.snapshot is None:  # write_snapshot always sets it
            raise PipelineError("the data step left no snapshot", step="train")
        # Train on exactly the snapshot: its train split, judged on its test split.
        on_snapshot = self.config.model_copy(
            update={
                "data": str(data.snapshot / "train.parquet"),
                "data_query": None,
                "data_url": None,
                "test_data": str(data.snapshot / "test.parquet"),
            }
        )
        trained = train_model(self.settings, on_snapshot)
        return replace(trained, config=self.config, dataset=data.dataset)

    def evaluate(self, trained: TrainedModel, data: TrainingData, parent: int | None) -> Evaluation:
        challenger = Contender(trained.model, trained.schema.names)
        champion = load_contender(self.registry, self.name, parent)
        return compare(self.config, challenger, champion, data.test, data.golden)

    def register(
        self,
        trained: TrainedModel,
        data: TrainingData,
        evaluation: Evaluation,
        parent: int | None,
    ) -> VersionInfo:
        lineage: dict[str, Any] = {
            **data.lineage(),
            "parent_version": parent,
            "pipeline_run": self.record.id,
            "reason": self.record.reason,
            "status": "candidate",
            "champion_metrics": None if evaluation.champion is None else {
                "version": parent, **evaluation.champion.metrics
            },
        }  # fmt: skip
        candidate = to_candidate(trained, self.record.trigger, lineage=lineage)
        return self.registry.register(candidate)

    def gate(self, evaluation: Evaluation, version: int) -> GateReport:
        self.announce("gate")
        started = time.perf_counter()
        try:
            checks = judge(self.config, evaluation)
            try:
                loaded = self.registry.load(self.name, version)
            except RegistryError:
                raise
            except Exception as exc:  # unpickling runs the user's code: a finding, not a crash
                smoke = failed_load(version, exc)
            else:
                smoke = smoke_test(loaded.model, loaded.schema, version)
            gate = GateReport((*checks, smoke))
            self.tag(version, status="accepted" if gate.passed else "rejected", gate=gate.to_dict())
        except BaseException as exc:
            self.steps.append(_step("gate", "failed", started, _error(exc)))
            raise
        status: Literal["ok", "failed"] = "ok" if gate.passed else "failed"
        passed = sum(check.passed for check in gate.checks)
        detail = f"{passed}/{len(gate.checks)} checks passed"
        if not gate.passed:
            detail += f": {gate.summary()}"
        self.steps.append(_step("gate", status, started, detail))
        self.save(gate=gate.to_dict())
        return gate

    def blocked(
        self, gate: GateReport, evaluation: Evaluation, info: VersionInfo, parent: int | None
    ) -> RetrainResult:
        self.steps.append(StepRecord("deploy", "skipped", 0.0, "the gate blocked the version"))
        event = self.history.record(self.event("blocked", gate, info, parent))
        self.save(outcome="blocked", failed_step="gate", error=gate.summary(), ended=time.time())
        return RetrainResult(self.record, gate, evaluation, event)

    def deploy(
        self, gate: GateReport, evaluation: Evaluation, info: VersionInfo, parent: int | None
    ) -> RetrainResult:
        def work() -> DeploymentEvent:
            self.lock.ensure_held()
            now = current_champion(self.registry, self.name)
            if now != parent:
                raise GateFailedError(
                    f"the champion moved from {_version(parent)} to {_version(now)} during "
                    f"this retrain, and version {info.version} was gated against the former; "
                    f"gate it against the current one with "
                    f"'mlkeel promote {self.name} {info.version}'"
                )
            if self.config.retrain.deploy == "approval":
                return self.history.record(self.event("awaiting_approval", gate, info, parent))
            return move_champion(
                self.registry, self.history, self.event("promoted", gate, info, parent)
            )

        event = self.step("deploy", work, _describe_deployment)
        outcome: Literal["promoted", "awaiting_approval"] = (
            "promoted" if event.action == "promoted" else "awaiting_approval"
        )
        self.save(outcome=outcome, ended=time.time())
        return RetrainResult(self.record, gate, evaluation, event)

    # ---- plumbing ------------------------------------------------------------------------
    def champion(self) -> int | None:
        try:
            return current_champion(self.registry, self.name)
        except ModelNotFoundError:
            return None  # never registered: this run trains its first version

    def step(self, name: str, work: Callable[[], T], describe: Callable[[T], str]) -> T:
        """Run one step: announce it, time it, record how it ended."""
        self.announce(name)
        started = time.perf_counter()
        try:
            result = work()
        except BaseException as exc:
            self.steps.append(_step(name, "failed", started, _error(exc)))
            raise
        self.steps.append(_step(name, "ok", started, describe(result)))
        self.save()
        return result

    def event(
        self, action: Any, gate: GateReport, info: VersionInfo, parent: int | None
    ) -> DeploymentEvent:
        return DeploymentEvent(
            model=self.name, action=action, version=info.version, actor=self.record.actor,
            previous=parent, reason=self.record.reason, trigger=self.record.trigger,
            run_id=self.record.id, metrics=info.metrics, gate=gate.to_dict(),
        )  # fmt: skip

    def save(self, **changes: Any) -> None:
        self.record = replace(self.record, steps=tuple(self.steps), **changes)
        self.history.save_run(self.record)

    def fail(self, step: str, exc: BaseException) -> None:
        """Record the failure; a failure to record it must not hide the original error."""
        try:
            self.save(outcome="failed", failed_step=step, error=_error(exc), ended=time.time())
        except Exception as recording:
            exc.add_note(f"(the audit row of run {self.record.id} was not updated: {recording})")

    def failure_message(self, step: str, exc: BaseException) -> str:
        parent = self.record.parent_version
        return (
            f"retrain of {self.name!r} failed at step {step!r}: {exc}. Production is "
            f"unchanged (champion: {_version(parent)}); run {self.record.id} is in the "
            f"audit trail ('mlkeel history {self.name}')."
        )

    def tag(self, version: int, **tags: Any) -> None:
        """Add verdict tags to a registered version."""
        self.registry.set_tags(self.name, version, tags)


def _step(
    name: str, status: Literal["ok", "failed", "skipped"], started: float, detail: str
) -> StepRecord:
    return StepRecord(name, status, round(time.perf_counter() - started, 4), detail)


def _error(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if isinstance(exc, MlkeelError) else f"{exc.__class__.__name__}: {text}"


def _version(version: int | None) -> str:
    return "none" if version is None else f"version {version}"


def _describe_data(data: TrainingData) -> str:
    added = f", {data.production_rows} from production" if data.production_rows else ""
    return f"{data.dataset.rows} rows{added}, sha256 {data.dataset.sha256[:12]}"


def _describe_training(trained: TrainedModel) -> str:
    metric = trained.config.metric
    return (
        f"train() took {trained.train_seconds:.2f} s on {trained.train_rows} rows; "
        f"{metric} {trained.metrics.get(metric, float('nan')):.4f} on {trained.test_rows} test rows"
    )


def _describe_evaluation(evaluation: Evaluation) -> str:
    metric = evaluation.metric
    new = evaluation.challenger.metrics.get(metric)
    shown = "n/a" if new is None else f"{new:.4f}"
    text = f"{metric}: challenger {shown}"
    if evaluation.champion is not None:
        old = evaluation.champion.metrics.get(metric)
        versus = evaluation.champion.problem if old is None else f"{old:.4f}"
        text += f", champion v{evaluation.champion_version} {versus}"
    return text + f" on {evaluation.test_rows} test rows"


def _describe_deployment(event: DeploymentEvent) -> str:
    if event.action == "awaiting_approval":
        return f"version {event.version} awaits 'mlkeel approve {event.model} {event.version}'"
    return f"champion: {_version(event.previous)} → version {event.version}"
