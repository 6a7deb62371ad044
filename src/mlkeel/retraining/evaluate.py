"""Challenger and champion scored on the same rows: the test set, the golden set, each slice.

A model that cannot be scored is not an exception here but a recorded problem: the gate
blocks a challenger that cannot be scored, and skips (saying why) a comparison with a
champion that cannot be, e.g. because the features changed since it was trained.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from mlkeel.errors import ConfigError
from mlkeel.evaluation import evaluate
from mlkeel.settings import ModelConfig

# A numeric slice column with more distinct values than this is cut into quartiles.
MAX_SLICE_VALUES = 10


@dataclass(frozen=True)
class Scored:
    """One model's metrics on one labelled set, or why there are none."""

    metrics: dict[str, float] = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True)
class SliceScore:
    """The primary metric of both models on the test rows where `column` is `value`."""

    column: str
    value: str
    rows: int
    challenger: float | None
    champion: float | None


@dataclass(frozen=True)
class Evaluation:
    """Everything the gate judges."""

    metric: str
    higher_is_better: bool
    test_rows: int
    challenger: Scored
    champion_version: int | None = None
    champion: Scored | None = None
    golden_rows: int | None = None
    golden_challenger: Scored | None = None
    golden_champion: Scored | None = None
    slices: list[SliceScore] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Contender:
    """A model to score and the feature columns it takes, in order; `problem` when the model
    could not even be loaded (every score is then that problem)."""

    model: Any
    features: Sequence[str]
    version: int | None = None
    problem: str | None = None


def compare(
    config: ModelConfig,
    challenger: Contender,
    champion: Contender | None,
    test: pd.DataFrame,
    golden: pd.DataFrame | None = None,
) -> Evaluation:
    """Score `challenger` (and `champion`, when there is one) on `test`, `golden`, slices."""
    challenger_test = score(config, challenger, test)
    champion_test = None if champion is None else score(config, champion, test)
    golden_challenger = golden_champion = None
    if golden is not None:
        golden_challenger = score(config, challenger, golden)
        golden_champion = None if champion is None else score(config, champion, golden)
    return Evaluation(
        metric=config.metric,
        higher_is_better=config.higher_is_better,
        test_rows=len(test),
        challenger=challenger_test,
        champion_version=None if champion is None else champion.version,
        champion=champion_test,
        golden_rows=None if golden is None else len(golden),
        golden_challenger=golden_challenger,
        golden_champion=golden_champion,
        slices=slice_scores(config, challenger, champion, test),
    )


def score(config: ModelConfig, contender: Contender, frame: pd.DataFrame) -> Scored:
    """`contender`'s metrics on `frame`, or the reason it could not be scored there."""
    if contender.problem is not None:
        return Scored(problem=contender.problem)
    missing = [name for name in contender.features if name not in frame.columns]
    if missing:
        return Scored(problem=f"the rows lack its feature(s) {missing[:5]}")
    if frame.empty:
        return Scored(problem="no rows to score")
    from sklearn.exceptions import UndefinedMetricWarning

    try:
        with warnings.catch_warnings():
            # A slice with one class has no defined f1 of the other: absent, not a warning.
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            metrics = evaluate(
                contender.model, frame[list(contender.features)], frame[config.target], config.task
            )
    except Exception as exc:  # the user's model: any failure is a finding, not a crash
        return Scored(problem=f"predicting failed: {exc.__class__.__name__}: {exc}")
    finite = {key: value for key, value in metrics.items() if math.isfinite(value)}
    return Scored(metrics=finite)


def slice_scores(
    config: ModelConfig, challenger: Contender, champion: Contender | None, test: pd.DataFrame
) -> list[SliceScore]:
    """The primary metric per value (or quartile) of each configured slice column."""
    found: list[SliceScore] = []
    for column in config.retrain.slices:
        if column not in test.columns:
            raise ConfigError(
                f"retrain.slices names column {column!r}, which the data lacks; "
                f"columns: {list(test.columns)}"
            )
        for value, rows in test.groupby(_slice_keys(test[column]), observed=True, sort=True):
            found.append(
                SliceScore(
                    column=column,
                    value=str(value),
                    rows=len(rows),
                    challenger=_primary(config, challenger, rows),
                    champion=None if champion is None else _primary(config, champion, rows),
                )
            )
    return found


def _slice_keys(column: pd.Series) -> pd.Series:
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric and column.nunique() > MAX_SLICE_VALUES:
        return pd.qcut(column, 4, duplicates="drop").astype(str)
    return column.astype(str).where(column.notna(), "missing")


def _primary(config: ModelConfig, contender: Contender, rows: pd.DataFrame) -> float | None:
    return score(config, contender, rows).metrics.get(config.metric)
