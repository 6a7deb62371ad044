"""Moving the champion: promote (through the gate), approve, roll back.

Every move is one MLflow alias update (atomic; a running server follows it on its next poll)
wrapped in the transaction that records it in the history, so a move that fails leaves no
event. Manual moves never take the retrain lock: a rollback must not wait for a retrain.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mlkeel.errors import (
    ConfigError,
    GateFailedError,
    MlkeelError,
    ModelNotFoundError,
    RegistryError,
)
from mlkeel.history import DeploymentEvent, HistoryRepository, rollback_target
from mlkeel.registry import Registry
from mlkeel.retraining.data import load_test_data
from mlkeel.retraining.evaluate import Contender, Evaluation, compare
from mlkeel.retraining.gates import Check, GateReport, failed_load, judge, smoke_test
from mlkeel.settings import Settings

CHAMPION = "champion"


@dataclass(frozen=True)
class Promotion:
    """What `promote` did: the event (None when the version already was champion)."""

    event: DeploymentEvent | None
    gate: GateReport | None
    previous: int | None


def current_champion(registry: Registry, name: str) -> int | None:
    """The champion's version, None when there is none yet (raises for an unknown model)."""
    for info in registry.versions(name):
        if CHAMPION in info.aliases:
            return info.version
    return None


def move_champion(
    registry: Registry, history: HistoryRepository, event: DeploymentEvent
) -> DeploymentEvent:
    """Point ``champion`` at `event.version` and record `event`, both or neither."""
    with history.recording(event) as recorded:
        registry.set_alias(event.model, CHAMPION, event.version)
    return recorded


def gate_version(
    settings: Settings, registry: Registry, name: str, version: int, champion: int | None
) -> tuple[GateReport, Evaluation | None]:
    """Judge registered `version` against `champion` on the project's test split."""
    config = settings.model(name)
    try:
        loaded = registry.load(name, version)
    except RegistryError:
        raise
    except Exception as exc:  # unpickling runs the user's code: any failure blocks it
        return GateReport((failed_load(version, exc),)), None
    smoke = smoke_test(loaded.model, loaded.schema, version)
    challenger = Contender(loaded.model, loaded.schema.names, version)
    test, golden = load_test_data(settings, config)
    evaluation = compare(config, challenger, load_contender(registry, name, champion), test, golden)
    return GateReport((*judge(config, evaluation), smoke)), evaluation


def load_contender(registry: Registry, name: str, version: int | None) -> Contender | None:
    """The champion to compare with; one that fails to load becomes a recorded problem."""
    if version is None:
        return None
    try:
        loaded = registry.load(name, version)
    except RegistryError:
        raise
    except Exception as exc:
        problem = f"it failed to load: {exc.__class__.__name__}: {exc}"
        return Contender(None, [], version, problem)
    return Contender(loaded.model, loaded.schema.names, version)


def promote(
    settings: Settings,
    registry: Registry,
    history: HistoryRepository,
    name: str,
    version: int,
    *,
    actor: str,
    force: bool = False,
    reason: str | None = None,
) -> Promotion:
    """Make `version` the champion if it passes the gate against the current champion.

    `force` (with a `reason`) promotes despite a failed gate, or a gate that cannot run;
    the event records that it was forced and the gate's findings.
    """
    if force and not (reason or "").strip():
        raise ConfigError("--force needs --reason TEXT: an override is recorded with its reason")
    info = registry.version(name, version)
    previous = current_champion(registry, name)
    if previous == version:
        return Promotion(None, None, previous)
    try:
        gate, _ = gate_version(settings, registry, name, version, previous)
    except MlkeelError as exc:
        if not force:
            raise
        gate = GateReport((Check("gate", False, f"the gate could not run: {exc}"),))
    event = DeploymentEvent(
        model=name, action="promoted", version=version, actor=actor, previous=previous,
        reason=reason, trigger="manual", forced=not gate.passed, metrics=info.metrics,
        gate=gate.to_dict(),
    )  # fmt: skip
    if not gate.passed and not force:
        history.record(replace(event, action="blocked", forced=False))
        raise GateFailedError(
            f"version {version} of {name!r} failed the gate: {gate.summary()}. "
            f"The champion is unchanged ({_version(previous)}). Promote it anyway with "
            f"'mlkeel promote {name} {version} --force --reason TEXT'."
        )
    return Promotion(move_champion(registry, history, event), gate, previous)


def rollback(
    registry: Registry,
    history: HistoryRepository,
    name: str,
    *,
    actor: str,
    to: int | None = None,
    reason: str | None = None,
) -> DeploymentEvent:
    """Make the previous champion (or version `to`) the champion again; no gate."""
    current = current_champion(registry, name)
    if current is None:
        raise ModelNotFoundError(f"model {name!r} has no champion to roll back from")
    target = to if to is not None else rollback_target(history.events(name), current)
    if target is None:
        raise ModelNotFoundError(
            f"the history of {name!r} holds no champion before version {current}; "
            f"name the version to return to with 'mlkeel rollback {name} --to VERSION'"
        )
    if target == current:
        raise ModelNotFoundError(f"version {target} of {name!r} already is the champion")
    info = registry.version(name, target)
    event = DeploymentEvent(
        model=name, action="rolled_back", version=target, actor=actor, previous=current,
        reason=reason, trigger="manual", metrics=info.metrics,
    )  # fmt: skip
    return move_champion(registry, history, event)


def approve(
    registry: Registry,
    history: HistoryRepository,
    name: str,
    version: int,
    *,
    actor: str,
    reason: str | None = None,
) -> DeploymentEvent:
    """Promote a version a retrain left awaiting approval; its gate results are reused."""
    pending = {event.version: event for event in history.pending_approval(name)}
    waiting = pending.get(version)
    if waiting is None:
        listed = ", ".join(str(v) for v in sorted(pending)) or "none"
        raise ModelNotFoundError(
            f"version {version} of {name!r} is not awaiting approval (awaiting: {listed}); "
            f"promote it through the gate with 'mlkeel promote {name} {version}'"
        )
    current = current_champion(registry, name)
    if current != waiting.previous:
        raise GateFailedError(
            f"version {version} of {name!r} was gated against {_version(waiting.previous)}, "
            f"but the champion is now {_version(current)}; gate it against the current "
            f"champion with 'mlkeel promote {name} {version}'"
        )
    event = DeploymentEvent(
        model=name, action="approved", version=version, actor=actor, previous=current,
        reason=reason or waiting.reason, trigger=waiting.trigger, run_id=waiting.run_id,
        metrics=waiting.metrics, gate=waiting.gate,
    )  # fmt: skip
    return move_champion(registry, history, event)


def _version(version: int | None) -> str:
    return "no champion" if version is None else f"version {version}"
