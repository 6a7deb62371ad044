"""The gate's verdicts: thresholds and no-regression are direction-aware, slices too small to
judge are skipped, a champion that cannot be compared is skipped with the reason."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from mlkeel.retraining.evaluate import Evaluation, Scored, SliceScore
from mlkeel.retraining.gates import GateReport, judge, smoke_test
from mlkeel.schema import FeatureSpec, InputSchema, TargetSpec
from mlkeel.settings import ModelConfig


def config(task: str = "classification", metric: str = "roc_auc", **retrain: Any) -> ModelConfig:
    return ModelConfig(
        name="m", train="train:train", data="d.csv", target="y", task=task,  # type: ignore[arg-type]
        metric=metric, retrain=retrain,
    )  # fmt: skip


def evaluation(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    metric: str = "roc_auc",
    higher: bool = True,
    slices: list[SliceScore] | None = None,
) -> Evaluation:
    return Evaluation(
        metric=metric,
        higher_is_better=higher,
        test_rows=100,
        challenger=Scored(challenger),
        champion_version=None if champion is None else 1,
        champion=None if champion is None else Scored(champion),
        slices=slices or [],
    )


def verdicts(model: ModelConfig, found: Evaluation) -> dict[str, bool]:
    return {check.name: check.passed for check in judge(model, found)}


def test_gate_blocks_model_worse_than_champion_beyond_the_margin() -> None:
    checks = verdicts(config(), evaluation({"roc_auc": 0.90}, {"roc_auc": 0.99}))
    assert checks["no regression roc_auc (test set)"] is False


def test_gate_allows_a_drop_within_one_percent_of_the_champion() -> None:
    checks = verdicts(config(), evaluation({"roc_auc": 0.985}, {"roc_auc": 0.99}))
    assert checks["no regression roc_auc (test set)"] is True


def test_no_regression_is_direction_aware_for_error_metrics() -> None:
    model = config("regression", "rmse")
    worse = evaluation({"rmse": 56.0}, {"rmse": 50.0}, "rmse", higher=False)
    better = evaluation({"rmse": 40.0}, {"rmse": 50.0}, "rmse", higher=False)
    within = evaluation({"rmse": 50.4}, {"rmse": 50.0}, "rmse", higher=False)  # 0.8% worse
    assert verdicts(model, worse)["no regression rmse (test set)"] is False
    assert verdicts(model, better)["no regression rmse (test set)"] is True
    assert verdicts(model, within)["no regression rmse (test set)"] is True


@pytest.mark.parametrize(
    ("metric", "value", "limit", "passed"),
    [("roc_auc", 0.84, 0.85, False), ("roc_auc", 0.85, 0.85, True),
     ("log_loss", 0.30, 0.25, False), ("log_loss", 0.20, 0.25, True)],
)  # fmt: skip
def test_min_metrics_is_a_floor_or_a_ceiling_by_metric(
    metric: str, value: float, limit: float, passed: bool
) -> None:
    model = config(min_metrics={metric: limit})
    found = evaluation({"roc_auc": 0.9, "log_loss": 0.3, metric: value}, None)
    assert verdicts(model, found)[f"min {metric} (test set)"] is passed


def test_first_version_has_no_champion_to_compare_with() -> None:
    checks = judge(config(), evaluation({"roc_auc": 0.9}, None))
    regression = next(c for c in checks if c.name.startswith("no regression"))
    assert regression.passed
    assert regression.skipped
    assert "no champion yet" in regression.detail


def test_champion_that_cannot_score_is_skipped_with_its_reason() -> None:
    problem = Scored(problem="the rows lack its feature(s) ['x']")
    found = replace(evaluation({"roc_auc": 0.9}, None), champion_version=3, champion=problem)
    regression = next(c for c in judge(config(), found) if c.name.startswith("no regression"))
    assert regression.skipped
    assert "champion v3 not compared: the rows lack its feature(s)" in regression.detail


def test_challenger_that_cannot_be_scored_fails() -> None:
    found = Evaluation("roc_auc", True, 100, Scored(problem="predicting failed: ValueError: x"))
    report = GateReport(tuple(judge(config(), found)))
    assert not report.passed
    assert "could not be scored on the test set" in report.summary()


def test_slices_below_min_rows_are_reported_not_gated() -> None:
    slices = [
        SliceScore("region", "north", 10, 0.5, 0.99),
        SliceScore("region", "south", 50, 0.80, 0.95),
        SliceScore("region", "east", 50, 0.95, 0.95),
    ]
    found = evaluation({"roc_auc": 0.99}, {"roc_auc": 0.99}, slices=slices)
    checks = {c.name: c for c in judge(config(slices=["region"]), found)}
    assert checks["slice region=north"].skipped
    assert checks["slice region=south"].passed is False
    assert checks["slice region=east"].passed is True


def test_report_round_trips_through_json_shape() -> None:
    report = GateReport(tuple(judge(config(), evaluation({"roc_auc": 0.9}, {"roc_auc": 0.99}))))
    again = GateReport.from_dict(report.to_dict())
    assert again == report
    assert again.to_dict()["passed"] is False


def schema() -> InputSchema:
    features = [
        FeatureSpec("a", "numeric", "float", False),
        FeatureSpec("b", "numeric", "float", False),
    ]
    return InputSchema(features, TargetSpec("y", "regression"), [{"a": 1.0, "b": 2.0}] * 3)


class Model:
    def __init__(self, output: Any) -> None:
        self.output = output

    def predict(self, rows: Any) -> Any:
        if isinstance(self.output, Exception):
            raise self.output
        return np.full(len(rows), self.output)


def test_smoke_test_passes_a_model_that_predicts_the_examples() -> None:
    check = smoke_test(Model(1.0), schema(), 4)
    assert check.passed
    assert "version 4 loaded from the registry and predicted 3 rows" in check.detail


@pytest.mark.parametrize(
    ("output", "message"),
    [(RuntimeError("kaput"), "failed to predict its example rows: RuntimeError: kaput"),
     (np.nan, "predicted NaN or infinity")],
)  # fmt: skip
def test_smoke_test_blocks_a_model_that_fails_on_the_examples(output: Any, message: str) -> None:
    check = smoke_test(Model(output), schema(), 4)
    assert not check.passed
    assert message in check.detail
