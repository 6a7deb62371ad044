"""The evaluation metrics mlkeel knows: which task each fits and which way is better."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    task: Task
    higher_is_better: bool


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("accuracy", "classification", True),
        MetricSpec("f1", "classification", True),
        MetricSpec("roc_auc", "classification", True),
        MetricSpec("log_loss", "classification", False),
        MetricSpec("rmse", "regression", False),
        MetricSpec("mae", "regression", False),
        MetricSpec("r2", "regression", True),
    )
}


def metric_names(task: Task) -> list[str]:
    """The metrics computed for `task`, in report order."""
    return [spec.name for spec in METRICS.values() if spec.task == task]
