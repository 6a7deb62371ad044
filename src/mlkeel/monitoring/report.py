"""What one monitoring run found: the stored, printed and ``--json`` shape.

The ``--json`` keys (``model``, ``version``, ``window``, ``rows``, ``dataset_drift``,
``drift_share``, ``features``, ``prediction_drift``, ``performance``, ``alerts``) are a
contract with users' scripts; add keys, never rename them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

REPORT_VERSION = 1


@dataclass(frozen=True)
class FeatureDrift:
    """One feature (or the model's output) against its training baseline."""

    name: str
    type: Literal["numeric", "categorical"]
    method: str  # the effect size that decided: "wasserstein" or "jensenshannon"
    score: float
    threshold: float
    drifted: bool
    p_value: float | None = None  # the significance guard: KS or chi-square
    psi: float | None = None
    count: int = 0
    missing_rate: float = 0.0
    out_of_range_rate: float = 0.0  # numeric: outside the training range
    unseen_rate: float = 0.0  # categorical: categories never seen in training
    stats: dict[str, Any] = field(default_factory=dict)  # mean, std, min, max, quantiles...


@dataclass(frozen=True)
class Performance:
    """Live metrics on the labelled rows of the window, next to the training test metrics."""

    labelled: int
    metrics: dict[str, float]
    baseline: dict[str, float]


@dataclass(frozen=True)
class Traffic:
    requests: int
    errors: int
    latency_ms: dict[str, float]  # p50, p95, p99

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class MonitoringReport:
    model: str
    version: int | None
    window: tuple[str, str]  # ISO start, end (end exclusive)
    rows: int
    dataset_drift: bool
    drift_share: float
    features: list[FeatureDrift]
    prediction_drift: FeatureDrift | None
    performance: Performance | None
    traffic: Traffic | None
    alerts: list[str] = field(default_factory=list)
    exact: bool = False
    report_version: int = REPORT_VERSION

    @property
    def status(self) -> Literal["healthy", "alerting"]:
        return "alerting" if self.alerts else "healthy"

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["window"] = {"start": self.window[0], "end": self.window[1]}
        if self.traffic is not None:
            document["traffic"]["error_rate"] = self.traffic.error_rate
        document["status"] = self.status
        return document

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitoringReport:
        """A stored report (``to_dict`` output) back; refuses report versions it cannot read."""
        version = data.get("report_version")
        if version != REPORT_VERSION:
            raise ValueError(
                f"monitoring report version {version!r} is not supported; this mlkeel reads "
                f"version {REPORT_VERSION}"
            )
        prediction = data.get("prediction_drift")
        performance = data.get("performance")
        traffic = data.get("traffic")
        return cls(
            model=data["model"],
            version=data["version"],
            window=(data["window"]["start"], data["window"]["end"]),
            rows=data["rows"],
            dataset_drift=data["dataset_drift"],
            drift_share=data["drift_share"],
            features=[FeatureDrift(**feature) for feature in data["features"]],
            prediction_drift=FeatureDrift(**prediction) if prediction else None,
            performance=Performance(**performance) if performance else None,
            traffic=Traffic(traffic["requests"], traffic["errors"], traffic["latency_ms"])
            if traffic
            else None,
            alerts=list(data.get("alerts", [])),
            exact=bool(data.get("exact", False)),
        )
