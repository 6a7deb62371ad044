"""Alert rules: which conditions of a monitoring report fire, as candidates for the store.

Pure functions of a :class:`MonitoringReport`, the model's :class:`AlertRules` and the
previous window's report. Each firing condition is one :class:`AlertCandidate`, keyed by
``(rule, subject)``; the store deduplicates on that key, keeps a cooldown and resolves what
cleared (``alert_store.py``), the sinks deliver (``alert_sinks.py``).

A rule reaches a verdict only on enough evidence. :func:`evaluate` returns an
:class:`Evaluation`: the list of candidates, whose ``evaluated`` names the rules that reached a
verdict; only those may resolve open alerts (too little traffic says nothing about drift)::

    candidates = evaluate(report, rules, metric, higher_is_better, previous)
    outcome = store.process(model, candidates, candidates.evaluated, sinks, cooldown, now)

========================  ===============================================  ==================
rule (subject)            fires when                                       judged when
========================  ===============================================  ==================
dataset_drift (dataset)   the report's dataset-level drift verdict         rows >= min_rows
feature_drift (feature)   a feature in ``rules.features`` drifted          rows >= min_rows
performance_drop (metric) live metric worse than training by > threshold   labelled >= min_rows
error_rate (error_rate)   failed requests / requests > threshold           requests >= min_rows
latency_p99 (latency_p99) p99 latency in ms > threshold                    requests >= min_rows
volume_drop (rows)        1 - rows / previous rows > threshold             previous >= min_rows
missing_rate (feature)    share of missing values > threshold              rows >= min_rows
out_of_range_rate (f.)    share outside the training range > threshold     rows >= min_rows
unseen_rate (feature)     share of categories unseen in training > thr.    rows >= min_rows
========================  ===============================================  ==================

Traffic rules count requests, not rows: a model whose every request fails logs no rows, and
must still alert. A value equal to its threshold does not fire (floating-point noise such as
``0.90 - 0.85`` is treated as equal).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from mlkeel.monitoring.report import FeatureDrift, MonitoringReport
from mlkeel.settings import AlertRules

RULES: Final = (
    "dataset_drift",
    "feature_drift",
    "performance_drop",
    "error_rate",
    "latency_p99",
    "volume_drop",
    "missing_rate",
    "out_of_range_rate",
    "unseen_rate",
)
DRIFT_RULES: Final = frozenset({"dataset_drift", "feature_drift"})
PERFORMANCE_RULES: Final = frozenset({"performance_drop"})


@dataclass(frozen=True)
class AlertCandidate:
    """One firing condition of one model, before deduplication."""

    rule: str
    subject: str  # the feature or metric name, or "dataset"
    message: str  # one line naming the value and the threshold
    evidence: dict[str, Any]  # JSON-safe: plain numbers, strings, lists, dicts, None
    retrain: bool = False  # rules.retrain_on asks for retraining on this kind of alert

    @property
    def key(self) -> tuple[str, str]:
        return self.rule, self.subject


@dataclass(frozen=True)
class Alert:
    """A stored alert: one condition of one model from when it opened until it resolved."""

    id: int
    model: str
    rule: str
    subject: str
    status: Literal["open", "resolved"]
    message: str
    evidence: dict[str, Any]
    opened_at: float  # epoch seconds
    last_seen_at: float
    notified_at: float | None  # the last notification delivered to at least one sink
    resolved_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, times as ISO 8601 UTC: the webhook's ``alert`` and ``--json``."""
        return {
            "id": self.id,
            "model": self.model,
            "rule": self.rule,
            "subject": self.subject,
            "status": self.status,
            "message": self.message,
            "evidence": self.evidence,
            "opened_at": iso(self.opened_at),
            "last_seen_at": iso(self.last_seen_at),
            "notified_at": iso(self.notified_at),
            "resolved_at": iso(self.resolved_at),
        }


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


class Evaluation(list[AlertCandidate]):
    """The firing candidates, in rule order, and ``evaluated``: the rules that reached a
    verdict (fired or not). A rule evaluated that did not fire for a subject clears it."""

    def __init__(self, candidates: Iterable[AlertCandidate], evaluated: Iterable[str]) -> None:
        super().__init__(candidates)
        self.evaluated: frozenset[str] = frozenset(evaluated)


