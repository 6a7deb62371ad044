from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from mlkeel.monitoring.alerts import RULES, AlertCandidate, evaluate, json_safe
from mlkeel.monitoring.report import FeatureDrift, MonitoringReport, Performance, Traffic
from mlkeel.settings import AlertRules

MODEL = "breast_cancer"
OFF: dict[str, Any] = {
    "dataset_drift": False,
    "performance_drop": None,
    "error_rate": None,
    "latency_p99_ms": None,
    "volume_drop": None,
    "missing_rate": None,
    "out_of_range_rate": None,
    "unseen_rate": None,
}


def only(**rules: Any) -> AlertRules:
    """Every rule off except those given."""
    return AlertRules(**{**OFF, **rules})


def feature(name: str = "mean_radius", **fields: Any) -> FeatureDrift:
    values: dict[str, Any] = {
        "type": "numeric", "method": "wasserstein", "score": 0.02, "threshold": 0.1,
        "drifted": False, "count": 1000,
    }  # fmt: skip
    return FeatureDrift(name=name, **{**values, **fields})


def report(rows: int = 1000, **fields: Any) -> MonitoringReport:
    values: dict[str, Any] = {
        "model": MODEL,
        "version": 3,
        "window": ("2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"),
        "rows": rows,
        "dataset_drift": False,
        "drift_share": 0.0,
        "features": [feature()],
        "prediction_drift": None,
        "performance": None,
        "traffic": None,
    }
    return MonitoringReport(**{**values, **fields})


def run(
    found: MonitoringReport,
    rules: AlertRules,
    *,
    metric: str = "accuracy",
    higher_is_better: bool = True,
    previous: MonitoringReport | None = None,
) -> list[AlertCandidate]:
    return evaluate(found, rules, metric, higher_is_better, previous)


def keys(candidates: list[AlertCandidate]) -> list[tuple[str, str]]:
    return [c.key for c in candidates]


def test_rules_evaluated_on_a_quiet_report_fire_nothing_and_say_so() -> None:
    found = report(traffic=Traffic(1000, 0, {"p99": 10.0}))
    rules = AlertRules(features=["mean_radius"], latency_p99_ms=50, missing_rate=0.1)

    candidates = evaluate(found, rules, "accuracy", True, None)

    assert candidates == []
    assert candidates.evaluated == {
        "dataset_drift", "feature_drift", "error_rate", "latency_p99", "missing_rate",
    }  # fmt: skip


def test_dataset_drift_fires_with_the_drifted_features_named() -> None:
    features = [feature("a", drifted=True), feature("b", drifted=True), feature("c")]
    found = report(dataset_drift=True, drift_share=2 / 3, features=features)

    (candidate,) = run(found, only(dataset_drift=True))

    assert candidate.key == ("dataset_drift", "dataset")
    assert candidate.message == (
        "breast_cancer: dataset drifted (drift share 0.67: 2 of 3 features, a, b)"
    )
    assert candidate.evidence["drifted"] == ["a", "b"]
    assert candidate.evidence["version"] == 3


def test_dataset_drift_is_quiet_when_the_report_says_no_drift() -> None:
    found = report(dataset_drift=False, drift_share=0.2, features=[feature(drifted=True)])
    assert run(found, only(dataset_drift=True)) == []


def test_feature_drift_fires_only_for_watched_features() -> None:
    features = [
        feature("mean_radius", score=0.31, drifted=True),
        feature("mean_texture", score=0.5, drifted=True),
        feature("mean_area"),
    ]
    candidates = run(report(features=features), only(features=["mean_radius", "mean_area"]))

    assert keys(candidates) == [("feature_drift", "mean_radius")]
    assert candidates[0].message == (
        "breast_cancer: feature mean_radius drifted (wasserstein 0.31 > 0.10)"
    )
    assert candidates[0].evidence["score"] == 0.31


def test_feature_drift_without_watched_features_is_not_evaluated() -> None:
    candidates = evaluate(report(features=[feature(drifted=True)]), only(), "accuracy", True, None)
    assert "feature_drift" not in candidates.evaluated


