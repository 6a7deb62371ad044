"""Canary and shadow rollouts: start them, judge a canary against the champion, end them.

The registry is the source of truth, so every server replica follows it by polling:

- the ``canary`` alias names the canary version; its tags ``mlkeel.canary_percent``,
  ``mlkeel.canary_started`` and ``mlkeel.canary_until`` say how much traffic it gets and when
  its window ends; a server that stopped routing to it (its in-process failure window tripped)
  tags it ``mlkeel.canary_tripped``; the last scheduled verdict is kept in
  ``mlkeel.canary_verdict``; ``mlkeel.rollout_status`` says how it ended;
- the ``shadow`` alias names the shadow version (it gets a copy of every request).

`analyse` is a pure function of the evidence (`gather`: the prediction log over the canary's
window, and the hourly summaries for failed requests) and the model's `RolloutConfig`:

========================  =================================================  ==============
check                     fails when                                         then
========================  =================================================  ==============
tripped                   a server stopped routing to the canary             rollback now
sample                    canary requests < min_requests                     wait
error_rate                canary failed requests / requests > max_error_rate rollback now
latency_p95               canary p95 / champion p95 > max_latency_p95_ratio  rollback now
                          (and more than LATENCY_FLOOR_MS slower)
divergence                JS distance of the predictions > max_divergence    rollback at end
                          (only without labels: with them, accuracy judges)
accuracy                  canary accuracy < champion's - accuracy_margin     rollback at end
                          (classification; regression: MAE ratio > 1+margin)
window                    the canary's duration has not passed               wait
========================  =================================================  ==============

`check` is the scheduled job: gather, analyse, record the verdict, act (promote: the canary
becomes the champion; rollback: the canary alias goes, the version is tagged rolled back), and
record every action in the deployment history; a rollback also raises an alert.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import math
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlkeel.errors import ConfigError, ModelNotFoundError, RolloutError
from mlkeel.history import DeploymentEvent, HistoryRepository
from mlkeel.monitoring.stats import js_distance, quantile_edges
from mlkeel.settings import RolloutConfig

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mlkeel.prediction_log.repository import PredictionRepository
    from mlkeel.registry import Registry, VersionInfo
    from mlkeel.settings import Settings

CHAMPION, CANARY, SHADOW = "champion", "canary", "shadow"
TAG = "mlkeel."
CANARY_TAGS = ("canary_percent", "canary_started", "canary_until", "canary_tripped",
               "canary_verdict", "rollout_status")  # fmt: skip
LATENCY_FLOOR_MS = 5.0  # a canary this little slower is never "too slow", whatever the ratio
MIN_LABELLED = 30  # labelled rows per variant before accuracy is judged
ALERT_RULE = "canary_rollback"

Decision = Literal["promote", "wait", "rollback"]

log = logging.getLogger(__name__)


# ---- state ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CanaryState:
    """A running canary, as the registry describes it."""

    model: str
    version: int
    champion: int | None
    percent: float
    started: float  # epoch seconds
    until: float
    tripped: str | None = None
    verdict: dict[str, Any] | None = None  # the last scheduled verdict


@dataclass(frozen=True)
class VariantStats:
    """One variant's numbers over the canary's window."""

    version: int | None
    requests: int  # answered requests
    errors: int | None  # failed requests (None: no summaries to count them)
    latency_p95_ms: float | None
    labelled: int = 0
    accuracy: float | None = None  # classification: share correct; regression: MAE
    predictions: list[Any] = field(default_factory=list, repr=False)

    @property
    def error_rate(self) -> float | None:
        if self.errors is None:
            return None
        total = self.requests + self.errors
        return self.errors / total if total else None


@dataclass(frozen=True)
class Evidence:
    """Canary against champion over one window."""

    since: float
    until: float
    champion: VariantStats
    canary: VariantStats
    divergence: float | None  # JS distance (base 2) of the predicted-value distributions
    task: Literal["classification", "regression"] | None

    def to_dict(self) -> dict[str, Any]:
        def stats(s: VariantStats) -> dict[str, Any]:
            document = asdict(s)
            del document["predictions"]
            document["error_rate"] = s.error_rate
            return document

        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "champion": stats(self.champion),
            "canary": stats(self.canary),
            "divergence": self.divergence,
            "task": self.task,
        }


@dataclass(frozen=True)
class Verdict:
    """What the analysis concluded about one canary, why, and on which numbers."""

    model: str
    version: int
    decision: Decision
    reasons: list[str]
    evidence: Evidence
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "decision": self.decision,
            "reasons": self.reasons,
            "evidence": self.evidence.to_dict(),
            "at": _iso(self.at),
        }


# ---- analysis ------------------------------------------------------------------------------
def analyse(
    state: CanaryState, evidence: Evidence, config: RolloutConfig, now: float | None = None
) -> Verdict:
    """Promote, wait or roll back `state`'s canary on `evidence` (the table in the module doc)."""
    now = time.time() if now is None else now
    canary, champion = evidence.canary, evidence.champion

    def verdict(decision: Decision, *reasons: str) -> Verdict:
        return Verdict(state.model, state.version, decision, list(reasons), evidence, now)

    if state.tripped:
        return verdict("rollback", f"a server stopped routing to it: {state.tripped}")
    seen = canary.requests + (canary.errors or 0)
    if seen < config.min_requests:
        return verdict(
            "wait", f"{seen} canary requests so far; no verdict before {config.min_requests}"
        )
    rate = canary.error_rate
    if rate is not None and rate > config.max_error_rate:
        return verdict(
            "rollback",
            f"error rate {rate:.2%} ({canary.errors} of {seen}) > {config.max_error_rate:.2%}",
        )
    slow = _too_slow(canary.latency_p95_ms, champion.latency_p95_ms, config)
    if slow:
        return verdict("rollback", slow)
    concerns = _concerns(evidence, config)
    if now < state.until:
        left = _age(state.until - now)
        return verdict("wait", f"window ends in {left}", *concerns)
    if concerns:
        return verdict("rollback", *concerns)
    return verdict(
        "promote",
        f"{seen} requests over {_age(state.until - state.started)}; every check within limits",
    )