def evaluate(
    report: MonitoringReport,
    rules: AlertRules,
    metric: str,
    higher_is_better: bool,
    previous: MonitoringReport | None,
) -> Evaluation:
    """Every condition of `report` that `rules` alert on; see the module docstring."""
    context = _Context(report, rules, metric, higher_is_better, previous)
    candidates: list[AlertCandidate] = []
    evaluated: list[str] = []
    for rule, check in _CHECKS.items():
        fired = check(context)
        if fired is not None:
            evaluated.append(rule)
            candidates.extend(fired)
    return Evaluation(candidates, evaluated)


@dataclass(frozen=True)
class _Context:
    report: MonitoringReport
    rules: AlertRules
    metric: str
    higher_is_better: bool
    previous: MonitoringReport | None

    @property
    def enough_rows(self) -> bool:
        return self.report.rows >= self.rules.min_rows

    def candidate(self, rule: str, subject: str, text: str, **evidence: Any) -> AlertCandidate:
        wanted = {"drift": DRIFT_RULES, "performance": PERFORMANCE_RULES}
        retrain = any(rule in wanted[kind] for kind in self.rules.retrain_on)
        window = {"start": self.report.window[0], "end": self.report.window[1]}
        facts = {"version": self.report.version, "window": window, "rows": self.report.rows}
        return AlertCandidate(
            rule, subject, f"{self.report.model}: {text}", json_safe({**facts, **evidence}), retrain
        )


# Each check returns None when its rule is off or lacks evidence, else the candidates it fired.
Check = Callable[[_Context], list[AlertCandidate] | None]


def _dataset_drift(context: _Context) -> list[AlertCandidate] | None:
    report = context.report
    if not context.rules.dataset_drift or not context.enough_rows or not report.features:
        return None
    if not report.dataset_drift:
        return []
    drifted = [feature.name for feature in report.features if feature.drifted]
    shown = ", ".join(drifted[:5]) + (f" and {len(drifted) - 5} more" if len(drifted) > 5 else "")
    text = (
        f"dataset drifted (drift share {report.drift_share:.2f}: {len(drifted)} of "
        f"{len(report.features)} features, {shown})"
    )
    return [
        context.candidate(
            "dataset_drift",
            "dataset",
            text,
            drift_share=report.drift_share,
            drifted=drifted,
            features=len(report.features),
        )
    ]


def _feature_drift(context: _Context) -> list[AlertCandidate] | None:
    watched = set(context.rules.features)
    if not watched or not context.enough_rows:
        return None
    return [
        context.candidate(
            "feature_drift",
            feature.name,
            f"feature {feature.name} drifted ({feature.method} {feature.score:.2f} > "
            f"{feature.threshold:.2f})",
            **_drift_evidence(feature),
        )
        for feature in context.report.features
        if feature.name in watched and feature.drifted
    ]


def _drift_evidence(feature: FeatureDrift) -> dict[str, Any]:
    return {
        "feature": feature.name,
        "type": feature.type,
        "method": feature.method,
        "score": feature.score,
        "threshold": feature.threshold,
        "p_value": feature.p_value,
        "psi": feature.psi,
        "count": feature.count,
    }


def _performance_drop(context: _Context) -> list[AlertCandidate] | None:
    threshold = context.rules.performance_drop
    performance = context.report.performance
    metric = context.metric
    if (
        threshold is None
        or performance is None
        or performance.labelled < context.rules.min_rows
        or not context.enough_rows
        or metric not in performance.metrics
        or metric not in performance.baseline
    ):
        return None
    live, trained = performance.metrics[metric], performance.baseline[metric]
    drop = trained - live if context.higher_is_better else live - trained
    if not exceeds(drop, threshold):
        return []
    text = (
        f"{metric} fell to {live:.4g} from {trained:.4g} at training (worse by {drop:.4g} > "
        f"{threshold:.4g}; {performance.labelled} labelled rows)"
    )
    return [
        context.candidate(
            "performance_drop",
            metric,
            text,
            metric=metric,
            live=live,
            baseline=trained,
            drop=drop,
            threshold=threshold,
            labelled=performance.labelled,
            higher_is_better=context.higher_is_better,
        )
    ]