@pytest.mark.parametrize(
    ("metric", "higher_is_better", "live", "trained", "fires"),
    [
        ("accuracy", True, 0.875, 0.9375, True),  # worse by 0.0625 > 0.05
        ("accuracy", True, 0.90, 0.95, False),  # worse by exactly 0.05
        ("accuracy", True, 0.99, 0.90, False),  # better
        ("rmse", False, 1.25, 1.1875, True),  # lower is better: higher by 0.0625
        ("rmse", False, 1.20, 1.15, False),  # higher by exactly 0.05
        ("rmse", False, 0.5, 1.25, False),  # much better
    ],
)
def test_performance_drop_is_direction_aware_and_fires_only_over_the_threshold(
    metric: str, higher_is_better: bool, live: float, trained: float, fires: bool
) -> None:
    performance = Performance(500, {metric: live}, {metric: trained})

    candidates = run(
        report(performance=performance), only(performance_drop=0.05),
        metric=metric, higher_is_better=higher_is_better,
    )  # fmt: skip

    assert keys(candidates) == ([("performance_drop", metric)] if fires else [])
    if fires:
        assert f"{metric} fell to" in candidates[0].message
        assert "> 0.05" in candidates[0].message
        assert candidates[0].evidence["drop"] == pytest.approx(0.0625)


def test_performance_needs_min_rows_labelled() -> None:
    rules = only(performance_drop=0.05, min_rows=100)
    performance = Performance(99, {"accuracy": 0.5}, {"accuracy": 0.95})

    candidates = evaluate(report(performance=performance), rules, "accuracy", True, None)

    assert candidates == []
    assert "performance_drop" not in candidates.evaluated
    labelled = replace(performance, labelled=100)
    assert keys(run(report(performance=labelled), rules)) == [("performance_drop", "accuracy")]


def test_performance_without_the_metric_is_not_evaluated() -> None:
    performance = Performance(500, {"f1": 0.1}, {"f1": 0.9})
    candidates = evaluate(
        report(performance=performance), only(performance_drop=0.05), "accuracy", True, None
    )
    assert candidates == []
    assert candidates.evaluated == frozenset()


@pytest.mark.parametrize(("errors", "fires"), [(51, True), (50, False), (0, False)])
def test_error_rate_fires_only_over_the_threshold(errors: int, fires: bool) -> None:
    found = report(traffic=Traffic(1000, errors, {"p99": 5.0}))

    candidates = run(found, only(error_rate=0.05))

    assert keys(candidates) == ([("error_rate", "error_rate")] if fires else [])
    if fires:
        assert candidates[0].message == (
            "breast_cancer: error rate 5.1% > 5.0% (51 of 1000 requests failed)"
        )


def test_error_rate_judges_requests_even_when_every_request_failed() -> None:
    found = report(rows=0, traffic=Traffic(200, 200, {}))
    assert keys(run(found, only(error_rate=0.05))) == [("error_rate", "error_rate")]


def test_error_rate_needs_min_rows_requests() -> None:
    found = report(traffic=Traffic(99, 99, {}))
    candidates = evaluate(found, only(error_rate=0.05), "accuracy", True, None)
    assert candidates == []
    assert candidates.evaluated == frozenset()


@pytest.mark.parametrize(("p99", "fires"), [(250.5, True), (250.0, False), (10.0, False)])
def test_latency_p99_fires_only_over_the_threshold(p99: float, fires: bool) -> None:
    found = report(traffic=Traffic(1000, 0, {"p50": 2.0, "p95": 8.0, "p99": p99}))

    candidates = run(found, only(latency_p99_ms=250))

    assert keys(candidates) == ([("latency_p99", "latency_p99")] if fires else [])
    if fires:
        assert candidates[0].message == "breast_cancer: latency p99 250.5 ms > 250.0 ms"


@pytest.mark.parametrize(("rows", "fires"), [(490, True), (500, False), (2000, False)])
def test_volume_drop_fires_only_over_the_threshold(rows: int, fires: bool) -> None:
    candidates = run(report(rows=rows), only(volume_drop=0.5), previous=report(rows=1000))

    assert keys(candidates) == ([("volume_drop", "rows")] if fires else [])
    if fires:
        assert candidates[0].message == (
            "breast_cancer: volume fell 51% to 490 rows from 1000 in the previous window (> 50%)"
        )


def test_volume_drop_judges_a_window_below_min_rows_but_needs_a_previous_one() -> None:
    rules = only(volume_drop=0.5, dataset_drift=True, missing_rate=0.0, min_rows=100)
    found = report(rows=0, features=[feature(missing_rate=1.0)], dataset_drift=True)

    quiet = evaluate(found, rules, "accuracy", True, report(rows=99))
    alerting = evaluate(found, rules, "accuracy", True, report(rows=1000))

    assert quiet == []
    assert quiet.evaluated == frozenset()
    assert keys(alerting) == [("volume_drop", "rows")]
    assert alerting.evaluated == {"volume_drop"}


