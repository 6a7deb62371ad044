"""The binned estimates the daily job uses stay within the documented bounds of the exact
values (``mlkeel.monitoring.drift``'s docstring), on generated data of several shapes."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from mlkeel.monitoring.profile import NumericProfile, profile_column
from mlkeel.monitoring.stats import (
    bin_midpoints,
    histogram,
    ks_binned,
    psi,
    quantile_edges,
    rebin,
    wasserstein_binned,
)

Draw = Callable[[np.random.Generator, int], np.ndarray]
SHAPES: dict[str, tuple[Draw, float, float]] = {  # draw, mean, std
    "normal": (lambda g, n: g.normal(10.0, 2.0, n), 10.0, 2.0),
    "lognormal": (lambda g, n: g.lognormal(0.0, 0.5, n), float(np.exp(0.125)), 0.6039),
    "uniform": (lambda g, n: g.uniform(-1.0, 1.0, n), 0.0, float(1 / np.sqrt(3))),
    "exponential": (lambda g, n: g.exponential(3.0, n), 3.0, 3.0),
    "poisson": (lambda g, n: g.poisson(4.0, n).astype(np.float64), 4.0, 2.0),
}
CHANGES: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    "clean": lambda x, mean, std: x,
    "mean +0.5 std": lambda x, mean, std: x + 0.5 * std,
    "scale x1.5": lambda x, mean, std: mean + 1.5 * (x - mean),
}


def displacement(values: np.ndarray, edges: list[float]) -> float:
    """E|X - r(X)|: how far binning moves a value (to its bin's representative point)."""
    points = bin_midpoints(edges)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, points.size - 1)
    return float(np.mean(np.abs(values - points[index])))


@pytest.mark.parametrize("change", list(CHANGES))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_binned_statistics_stay_within_their_bounds_of_the_exact_ones(
    shape: str, change: str
) -> None:
    draw, mean, std = SHAPES[shape]
    rng = np.random.default_rng(sorted(SHAPES).index(shape))
    reference = draw(rng, 50_000)
    current = CHANGES[change](draw(rng, 10_000), mean, std)
    profile = profile_column(pd.Series(reference))
    assert isinstance(profile, NumericProfile)
    assert profile.std is not None
    edges = profile.monitoring_edges
    expected = np.asarray(profile.monitoring_counts)
    actual = histogram(current, edges)

    # PSI on the deciles: equal.
    deciles = quantile_edges(reference, 10)
    exact_psi = psi(histogram(reference, deciles), histogram(current, deciles))
    assert psi(profile.counts, rebin(edges, actual, profile.edges)) == pytest.approx(
        exact_psi, rel=1e-9, abs=1e-12
    )

    # KS: D_exact - max_share <= D_binned <= D_exact.
    binned_d, binned_p = ks_binned(expected, actual)
    exact = scipy_stats.ks_2samp(reference, current)
    max_share = max((expected / expected.sum()).max(), (actual / actual.sum()).max())
    assert exact.statistic - max_share - 1e-12 <= binned_d <= exact.statistic + 1e-12
    en = reference.size * current.size / (reference.size + current.size)
    assert binned_p >= scipy_stats.kstwobign.sf(np.sqrt(en) * exact.statistic) - 1e-12

    # Wasserstein: within the displacement of both samples by binning (triangle inequality).
    binned_w = wasserstein_binned(edges, expected, actual, profile.std)
    exact_w = scipy_stats.wasserstein_distance(reference, current) / reference.std()
    bound = (displacement(reference, edges) + displacement(current, edges)) / profile.std
    assert abs(binned_w - exact_w) <= bound + 1e-9


@pytest.mark.parametrize("shape", ["normal", "lognormal", "exponential"])
def test_binned_wasserstein_of_continuous_features_is_close_in_practice(shape: str) -> None:
    """The measured figures in the docstring: clean within 0.004, a 0.5-std shift within 0.04,
    and the binned value not above the exact one."""
    draw, mean, std = SHAPES[shape]
    rng = np.random.default_rng(11)
    reference = draw(rng, 50_000)
    profile = profile_column(pd.Series(reference))
    assert isinstance(profile, NumericProfile)
    assert profile.std is not None
    for change, tolerance in (("clean", 0.004), ("mean +0.5 std", 0.04)):
        current = CHANGES[change](draw(rng, 10_000), mean, std)
        actual = histogram(current, profile.fine_edges)
        binned = wasserstein_binned(profile.fine_edges, profile.fine_counts, actual, profile.std)
        exact = scipy_stats.wasserstein_distance(reference, current) / reference.std()
        assert exact - tolerance <= binned <= exact + 1e-9