def _too_slow(canary: float | None, champion: float | None, config: RolloutConfig) -> str | None:
    if canary is None or champion is None or champion <= 0:
        return None
    ratio = canary / champion
    if ratio > config.max_latency_p95_ratio and canary - champion > LATENCY_FLOOR_MS:
        return (
            f"latency p95 {canary:.1f} ms is {ratio:.2f}x the champion's {champion:.1f} ms "
            f"(limit {config.max_latency_p95_ratio}x)"
        )
    return None


def _concerns(evidence: Evidence, config: RolloutConfig) -> list[str]:
    """What would stop a promotion now. With labels on both sides, accuracy judges: a
    retrained canary is *meant* to predict differently once the world has changed. Without
    labels, a large prediction divergence is the only sign of a wrong model."""
    canary, champion = evidence.canary, evidence.champion
    if canary.accuracy is None or champion.accuracy is None:
        if (
            evidence.divergence is not None
            and evidence.divergence > config.max_prediction_divergence
        ):
            return [
                f"prediction divergence {evidence.divergence:.3f} (Jensen-Shannon) > "
                f"{config.max_prediction_divergence} and no labels to show it is better"
            ]
        return []
    if evidence.task == "classification":
        if canary.accuracy < champion.accuracy - config.accuracy_margin:
            return [
                f"accuracy {canary.accuracy:.3f} < champion's {champion.accuracy:.3f} - "
                f"{config.accuracy_margin} on labelled rows"
            ]
    elif canary.accuracy > champion.accuracy * (1 + config.accuracy_margin):
        return [
            f"MAE {canary.accuracy:.4g} > champion's {champion.accuracy:.4g} "
            f"x (1 + {config.accuracy_margin}) on labelled rows"
        ]
    return []


# ---- evidence ------------------------------------------------------------------------------
@dataclass
class _Tally:
    requests: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)
    labelled: list[tuple[Any, Any]] = field(default_factory=list)


def gather(
    state: CanaryState,
    repository: PredictionRepository,
    errors: Mapping[tuple[int, str], int] | None = None,
    now: float | None = None,
) -> Evidence:
    """The canary and champion numbers since the canary started, from the prediction log.

    `errors` holds failed requests per (version, variant) (`count_errors`, from the hourly
    summaries); without it error rates are unknown and only the in-process guard acts.
    """
    now = time.time() if now is None else now
    tallies = {CHAMPION: _Tally(), CANARY: _Tally()}
    for row in repository.window(state.model, since=state.started, until=now + 1):
        variant = row["variant"]
        if variant == CANARY and row["version"] != state.version:
            continue
        tally = tallies.get(variant)
        if tally is None:
            continue
        if row["row"] == 0:
            tally.requests.add(row["request_id"])
            tally.latencies.append(float(row["latency_ms"]))
        tally.predictions.append(row["prediction"])
        if row.get("label") is not None:
            tally.labelled.append((row["prediction"], row["label"]))
    task = _task(tallies[CHAMPION].predictions + tallies[CANARY].predictions)
    champion = _stats(state.champion, CHAMPION, tallies[CHAMPION], errors, task)
    canary = _stats(state.version, CANARY, tallies[CANARY], errors, task)
    divergence = _divergence(champion.predictions, canary.predictions, task)
    return Evidence(state.started, now, champion, canary, divergence, task)


