"""The deployment gate: may this challenger replace the champion?

Four kinds of check, each a `Check` with a readable verdict:

- thresholds: every ``retrain.min_metrics`` value holds on the test set (and golden set), a
  floor where higher is better, a ceiling for rmse, mae and log_loss;
- no regression: the primary metric is worse than the champion's, on the same rows, by at
  most ``max_regression`` × |champion's value| (direction-aware);
- slices: the same no-regression per slice with at least ``min_slice_rows`` rows;
- smoke: the version loads from the registry and predicts its schema's example rows.

A comparison that cannot be made (no champion yet, or a champion that cannot score these
rows) is skipped and says why; a challenger that cannot be scored fails.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlkeel.metrics import METRICS
from mlkeel.retraining.evaluate import Evaluation, Scored
from mlkeel.schema import InputSchema
from mlkeel.settings import ModelConfig

_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Check:
    """One gate check: its name, verdict and the sentence that explains it."""

    name: str
    passed: bool
    detail: str
    skipped: bool = False


@dataclass(frozen=True)
class GateReport:
    """All checks of one gate; it passes when every check does."""

    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def summary(self) -> str:
        """The failed checks in one line, for error messages."""
        return "; ".join(check.detail for check in self.failures) or "every check passed"

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [asdict(check) for check in self.checks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        return cls(tuple(Check(**check) for check in data.get("checks", [])))


def judge(config: ModelConfig, evaluation: Evaluation) -> list[Check]:
    """The metric checks (everything but the smoke test) of `evaluation`."""
    checks = [_scorable("test set", evaluation.challenger)]
    sets: list[tuple[str, Scored | None, Scored | None, int | None]] = [
        ("test set", evaluation.challenger, evaluation.champion, evaluation.test_rows)
    ]
    if evaluation.golden_challenger is not None:
        checks.append(_scorable("golden set", evaluation.golden_challenger))
        sets.append(
            ("golden set", evaluation.golden_challenger, evaluation.golden_champion,
             evaluation.golden_rows)
        )  # fmt: skip
    for where, challenger, champion, rows in sets:
        if challenger is None or challenger.problem is not None:
            continue
        for metric, limit in config.retrain.min_metrics.items():
            checks.append(threshold(metric, challenger.metrics.get(metric), limit, where))
        checks.append(
            no_regression(config, challenger, champion, evaluation.champion_version, where, rows)
        )
    checks.extend(slice_checks(config, evaluation))
    return checks


def _scorable(where: str, scored: Scored) -> Check:
    name = f"scored ({where})"
    if scored.problem is not None:
        return Check(name, False, f"the challenger could not be scored on the {where}: "
                     f"{scored.problem}")  # fmt: skip
    return Check(name, True, f"the challenger was scored on the {where}")


def threshold(metric: str, value: float | None, limit: float, where: str) -> Check:
    name = f"min {metric} ({where})"
    if value is None:
        return Check(name, False, f"{metric} was not computed for this model on the {where}")
    if METRICS[metric].higher_is_better:
        ok, relation = value >= limit - _TOLERANCE, "at least"
    else:
        ok, relation = value <= limit + _TOLERANCE, "at most"
    verdict = "meets" if ok else "fails"
    return Check(
        name, ok, f"{metric} {value:.4f} on the {where} {verdict} the limit ({relation} {limit})"
    )


def no_regression(
    config: ModelConfig,
    challenger: Scored,
    champion: Scored | None,
    champion_version: int | None,
    where: str,
    rows: int | None,
) -> Check:
    metric = config.metric
    name = f"no regression {metric} ({where})"
    if champion is None:
        return Check(name, True, "no champion yet: nothing to compare with", skipped=True)
    if champion.problem is not None or metric not in champion.metrics:
        why = champion.problem or f"{metric} was not computed for it"
        return Check(name, True, f"champion v{champion_version} not compared: {why}", skipped=True)
    new, old = challenger.metrics.get(metric), champion.metrics[metric]
    if new is None:
        return Check(name, False, f"{metric} was not computed for the challenger")
    on = f"on the same {rows} {where} rows"
    return _compare(name, config, new, old, f"champion v{champion_version}'s", on)


def slice_checks(config: ModelConfig, evaluation: Evaluation) -> list[Check]:
    checks: list[Check] = []
    for found in evaluation.slices:
        name = f"slice {found.column}={found.value}"
        metric = config.metric
        if found.rows < config.retrain.min_slice_rows:
            detail = f"{name}: {found.rows} rows (< {config.retrain.min_slice_rows}): not gated"
            checks.append(Check(name, True, detail, skipped=True))
        elif found.champion is None:
            checks.append(Check(name, True, f"{name}: no champion {metric} to compare", True))
        elif found.challenger is None:
            checks.append(Check(name, False, f"{name}: the challenger's {metric} failed"))
        else:
            where = f"in slice {found.column}={found.value} ({found.rows} rows)"
            checks.append(
                _compare(name, config, found.challenger, found.champion, "the champion's", where)
            )
    return checks


def smoke_test(model: Any, schema: InputSchema, version: int) -> Check:
    """`model` (as loaded from the registry) predicts the schema's example rows."""
    name = "smoke test"
    if not schema.examples:
        return Check(name, False, f"version {version} has no example rows to predict")
    frame = pd.DataFrame(schema.examples, columns=schema.names)
    # As the server calls it: a frame for a model fitted on one (it has feature names).
    rows = frame if hasattr(model, "feature_names_in_") else frame.to_numpy()
    try:
        predictions = np.asarray(model.predict(rows))
        if hasattr(model, "predict_proba"):
            np.asarray(model.predict_proba(rows))
    except Exception as exc:  # the user's model: any failure blocks it
        return Check(
            name, False, f"version {version} loaded but failed to predict its example rows: "
            f"{exc.__class__.__name__}: {exc}",
        )  # fmt: skip
    if len(predictions) != len(frame):
        return Check(
            name, False,
            f"version {version} returned {len(predictions)} predictions for {len(frame)} rows",
        )  # fmt: skip
    if predictions.dtype.kind in "fc" and not np.isfinite(predictions).all():
        return Check(name, False, f"version {version} predicted NaN or infinity")
    return Check(
        name, True, f"version {version} loaded from the registry and predicted {len(frame)} rows"
    )


def failed_load(version: int, exc: BaseException) -> Check:
    return Check(
        "smoke test",
        False,
        f"version {version} failed to load from the registry: {exc.__class__.__name__}: {exc}",
    )


def _compare(
    name: str, config: ModelConfig, new: float, old: float, whose: str, where: str
) -> Check:
    metric = config.metric
    worse = (old - new) if config.higher_is_better else (new - old)
    allowed = config.retrain.max_regression * abs(old)
    ok = worse <= allowed + _TOLERANCE
    change = f"{worse:.4f} worse" if worse > 0 else f"{-worse:.4f} better"
    if math.isclose(worse, 0.0, abs_tol=_TOLERANCE):
        change = "equal"
    detail = (
        f"{metric} {new:.4f} vs {whose} {old:.4f} {where}: {change} (allowed: {allowed:.4f} worse)"
    )
    return Check(name, ok, detail)


def report(checks: Sequence[Check]) -> GateReport:
    return GateReport(tuple(checks))
