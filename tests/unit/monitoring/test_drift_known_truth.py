"""Known truth at 10,000 rows (the small end of ``bench/drift_data.py``): the default verdict
flags exactly the features that were made to drift, through the whole summary path."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlkeel.monitoring.drift import compare, compare_exact
from mlkeel.monitoring.profile import build_profile
from mlkeel.monitoring.summaries import Summary, SummaryFolder
from mlkeel.prediction_log.record import PredictionRecord
from mlkeel.settings import DriftConfig

NUMERIC = [f"x{i}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
MEAN_SHIFTED = {"x0", "x1", "x2", "x3", "x6"}  # +0.5 std
SCALED = {"x4", "x5", "x6"}  # x1.5 around the mean
DRIFTED = MEAN_SHIFTED | SCALED | {"c0", "c1"}  # c0 re-weighted, c1 gains a new category
LEVELS = np.array(["red", "green", "blue", "amber", "violet"], dtype=object)
SHAPES = [  # draw, mean, std
    (lambda g, n: g.normal(10.0, 2.0, n), 10.0, 2.0),
    (lambda g, n: g.lognormal(0.0, 0.5, n), float(np.exp(0.125)), 0.6039),
    (lambda g, n: g.uniform(-1.0, 1.0, n), 0.0, float(1 / np.sqrt(3))),
    (lambda g, n: g.exponential(3.0, n), 3.0, 3.0),
    (lambda g, n: g.poisson(4.0, n).astype(np.float64), 4.0, 2.0),
]
NOON = datetime(2025, 1, 1, 12, tzinfo=UTC)


def sample(rng: np.random.Generator, rows: int, drifted: bool) -> pd.DataFrame:
    columns = {}
    for index, name in enumerate(NUMERIC):
        draw, mean, std = SHAPES[index % len(SHAPES)]
        values = draw(rng, rows)
        if drifted and name in SCALED:
            values = mean + 1.5 * (values - mean)
        if drifted and name in MEAN_SHIFTED:
            values = values + 0.5 * std
        columns[name] = values
    for name in CATEGORICAL:
        weights = [0.4, 0.3, 0.2, 0.1, 0.0]
        if drifted and name == "c0":
            weights = [0.2, 0.2, 0.3, 0.3, 0.0]
        if drifted and name == "c1":
            weights = [0.3, 0.25, 0.2, 0.1, 0.15]
        columns[name] = rng.choice(LEVELS, size=rows, p=weights)
    return pd.DataFrame(columns)


@pytest.mark.parametrize("seed", [0, 1])
def test_default_verdict_flags_exactly_the_drifted_features_at_10000_rows(seed: int) -> None:
    rng = np.random.default_rng(seed)
    reference = sample(rng, 50_000, drifted=False)
    current = sample(rng, 10_000, drifted=True)
    profile = build_profile(reference, reference["x0"].to_numpy())
    folder = SummaryFolder(lambda model, version: profile)
    rows = current.to_dict(orient="records")
    records = [
        PredictionRecord(NOON, "m", 1, "champion", f"r{i}", 0, row, row["x0"], None, 3.0)
        for i, row in enumerate(rows)
    ]
    for start in range(0, len(records), 1000):
        folder.fold(records[start : start + 1000])
    (summary,) = folder.take_dirty().values()
    stored = Summary.from_payload(summary.to_payload())  # as the monitor reads it

    result = compare(profile, stored, DriftConfig())
    assert {v.name for v in result.features if v.drifted} == DRIFTED
    assert result.dataset_drift
    assert result.drift_share == pytest.approx(len(DRIFTED) / 25)
    assert result.prediction is not None
    assert result.prediction.drifted

    exact = compare_exact(reference, current, None, None, DriftConfig())
    assert {v.name for v in exact.features if v.drifted} == DRIFTED