def _stats(
    version: int | None,
    variant: str,
    tally: _Tally,
    errors: Mapping[tuple[int, str], int] | None,
    task: Literal["classification", "regression"] | None,
) -> VariantStats:
    p95 = float(np.percentile(tally.latencies, 95)) if tally.latencies else None
    failed = None if errors is None or version is None else errors.get((version, variant), 0)
    accuracy = None
    if len(tally.labelled) >= MIN_LABELLED and task is not None:
        predicted = [p for p, _ in tally.labelled]
        truth = [t for _, t in tally.labelled]
        if task == "classification":
            accuracy = float(np.mean([str(p) == str(t) for p, t in tally.labelled]))
        else:
            accuracy = float(np.mean(np.abs(_floats(predicted) - _floats(truth))))
    return VariantStats(
        version, len(tally.requests), failed, p95, len(tally.labelled), accuracy, tally.predictions
    )


def _task(predictions: list[Any]) -> Literal["classification", "regression"] | None:
    sample = [p for p in predictions[:1000] if p is not None]
    if not sample:
        return None
    numeric = all(isinstance(p, float) for p in sample)
    many = len({*sample}) > 20
    return "regression" if numeric and many else "classification"


def _divergence(
    champion: list[Any], canary: list[Any], task: Literal["classification", "regression"] | None
) -> float | None:
    if not champion or not canary or task is None:
        return None
    if task == "classification":
        labels = sorted({str(p) for p in champion} | {str(p) for p in canary})
        index = {label: i for i, label in enumerate(labels)}
        p = np.bincount([index[str(v)] for v in champion], minlength=len(labels))
        q = np.bincount([index[str(v)] for v in canary], minlength=len(labels))
        return js_distance(p, q)
    ours, theirs = _floats(champion), _floats(canary)
    ours, theirs = ours[np.isfinite(ours)], theirs[np.isfinite(theirs)]
    if not ours.size or not theirs.size:
        return None
    edges = quantile_edges(ours, 10)
    bounds = np.concatenate(([-np.inf], edges[1:-1], [np.inf]))
    p, _ = np.histogram(ours, bounds)
    q, _ = np.histogram(theirs, bounds)
    return js_distance(p, q)


