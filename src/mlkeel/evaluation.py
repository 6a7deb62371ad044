"""Scoring a model on a labelled test set with every metric that fits its task."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlkeel.metrics import Task

if TYPE_CHECKING:
    import pandas as pd


def evaluate(model: Any, features: pd.DataFrame, labels: pd.Series, task: Task) -> dict[str, float]:
    """The task's metrics for `model` on (`features`, `labels`); probability metrics only when
    the model has ``predict_proba``."""
    from sklearn import metrics

    predictions = np.asarray(model.predict(features))
    if task == "regression":
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(labels, predictions))),
            "mae": float(metrics.mean_absolute_error(labels, predictions)),
            "r2": float(metrics.r2_score(labels, predictions)),
        }
    classes = np.unique(labels)
    binary = len(classes) <= 2
    scores = {
        "accuracy": float(metrics.accuracy_score(labels, predictions)),
        "f1": float(
            metrics.f1_score(
                labels,
                predictions,
                average="binary" if binary else "macro",
                pos_label=classes[-1] if binary else 1,
            )
        ),
    }
    if hasattr(model, "predict_proba"):
        probabilities = np.asarray(model.predict_proba(features))
        model_classes = list(getattr(model, "classes_", classes))
        scores["log_loss"] = float(metrics.log_loss(labels, probabilities, labels=model_classes))
        if len(classes) > 1:
            scores["roc_auc"] = float(
                metrics.roc_auc_score(labels, probabilities[:, -1])
                if binary
                else metrics.roc_auc_score(
                    labels, probabilities, multi_class="ovr", labels=model_classes
                )
            )
    return scores


def live_metrics(
    task: Task, predictions: list[Any], probabilities: list[dict[str, float] | None],
    labels: list[Any],
) -> dict[str, float]:  # fmt: skip
    """Metrics of logged predictions against labels that arrived later (the live subset of
    the training metrics: accuracy, f1, roc_auc / rmse, mae)."""
    from sklearn import metrics

    if not labels:
        return {}
    if task == "regression":
        truth, guess = np.asarray(labels, dtype=float), np.asarray(predictions, dtype=float)
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(truth, guess))),
            "mae": float(metrics.mean_absolute_error(truth, guess)),
        }
    truth_text = [str(label) for label in labels]
    guess_text = [str(value) for value in predictions]
    classes = sorted(set(truth_text) | set(guess_text))
    binary = len(classes) <= 2
    scores = {
        "accuracy": float(metrics.accuracy_score(truth_text, guess_text)),
        "f1": float(
            metrics.f1_score(
                truth_text, guess_text, average="binary" if binary else "macro",
                pos_label=classes[-1] if binary else 1,
            )
        ),
    }  # fmt: skip
    positive = classes[-1]
    if binary and len(set(truth_text)) == 2 and all(p is not None for p in probabilities):
        score = [float((p or {}).get(positive, 0.0)) for p in probabilities]
        scores["roc_auc"] = float(metrics.roc_auc_score([t == positive for t in truth_text], score))
    return scores
