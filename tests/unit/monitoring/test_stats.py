"""Drift statistics: exact values, agreement with scipy, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon

from mlkeel.monitoring.stats import (
    bin_midpoints,
    chi2_test,
    histogram,
    js_distance,
    ks_test,
    psi,
    quantile_edges,
    wasserstein_binned,
)

# --- strategies -------------------------------------------------------------------------------

finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = st.lists(finite_floats, min_size=1, max_size=200).map(np.array)
samples_with_gaps = st.lists(
    st.one_of(finite_floats, st.just(math.nan), st.just(math.inf), st.just(-math.inf)),
    max_size=200,
).map(np.array)


@st.composite
def count_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    size = draw(st.integers(min_value=1, max_value=30))
    counts = st.lists(st.integers(0, 10_000), min_size=size, max_size=size).filter(any)
    return np.array(draw(counts)), np.array(draw(counts))


counts_vectors = st.lists(st.integers(0, 10_000), min_size=1, max_size=30).filter(any).map(np.array)


# --- quantile_edges and histogram -------------------------------------------------------------


def test_quantile_edges_of_known_sample_are_its_quartiles_between_infinities() -> None:
    edges = quantile_edges(np.arange(100.0), bins=4)
    np.testing.assert_array_equal(edges, [-np.inf, 24.75, 49.5, 74.25, np.inf])


def test_quantile_edges_ignore_nan() -> None:
    with_nan = np.concatenate([np.arange(100.0), [np.nan] * 50])
    np.testing.assert_array_equal(quantile_edges(with_nan, 4), quantile_edges(np.arange(100.0), 4))


@pytest.mark.parametrize("values", [[3.0] * 10, [], [np.nan, np.nan], [np.inf, 1.0, 1.0]])
def test_quantile_edges_give_constant_or_empty_column_a_single_bin(values: list[float]) -> None:
    np.testing.assert_array_equal(quantile_edges(np.array(values)), [-np.inf, np.inf])


def test_quantile_edges_refuse_zero_bins() -> None:
    with pytest.raises(ValueError, match="bins must be at least 1, got 0"):
        quantile_edges(np.arange(10.0), bins=0)


def test_histogram_counts_known_sample_in_equal_quartiles() -> None:
    edges = quantile_edges(np.arange(100.0), bins=4)
    np.testing.assert_array_equal(histogram(np.arange(100.0), edges), [25, 25, 25, 25])


def test_histogram_bins_are_closed_below_and_put_outliers_in_outer_bins() -> None:
    counts = histogram(np.array([-1e9, 0.0, 0.5, 1.0, 1e9, np.inf, np.nan]), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(counts, [3, 3])
    assert counts.dtype == np.int64


def test_histogram_refuses_unsorted_edges() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        histogram(np.arange(3.0), [0.0, 2.0, 1.0])


@given(samples, st.integers(min_value=1, max_value=20))
def test_quantile_edges_are_strictly_increasing_from_minus_to_plus_infinity(
    values: np.ndarray, bins: int
) -> None:
    edges = quantile_edges(values, bins)
    assert edges[0] == -np.inf
    assert edges[-1] == np.inf
    assert len(edges) <= bins + 1
    assert np.all(np.diff(edges) > 0)


@given(samples_with_gaps, samples)
def test_histogram_total_equals_non_nan_count(values: np.ndarray, baseline: np.ndarray) -> None:
    counts = histogram(values, quantile_edges(baseline))
    assert counts.sum() == np.count_nonzero(~np.isnan(values))


# --- psi --------------------------------------------------------------------------------------


def test_psi_of_known_counts_equals_hand_computed_value() -> None:
    # shares 0.5/0.5 -> 0.25/0.75: -0.25 * ln(0.5) + 0.25 * ln(1.5) = 0.25 * ln(3)
    assert psi([50, 50], [25, 75]) == pytest.approx(0.25 * math.log(3), rel=1e-12)


def test_psi_clips_empty_bins_to_eps() -> None:
    eps = 1e-4
    expected = (eps - 0.5) * math.log(eps / 0.5) + (1 - 0.5) * math.log(1 / 0.5)
    assert psi([1, 1], [0, 5], eps=eps) == pytest.approx(expected, rel=1e-12)


def test_psi_is_zero_for_identical_counts() -> None:
    assert psi([3, 0, 7, 1], [3, 0, 7, 1]) == 0.0


def test_psi_refuses_misaligned_counts() -> None:
    with pytest.raises(ValueError, match="lengths 2 and 3"):
        psi([1, 2], [1, 2, 3])


def test_psi_refuses_empty_window() -> None:
    with pytest.raises(ValueError, match="actual_counts sum to 0"):
        psi([1, 2], [0, 0])


@given(count_pairs())
def test_psi_is_never_negative(pair: tuple[np.ndarray, np.ndarray]) -> None:
    assert psi(*pair) >= 0.0


@given(samples)
def test_identical_samples_never_drift(values: np.ndarray) -> None:
    edges = quantile_edges(values)
    counts = histogram(values, edges)
    assert psi(counts, counts) == 0.0
    assert js_distance(counts, counts) == 0.0
    assert wasserstein_binned(edges, counts, counts, scale=float(values.std())) == 0.0


# --- js_distance ------------------------------------------------------------------------------


def test_js_distance_of_disjoint_counts_is_one() -> None:
    assert js_distance([4, 0], [0, 9]) == pytest.approx(1.0, rel=1e-12)


def test_js_distance_of_known_counts_equals_hand_computed_value() -> None:
    # p = (1, 0), q = (1/2, 1/2), m = (3/4, 1/4): JS = 3/4 * log2(4/3)
    assert js_distance([2, 0], [5, 5]) == pytest.approx(math.sqrt(0.75 * math.log2(4 / 3)))


def test_js_distance_is_zero_for_identical_counts() -> None:
    assert js_distance([1, 2, 3], [1, 2, 3]) == 0.0


@given(count_pairs())
def test_js_distance_agrees_with_scipy_and_stays_in_unit_interval(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    distance = js_distance(*pair)
    assert 0.0 <= distance <= 1.0
    assert distance == pytest.approx(jensenshannon(*pair, base=2), abs=1e-7)


# --- wasserstein_binned -----------------------------------------------------------------------


def test_bin_midpoints_use_nearest_finite_edge_for_open_bins() -> None:
    np.testing.assert_array_equal(
        bin_midpoints([-np.inf, 0.0, 1.0, 2.0, np.inf]), [0.0, 0.5, 1.5, 2.0]
    )
    np.testing.assert_array_equal(bin_midpoints([-np.inf, np.inf]), [0.0])


def test_wasserstein_binned_of_one_bin_shift_equals_bin_width_over_scale() -> None:
    edges = [-np.inf, 0.0, 1.0, 2.0, np.inf]
    assert wasserstein_binned(edges, [0, 10, 0, 0], [0, 0, 10, 0], scale=2.0) == 0.5
    assert wasserstein_binned(edges, [0, 10, 0, 0], [0, 0, 10, 0], scale=0.0) == 1.0


def test_wasserstein_binned_refuses_counts_of_other_bins() -> None:
    with pytest.raises(ValueError, match="counts have 2 bins but the edges define 3"):
        wasserstein_binned([0.0, 1.0, 2.0, 3.0], [1, 1], [1, 1], scale=1.0)


@given(samples, samples)
@settings(deadline=None)
def test_wasserstein_binned_agrees_with_scipy_on_bin_midpoints(
    reference: np.ndarray, current: np.ndarray
) -> None:
    edges = quantile_edges(reference)
    expected, actual = histogram(reference, edges), histogram(current, edges)
    points = bin_midpoints(edges)
    scipy_value = scipy_stats.wasserstein_distance(points, points, expected, actual)
    ours = wasserstein_binned(edges, expected, actual, scale=1.0)
    assert ours >= 0.0
    assert ours == pytest.approx(scipy_value, rel=1e-9, abs=1e-9)


# --- ks_test ----------------------------------------------------------------------------------


def test_ks_test_of_disjoint_small_samples_has_exact_p_value() -> None:
    # all 3 + 3 orderings: 2 of C(6, 3) = 20 put one sample wholly below the other
    statistic, p_value = ks_test(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
    assert statistic == 1.0
    assert p_value == pytest.approx(0.1)


def test_ks_test_agrees_with_scipy_on_seeded_samples() -> None:
    rng = np.random.default_rng(7)
    reference, current = rng.normal(size=500), rng.normal(0.2, size=400)
    expected = scipy_stats.ks_2samp(reference, current)
    assert ks_test(reference, current) == (expected.statistic, expected.pvalue)


def test_ks_test_skips_nan() -> None:
    assert ks_test(np.array([1.0, np.nan, 2.0]), np.array([1.0, 2.0])) == (0.0, 1.0)


def test_ks_test_refuses_all_nan_sample() -> None:
    with pytest.raises(ValueError, match="current sample has no non-NaN values"):
        ks_test(np.array([1.0]), np.array([np.nan]))


@given(samples, samples)
@settings(deadline=None)
def test_ks_p_value_is_a_probability(reference: np.ndarray, current: np.ndarray) -> None:
    statistic, p_value = ks_test(reference, current)
    assert 0.0 <= statistic <= 1.0
    assert 0.0 <= p_value <= 1.0


# --- chi2_test --------------------------------------------------------------------------------


def test_chi2_test_of_known_counts_equals_hand_computed_value() -> None:
    # expected 10/10 scaled to 20 -> (5 - 10)^2 / 10 + (15 - 10)^2 / 10 = 5, one dof
    statistic, p_value = chi2_test([10, 10], [5, 15])
    assert statistic == pytest.approx(5.0)
    assert p_value == pytest.approx(scipy_stats.chi2.sf(5.0, 1))


def test_chi2_test_agrees_with_scipy_chisquare_when_all_categories_are_known() -> None:
    expected, actual = np.array([120, 300, 80, 500]), np.array([30, 70, 40, 90])
    scaled = expected / expected.sum() * actual.sum()
    reference = scipy_stats.chisquare(actual, scaled)
    statistic, p_value = chi2_test(expected, actual)
    assert statistic == pytest.approx(reference.statistic)
    assert p_value == pytest.approx(reference.pvalue)


def test_chi2_test_flags_unseen_category_with_large_statistic() -> None:
    statistic, p_value = chi2_test([100, 100, 0], [10, 10, 10])
    assert statistic > 1_000
    assert p_value < 1e-6


def test_chi2_test_of_single_category_cannot_drift() -> None:
    assert chi2_test([5, 0], [9, 0]) == (0.0, 1.0)


@given(count_pairs())
@settings(deadline=None)
def test_chi2_p_value_is_a_probability(pair: tuple[np.ndarray, np.ndarray]) -> None:
    statistic, p_value = chi2_test(*pair)
    assert statistic >= 0.0
    assert 0.0 <= p_value <= 1.0


@given(counts_vectors)
def test_chi2_test_of_identical_counts_never_drifts(counts: np.ndarray) -> None:
    statistic, p_value = chi2_test(counts, counts)
    assert statistic == pytest.approx(0.0, abs=1e-9)
    assert p_value == pytest.approx(1.0)


def test_ks_test_stays_silent_when_scipy_falls_back_from_exact_p_value() -> None:
    statistic, p_value = ks_test(np.zeros(5), np.array([0.0, 0.0, 0.0, 0.0, 1.0]))
    assert statistic == pytest.approx(0.2)
    assert 0.0 <= p_value <= 1.0