def _error_rate(context: _Context) -> list[AlertCandidate] | None:
    threshold, traffic = context.rules.error_rate, context.report.traffic
    if threshold is None or traffic is None or traffic.requests < context.rules.min_rows:
        return None
    rate = traffic.error_rate
    if not exceeds(rate, threshold):
        return []
    text = (
        f"error rate {rate:.1%} > {threshold:.1%} ({traffic.errors} of {traffic.requests} "
        "requests failed)"
    )
    return [
        context.candidate(
            "error_rate",
            "error_rate",
            text,
            error_rate=rate,
            threshold=threshold,
            errors=traffic.errors,
            requests=traffic.requests,
        )
    ]


def _latency_p99(context: _Context) -> list[AlertCandidate] | None:
    threshold, traffic = context.rules.latency_p99_ms, context.report.traffic
    if threshold is None or traffic is None or traffic.requests < context.rules.min_rows:
        return None
    p99 = traffic.latency_ms.get("p99")
    if p99 is None or not math.isfinite(p99):
        return None
    if not exceeds(p99, threshold):
        return []
    return [
        context.candidate(
            "latency_p99",
            "latency_p99",
            f"latency p99 {p99:.1f} ms > {threshold:.1f} ms",
            latency_ms=dict(traffic.latency_ms),
            threshold_ms=threshold,
            requests=traffic.requests,
        )
    ]


def _volume_drop(context: _Context) -> list[AlertCandidate] | None:
    threshold, previous = context.rules.volume_drop, context.previous
    if threshold is None or previous is None or previous.rows < context.rules.min_rows:
        return None
    rows = context.report.rows
    drop = 1.0 - rows / previous.rows
    if not exceeds(drop, threshold):
        return []
    text = (
        f"volume fell {drop:.0%} to {rows} rows from {previous.rows} in the previous window "
        f"(> {threshold:.0%})"
    )
    return [
        context.candidate(
            "volume_drop",
            "rows",
            text,
            drop=drop,
            threshold=threshold,
            previous_rows=previous.rows,
            previous_window={"start": previous.window[0], "end": previous.window[1]},
        )
    ]


def _quality(
    rule: str,
    threshold_of: Callable[[AlertRules], float | None],
    rate_of: Callable[[FeatureDrift], float],
    what: str,
) -> Check:
    """A per-feature data-quality rule: the share of `what` among each feature's values."""

    def check(context: _Context) -> list[AlertCandidate] | None:
        threshold = threshold_of(context.rules)
        if threshold is None or not context.enough_rows:
            return None
        fired = []
        for feature in context.report.features:
            rate = rate_of(feature)
            if exceeds(rate, threshold):
                text = f"feature {feature.name} {what} in {rate:.1%} of rows (> {threshold:.1%})"
                fired.append(
                    context.candidate(
                        rule,
                        feature.name,
                        text,
                        feature=feature.name,
                        rate=rate,
                        threshold=threshold,
                        count=feature.count,
                    )
                )
        return fired

    return check


_CHECKS: Final[dict[str, Check]] = {
    "dataset_drift": _dataset_drift,
    "feature_drift": _feature_drift,
    "performance_drop": _performance_drop,
    "error_rate": _error_rate,
    "latency_p99": _latency_p99,
    "volume_drop": _volume_drop,
    "missing_rate": _quality(
        "missing_rate", lambda r: r.missing_rate, lambda f: f.missing_rate, "missing"
    ),
    "out_of_range_rate": _quality(
        "out_of_range_rate",
        lambda r: r.out_of_range_rate,
        lambda f: f.out_of_range_rate,
        "out of the training range",
    ),
    "unseen_rate": _quality(
        "unseen_rate",
        lambda r: r.unseen_rate,
        lambda f: f.unseen_rate,
        "has categories unseen in training",
    ),
}


def exceeds(value: float, threshold: float) -> bool:
    """`value` is over `threshold` by more than floating-point noise."""
    return value > threshold and not math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12)


def json_safe(value: Any) -> Any:
    """`value` with numpy scalars made plain and NaN/inf made None (PostgreSQL's JSON
    refuses them), tuples made lists; anything else unknown becomes its ``str``."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return json_safe(item())
    return str(value)