@pytest.mark.parametrize(
    ("rule", "setting", "field"),
    [
        ("missing_rate", "missing_rate", "missing_rate"),
        ("out_of_range_rate", "out_of_range_rate", "out_of_range_rate"),
        ("unseen_rate", "unseen_rate", "unseen_rate"),
    ],
)
def test_quality_rates_fire_per_feature_only_over_the_threshold(
    rule: str, setting: str, field: str
) -> None:
    features = [feature("over", **{field: 0.125}), feature("at", **{field: 0.1}), feature("low")]

    candidates = run(report(features=features), only(**{setting: 0.1}))

    assert keys(candidates) == [(rule, "over")]
    assert candidates[0].message.startswith("breast_cancer: feature over ")
    assert candidates[0].message.endswith("in 12.5% of rows (> 10.0%)")
    assert candidates[0].evidence["rate"] == 0.125


def test_nothing_but_volume_is_judged_below_min_rows() -> None:
    features = [feature(drifted=True, missing_rate=0.9, out_of_range_rate=0.9, unseen_rate=0.9)]
    found = report(
        rows=99, dataset_drift=True, drift_share=1.0, features=features,
        performance=Performance(99, {"accuracy": 0.1}, {"accuracy": 0.9}),
        traffic=Traffic(99, 50, {"p99": 9999.0}),
    )  # fmt: skip
    rules = AlertRules(
        features=["mean_radius"], latency_p99_ms=1, volume_drop=0.1, missing_rate=0.1,
        out_of_range_rate=0.1, unseen_rate=0.1, min_rows=100,
    )  # fmt: skip

    candidates = evaluate(found, rules, "accuracy", True, report(rows=1000))

    assert keys(candidates) == [("volume_drop", "rows")]
    assert candidates.evaluated == {"volume_drop"}


def test_every_rule_fires_with_json_safe_evidence_and_retrain_on_request() -> None:
    features = [
        feature("mean_radius", drifted=True, score=0.31, p_value=float("nan"), missing_rate=0.5),
        feature("colour", type="categorical", method="jensenshannon", unseen_rate=0.5),
        feature("mean_area", out_of_range_rate=0.5),
    ]  # fmt: skip
    found = report(
        dataset_drift=True, drift_share=0.34, features=features,
        performance=Performance(500, {"accuracy": 0.5}, {"accuracy": 0.9}),
        traffic=Traffic(1000, 500, {"p99": 900.0}),
    )  # fmt: skip
    rules = AlertRules(
        features=["mean_radius"], latency_p99_ms=100, volume_drop=0.1, missing_rate=0.1,
        out_of_range_rate=0.1, unseen_rate=0.1, retrain_on=["drift"],
    )  # fmt: skip

    candidates = evaluate(found, rules, "accuracy", True, report(rows=5000))

    assert sorted({c.rule for c in candidates}) == sorted(RULES)
    assert candidates.evaluated == set(RULES)
    for candidate in candidates:
        json.dumps(candidate.evidence, allow_nan=False)
        assert candidate.message.startswith("breast_cancer: ")
        assert "\n" not in candidate.message
        assert candidate.retrain == (candidate.rule in {"dataset_drift", "feature_drift"})
    drifted = next(c for c in candidates if c.rule == "feature_drift")
    assert drifted.evidence["p_value"] is None


def test_retrain_on_performance_marks_only_performance_drops() -> None:
    found = report(
        dataset_drift=True, drift_share=1.0, features=[feature(drifted=True)],
        performance=Performance(500, {"accuracy": 0.5}, {"accuracy": 0.9}),
    )  # fmt: skip
    rules = only(dataset_drift=True, performance_drop=0.05, retrain_on=["performance"])

    retrain = {c.rule: c.retrain for c in run(found, rules)}

    assert retrain == {"dataset_drift": False, "performance_drop": True}


def test_json_safe_makes_numpy_and_non_finite_values_plain() -> None:
    import numpy as np

    value = {"a": np.float64(0.5), "b": np.int64(3), "c": (1, float("inf")), "d": np.bool_(True)}

    assert json_safe(value) == {"a": 0.5, "b": 3, "c": [1, None], "d": True}
    assert type(json_safe(np.float64(0.5))) is float
