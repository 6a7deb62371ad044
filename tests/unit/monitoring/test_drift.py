"""Drift verdicts: from summaries and from raw samples, against scipy, and their properties."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon

from mlkeel.monitoring.drift import DriftResult, compare, compare_exact
from mlkeel.monitoring.profile import BaselineProfile, NumericProfile, build_profile
from mlkeel.monitoring.stats import binned_quantiles, ks_binned, rebin
from mlkeel.monitoring.summaries import Summary
from mlkeel.prediction_log.record import PredictionRecord
from mlkeel.settings import DriftConfig

NOON = datetime(2025, 1, 1, 12, tzinfo=UTC)
CONFIG = DriftConfig()


def frame(rng: np.random.Generator, rows: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": rng.normal(shift, 1.0, rows),
            "y": rng.exponential(2.0, rows),
            "c": rng.choice(np.array(["a", "b", "c"], dtype=object), rows, p=[0.5, 0.3, 0.2]),
        }
    )


def summarise(data: pd.DataFrame, predictions: Any, profile: BaselineProfile | None) -> Summary:
    summary = Summary("m", 1, "champion", 0, profile)
    rows = data.to_dict(orient="records")
    summary.fold(
        [
            PredictionRecord(NOON, "m", 1, "champion", "r", 0, row, p, None, 1.0)
            for row, p in zip(rows, np.asarray(predictions).tolist(), strict=True)
        ]
    )
    return summary


def by_name(result: DriftResult) -> dict[str, Any]:
    return {verdict.name: verdict for verdict in result.features}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return frame(np.random.default_rng(0), 20_000)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> BaselineProfile:
    return build_profile(reference, reference["x"].to_numpy())


# --- compare: verdicts from summaries ---------------------------------------------------------


def test_compare_flags_a_shifted_feature_and_not_the_clean_ones(
    profile: BaselineProfile,
) -> None:
    current = frame(np.random.default_rng(1), 5_000, shift=0.5)
    result = compare(profile, summarise(current, current["x"], profile), CONFIG)
    verdicts = by_name(result)
    assert [v.name for v in result.features if v.drifted] == ["x"]
    assert verdicts["x"].method == "wasserstein"
    assert verdicts["x"].score == pytest.approx(0.5, abs=0.05)
    assert verdicts["c"].method == "jensenshannon"
    assert result.prediction is not None
    assert result.prediction.drifted
    assert result.drift_share == pytest.approx(1 / 3)
    assert result.dataset_drift  # 1/3 >= 0.3
    assert result.rows == 5_000


def test_compare_fills_quality_rates_and_stats(profile: BaselineProfile) -> None:
    current = pd.DataFrame(
        {"x": [0.0, 1.0, 100.0, None], "y": [1.0, 1.0, 1.0, 1.0], "c": ["a", "zz", None, "a"]}
    )
    verdicts = by_name(compare(profile, summarise(current, [0.0] * 4, profile), CONFIG))
    x, c = verdicts["x"], verdicts["c"]
    assert (x.count, x.missing_rate, x.out_of_range_rate) == (3, 0.25, pytest.approx(1 / 3))
    assert x.stats["mean"] == pytest.approx(101 / 3)
    assert (x.stats["min"], x.stats["max"]) == (0.0, 100.0)
    assert set(x.stats["quantiles"]) == {"p01", "p05", "p25", "p50", "p75", "p95", "p99"}
    assert (c.count, c.missing_rate, c.unseen_rate) == (3, 0.25, pytest.approx(1 / 3))


def test_compare_gives_features_without_rows_no_data_and_leaves_them_out_of_the_share(
    profile: BaselineProfile,
) -> None:
    current = pd.DataFrame({"x": [None] * 3, "y": [5.0] * 3})
    result = compare(profile, summarise(current, [0.0] * 3, profile), CONFIG)
    verdicts = by_name(result)
    assert verdicts["x"].method == "no_data"
    assert not verdicts["x"].drifted
    assert verdicts["x"].missing_rate == 1.0
    assert verdicts["c"].method == "no_data"
    assert result.drift_share == (1.0 if verdicts["y"].drifted else 0.0)


def test_compare_of_an_empty_summary_drifts_nothing(profile: BaselineProfile) -> None:
    result = compare(profile, Summary("m", 1, "champion", 0), CONFIG)
    assert {v.method for v in result.features} == {"no_data"}
    assert result.prediction is not None
    assert result.prediction.method == "no_data"
    assert (result.dataset_drift, result.drift_share, result.rows) == (False, 0.0, 0)


def test_small_windows_need_significance_not_just_a_large_effect(
    profile: BaselineProfile,
) -> None:
    current = frame(np.random.default_rng(2), 8, shift=0.3)
    x = by_name(compare(profile, summarise(current, current["x"], profile), CONFIG))["x"]
    assert x.p_value is not None
    assert x.p_value > CONFIG.p_value
    assert not x.drifted


def test_per_feature_threshold_overrides_the_default(profile: BaselineProfile) -> None:
    current = frame(np.random.default_rng(3), 5_000, shift=0.5)
    summary = summarise(current, current["x"], profile)
    relaxed = DriftConfig(features={"x": 0.9})
    x = by_name(compare(profile, summary, relaxed))["x"]
    assert (x.threshold, x.drifted) == (0.9, False)


def test_summary_folded_without_baseline_falls_back_to_the_mean_shift(
    profile: BaselineProfile,
) -> None:
    current = frame(np.random.default_rng(4), 5_000, shift=0.5)
    x = by_name(compare(profile, summarise(current, current["x"], None), CONFIG))["x"]
    assert x.method == "mean_shift"
    assert x.score == pytest.approx(0.5, abs=0.05)
    assert x.drifted


def test_profile_without_fine_bins_is_compared_on_its_deciles(
    reference: pd.DataFrame, profile: BaselineProfile
) -> None:
    data = profile.to_dict()
    for feature in data["features"].values():
        feature.pop("fine_edges", None)
        feature.pop("fine_counts", None)
    old = BaselineProfile.from_dict(data)
    current = frame(np.random.default_rng(5), 5_000, shift=0.5)
    x = by_name(compare(old, summarise(current, current["x"], old), CONFIG))["x"]
    assert (x.method, x.drifted) == ("wasserstein", True)
    assert len(x.stats["histogram"]) == 10


# --- compare_exact: each statistic equals scipy's ---------------------------------------------


def test_exact_statistics_equal_scipys_on_the_same_inputs(reference: pd.DataFrame) -> None:
    current = frame(np.random.default_rng(6), 3_000, shift=0.2)
    result = compare_exact(reference, current, None, None, CONFIG)
    verdicts = by_name(result)
    for name in ("x", "y"):
        ref, cur = reference[name].to_numpy(), current[name].to_numpy()
        wasserstein = scipy_stats.wasserstein_distance(ref, cur) / ref.std()
        assert verdicts[name].score == pytest.approx(wasserstein, rel=1e-9, abs=1e-12)
        assert verdicts[name].p_value == pytest.approx(
            scipy_stats.ks_2samp(ref, cur).pvalue, rel=1e-9, abs=1e-300
        )
        edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
        e = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=10) / ref.size
        a = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=10) / cur.size
        psi = scipy_stats.entropy(a, e) + scipy_stats.entropy(e, a)
        assert verdicts[name].psi == pytest.approx(psi, rel=1e-9)
    ref_c = reference["c"].value_counts().reindex(["a", "b", "c"]).to_numpy(float)
    cur_c = current["c"].value_counts().reindex(["a", "b", "c"]).to_numpy(float)
    chi2 = scipy_stats.chisquare(cur_c, ref_c / ref_c.sum() * cur_c.sum())
    assert verdicts["c"].p_value == pytest.approx(chi2.pvalue, rel=1e-9)
    assert verdicts["c"].score == pytest.approx(jensenshannon(ref_c, cur_c, base=2), rel=1e-9)


def test_exact_ks_statistic_equals_scipys(reference: pd.DataFrame) -> None:
    from mlkeel.monitoring.stats import ks_test

    current = frame(np.random.default_rng(7), 2_000)
    statistic, p_value = ks_test(reference["x"], current["x"])
    expected = scipy_stats.ks_2samp(reference["x"], current["x"])
    assert (statistic, p_value) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)


def test_exact_judges_predictions_and_missing_columns(reference: pd.DataFrame) -> None:
    current = frame(np.random.default_rng(8), 2_000, shift=1.0).drop(columns=["c"])
    result = compare_exact(
        reference, current, reference["x"].to_numpy(), current["x"].to_numpy(), CONFIG
    )
    assert by_name(result)["c"].method == "no_data"
    assert result.prediction is not None
    assert result.prediction.drifted
    assert not by_name(result)["y"].drifted
    assert result.drift_share == 0.5  # x of the two judged (c has no data)


# --- binned helpers: seeded exact values ------------------------------------------------------


def test_ks_binned_of_known_counts_equals_hand_computed_value() -> None:
    statistic, p_value = ks_binned([50, 50], [20, 80])
    assert statistic == pytest.approx(0.3)
    assert p_value == pytest.approx(scipy_stats.kstwobign.sf(np.sqrt(50) * 0.3), rel=1e-9)


def test_rebin_sums_fine_bins_into_the_coarse_bins_holding_them() -> None:
    fine = [-np.inf, 0.0, 1.0, 2.0, 3.0, np.inf]
    np.testing.assert_array_equal(
        rebin(fine, [1, 2, 3, 4, 5], [-np.inf, 1.0, 3.0, np.inf]), [3, 7, 5]
    )


def test_binned_quantiles_interpolate_inside_the_bin_and_clamp_open_bins() -> None:
    edges = [-np.inf, 0.0, 10.0, np.inf]
    levels = binned_quantiles(edges, [0, 10, 0], [0.0, 0.5, 1.0], low=2.0, high=8.0)
    np.testing.assert_allclose(levels, [2.0, 5.0, 8.0])


# --- properties -------------------------------------------------------------------------------

samples = st.lists(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=2, max_size=80
)
categories = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=2, max_size=80)


@settings(max_examples=50, deadline=None)
@given(samples, categories)
def test_identical_samples_never_drift(values: list[float], labels: list[str]) -> None:
    size = min(len(values), len(labels))
    data = pd.DataFrame({"x": values[:size], "c": labels[:size]})
    data["c"] = data["c"].astype(object)
    profile = build_profile(data, np.asarray(values[:size]))
    binned = compare(profile, summarise(data, values[:size], profile), CONFIG)
    exact = compare_exact(data, data, values[:size], values[:size], CONFIG)
    for result in (binned, exact):
        assert not any(v.drifted for v in result.features)
        assert result.prediction is not None
        assert not result.prediction.drifted
        assert not result.dataset_drift


@settings(max_examples=50, deadline=None)
@given(samples, samples, categories, categories)
def test_p_values_are_probabilities_and_psi_is_never_negative(
    ref_x: list[float], cur_x: list[float], ref_c: list[str], cur_c: list[str]
) -> None:
    n, m = min(len(ref_x), len(ref_c)), min(len(cur_x), len(cur_c))
    reference = pd.DataFrame({"x": ref_x[:n], "c": pd.Series(ref_c[:n], dtype=object)})
    current = pd.DataFrame({"x": cur_x[:m], "c": pd.Series(cur_c[:m], dtype=object)})
    profile = build_profile(reference, np.asarray(ref_x[:n]))
    binned = compare(profile, summarise(current, cur_x[:m], profile), CONFIG)
    exact = compare_exact(reference, current, ref_x[:n], cur_x[:m], CONFIG)
    for result in (binned, exact):
        verdicts = [*result.features, result.prediction]
        for verdict in verdicts:
            assert verdict is not None
            assert verdict.p_value is not None
            assert 0.0 <= verdict.p_value <= 1.0
            assert verdict.psi is None or verdict.psi >= 0.0
            assert verdict.score >= 0.0
        assert 0.0 <= result.drift_share <= 1.0


def test_fine_bins_of_a_profile_hold_its_deciles(profile: BaselineProfile) -> None:
    x = profile.features["x"]
    assert isinstance(x, NumericProfile)
    assert set(x.edges) <= set(x.fine_edges)
    np.testing.assert_array_equal(rebin(x.fine_edges, x.fine_counts, x.edges), x.counts)