def _floats(values: Iterable[Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def count_errors(
    engine: Engine, model: str, since: float, until: float
) -> dict[tuple[int, str], int] | None:
    """Failed requests per (version, variant) in the hourly summaries of [since, until]."""
    from mlkeel.monitoring.summaries import HOUR, Summary
    from mlkeel.monitoring.summary_store import SummaryStore

    counts: dict[tuple[int, str], int] = {}
    start = since - since % HOUR
    for (_, version, variant, _hour), payload in SummaryStore(engine).window(model, start, until):
        errors = Summary.from_payload(payload).errors
        counts[version, variant] = counts.get((version, variant), 0) + errors
    return counts or None  # no summaries at all: the writer does not fold them


# ---- the registry --------------------------------------------------------------------------
def canary_state(registry: Registry, name: str) -> CanaryState | None:
    """The model's running canary, or None."""
    info = _alias(registry, name, CANARY)
    if info is None:
        return None
    champion = _alias(registry, name, CHAMPION)
    tags = info.lineage
    started = _epoch(tags.get("canary_started") or tags.get("canary_since"))
    until = _epoch(tags.get("canary_until")) or started
    verdict = tags.get("canary_verdict")
    return CanaryState(
        name,
        info.version,
        champion.version if champion else None,
        float(tags.get("canary_percent") or RolloutConfig().canary_percent),
        started,
        until,
        _text(tags.get("canary_tripped")),
        verdict if isinstance(verdict, dict) else None,
    )


def shadow_version(registry: Registry, name: str) -> int | None:
    info = _alias(registry, name, SHADOW)
    return info.version if info else None


def _alias(registry: Registry, name: str, alias: str) -> VersionInfo | None:
    try:
        info = registry.resolve(name, alias)
    except ModelNotFoundError:
        return None
    return info if alias in info.aliases else None


def _set_tags(registry: Registry, name: str, version: int, tags: Mapping[str, Any]) -> None:
    registry.set_tags(name, version, tags)


def _clear_tags(registry: Registry, name: str, version: int, keys: Iterable[str]) -> None:
    registry.delete_tags(name, version, keys)


def _drop_alias(registry: Registry, name: str, alias: str) -> None:
    registry.delete_alias(name, alias)


# ---- actions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rollout:
    """What the rollout actions need: the registry, the history, who acts."""

    registry: Registry
    history: HistoryRepository
    actor: str = field(default_factory=lambda: actor_name())

    def start_canary(
        self,
        name: str,
        version: int,
        config: RolloutConfig,
        percent: float | None = None,
        duration: str | None = None,
        reason: str | None = None,
    ) -> CanaryState:
        """Make `version` the canary with `percent` of the traffic for `duration`."""
        percent = config.canary_percent if percent is None else percent
        if not 0 < percent < 100:
            raise ConfigError(f"--canary {percent:g} must be a percentage between 0 and 100")
        seconds = duration_seconds(duration or config.duration)
        champion = self._champion(name, version)
        now = time.time()
        _clear_tags(self.registry, name, version, CANARY_TAGS)
        _set_tags(self.registry, name, version, {
            "canary_percent": percent,
            "canary_started": _iso(now, "milliseconds"),
            "canary_until": _iso(now + seconds, "milliseconds"),
        })  # fmt: skip
        event = self._event(name, "promoted", CANARY, version, champion, reason or "canary")
        with self.history.recording(event):
            self.registry.set_alias(name, CANARY, version)
        return CanaryState(name, version, champion, percent, now, now + seconds)

    def start_shadow(self, name: str, version: int, reason: str | None = None) -> None:
        """Make `version` the shadow: a copy of every request, outputs only logged."""
        champion = self._champion(name, version)
        event = self._event(name, "promoted", SHADOW, version, champion, reason or "shadow")
        with self.history.recording(event):
            self.registry.set_alias(name, SHADOW, version)

    def promote(self, verdict: Verdict) -> None:
        """The canary becomes the champion; its alias goes."""
        state = self._still(verdict)
        if state is None:
            return
        event = self._event(
            verdict.model, "promoted", CHAMPION, state.version, state.champion,
            "; ".join(verdict.reasons), gate=verdict.to_dict(),
        )  # fmt: skip
        with self.history.recording(event):
            self.registry.set_alias(verdict.model, CHAMPION, state.version)
        _drop_alias(self.registry, verdict.model, CANARY)
        _set_tags(self.registry, verdict.model, state.version, {"rollout_status": "promoted"})
        log.warning("%s: canary version %d promoted to champion", verdict.model, state.version)

    def rollback(self, verdict: Verdict) -> None:
        """The canary alias goes; the version is tagged rolled back."""
        state = self._still(verdict)
        if state is None:
            return
        self._end(verdict.model, CANARY, state.version, "; ".join(verdict.reasons),
                  verdict.to_dict(), status="rolled_back")  # fmt: skip
        log.warning(
            "%s: canary version %d rolled back: %s",
            verdict.model, state.version, "; ".join(verdict.reasons),
        )  # fmt: skip

    def abort(self, name: str, reason: str | None = None) -> list[str]:
        """End the model's canary and shadow at once; return what was ended."""
        ended = []
        for alias in (CANARY, SHADOW):
            info = _alias(self.registry, name, alias)
            if info is not None:
                why = reason or f"{alias} aborted by {self.actor}"
                self._end(name, alias, info.version, why, None, status="aborted")
                ended.append(f"{alias} version {info.version}")
        return ended

    def record_verdict(self, verdict: Verdict) -> None:
        """Keep the latest verdict on the canary version (``mlkeel.canary_verdict``)."""
        _set_tags(self.registry, verdict.model, verdict.version,
                  {"canary_verdict": verdict.to_dict()})  # fmt: skip

    def _end(
        self,
        name: str,
        alias: str,
        version: int,
        reason: str,
        gate: dict[str, Any] | None,
        status: str,
    ) -> None:
        champion = _alias(self.registry, name, CHAMPION)
        previous = champion.version if champion else version
        event = DeploymentEvent(
            model=name, action="rolled_back", version=previous, actor=self.actor,
            previous=version, alias=alias, reason=reason, trigger=alias, gate=gate,
        )  # fmt: skip
        with self.history.recording(event):
            _drop_alias(self.registry, name, alias)
        tag = "rollout_status" if alias == CANARY else "shadow_status"
        _set_tags(self.registry, name, version, {tag: status})

    def _still(self, verdict: Verdict) -> CanaryState | None:
        """The canary the verdict is about, if it still runs (another checker may have acted)."""
        state = canary_state(self.registry, verdict.model)
        if state is None or state.version != verdict.version:
            log.info("%s: canary version %d already ended", verdict.model, verdict.version)
            return None
        return state

    def _champion(self, name: str, version: int) -> int:
        self.registry.version(name, version)  # raises a clear error for an unknown version
        champion = _alias(self.registry, name, CHAMPION)
        if champion is None:
            raise RolloutError(
                f"{name!r} has no champion to compare a canary or shadow with; promote one "
                f"first with 'mlkeel promote {name} VERSION'"
            )
        if champion.version == version:
            raise RolloutError(f"version {version} of {name!r} is already the champion")
        return champion.version

    def _event(
        self,
        name: str,
        action: Literal["promoted", "rolled_back"],
        alias: str,
        version: int,
        previous: int | None,
        reason: str,
        gate: dict[str, Any] | None = None,
    ) -> DeploymentEvent:
        return DeploymentEvent(
            model=name, action=action, version=version, actor=self.actor, previous=previous,
            alias=alias, reason=reason, trigger=CANARY if alias == CHAMPION else alias, gate=gate,
        )  # fmt: skip


# ---- the scheduled check -------------------------------------------------------------------
def check(
    settings: Settings,
    rollout: Rollout,
    repository: PredictionRepository,
    name: str,
    act: bool = True,
    now: float | None = None,
) -> Verdict | None:
    """One scheduled pass for `name`: analyse its canary, record the verdict, act on it."""
    state = canary_state(rollout.registry, name)
    if state is None:
        return None
    now = time.time() if now is None else now
    engine = repository.engine
    try:
        errors: dict[tuple[int, str], int] | None = count_errors(engine, name, state.started, now)
    except Exception as exc:  # no summaries yet: rates unknown, the in-process guard still acts
        log.info("no failed-request counts for %s (%s)", name, exc.__class__.__name__)
        errors = None
    config = settings.models[name].rollout if name in settings.models else RolloutConfig()
    verdict = analyse(state, gather(state, repository, errors, now), config, now)
    if not act:
        return verdict
    rollout.record_verdict(verdict)
    if verdict.decision == "promote":
        rollout.promote(verdict)
    elif verdict.decision == "rollback":
        rollout.rollback(verdict)
        _alert(settings, engine, verdict)
    return verdict


def _alert(settings: Settings, engine: Engine, verdict: Verdict) -> None:
    """Raise a ``canary_rollback`` alert through the monitoring alert store; never raises."""
    try:
        from datetime import timedelta

        from mlkeel.monitoring.alert_sinks import build_sinks
        from mlkeel.monitoring.alert_store import AlertStore
        from mlkeel.monitoring.alerts import AlertCandidate, json_safe

        message = (
            f"{verdict.model}: canary version {verdict.version} rolled back: "
            f"{'; '.join(verdict.reasons)}"
        )
        candidate = AlertCandidate(
            ALERT_RULE, f"version {verdict.version}", message, json_safe(verdict.to_dict())
        )
        cooldown = timedelta(seconds=duration_seconds(settings.alerts.cooldown))
        AlertStore(engine).process(
            verdict.model, [candidate], (), build_sinks(settings.alerts), cooldown
        )
    except Exception:
        log.exception("could not raise the rollback alert of %s", verdict.model)


# ---- small helpers -------------------------------------------------------------------------
DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration_seconds(text: str) -> float:
    """``30m``, ``2h``, ``45s``, ``1d`` as seconds."""
    match = DURATION.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"duration {text!r} must be a number and a unit: 45s, 30m, 2h, 1d")
    return float(match.group(1)) * UNITS[match.group(2)]


def actor_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _iso(moment: float, timespec: str = "seconds") -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec=timespec)


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value)
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    return 0.0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return str(value.get("reason") or value)
    return str(value)


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
