"""Fine monitoring bins of the baseline profile: shape, JSON, and profiles written before them."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlkeel.monitoring.profile import (
    FINE_BINS,
    BaselineProfile,
    NumericProfile,
    build_profile,
    profile_column,
)
from mlkeel.monitoring.stats import histogram, sorted_histogram


def numeric(values: object) -> NumericProfile:
    profile = profile_column(pd.Series(values, dtype=float))
    assert isinstance(profile, NumericProfile)
    return profile


def test_fine_bins_are_hundred_quantile_bins_holding_the_deciles() -> None:
    values = np.random.default_rng(0).normal(size=10_000)
    profile = numeric(values)
    assert profile.fine_edges[0] == -np.inf
    assert profile.fine_edges[-1] == np.inf
    assert np.all(np.diff(profile.fine_edges) > 0)
    assert FINE_BINS <= len(profile.fine_counts) <= FINE_BINS + 9
    assert set(profile.edges) <= set(profile.fine_edges)
    assert sum(profile.fine_counts) == profile.count
    shares = np.asarray(profile.fine_counts) / profile.count
    assert shares.max() <= 0.011


def test_fine_counts_include_infinities_in_the_outer_bins() -> None:
    profile = numeric([*range(200), math.inf, -math.inf, math.nan])
    assert sum(profile.fine_counts) == profile.count == 202
    np.testing.assert_array_equal(
        profile.fine_counts, histogram([*range(200), math.inf, -math.inf], profile.fine_edges)
    )


def test_a_column_with_no_finer_bins_keeps_only_its_deciles() -> None:
    profile = numeric([3.0] * 50)
    assert (profile.fine_edges, profile.fine_counts) == ([], [])
    assert profile.monitoring_edges == profile.edges == [-np.inf, np.inf]
    assert profile.monitoring_counts == profile.counts


def test_predictions_get_fine_bins_too() -> None:
    frame = pd.DataFrame({"x": np.arange(1_000.0)})
    profile = build_profile(frame, np.linspace(0.0, 1.0, 1_000))
    assert isinstance(profile.prediction, NumericProfile)
    assert len(profile.prediction.fine_counts) >= FINE_BINS


def test_fine_bins_round_trip_through_strict_json() -> None:
    profile = build_profile(pd.DataFrame({"x": np.arange(500.0)}), np.zeros(500))
    text = json.dumps(profile.to_dict(), allow_nan=False)
    assert json.loads(text)["features"]["x"]["fine_edges"][0] == "-inf"
    assert BaselineProfile.from_dict(json.loads(text)) == profile


def test_a_profile_written_without_fine_bins_loads_and_monitors_on_its_deciles() -> None:
    data = build_profile(pd.DataFrame({"x": np.arange(500.0)}), np.zeros(500)).to_dict()
    del data["features"]["x"]["fine_edges"], data["features"]["x"]["fine_counts"]
    x = BaselineProfile.from_dict(data).features["x"]
    assert isinstance(x, NumericProfile)
    assert (x.fine_edges, x.fine_counts) == ([], [])
    assert x.monitoring_edges == x.edges
    assert "fine_edges" not in x.to_dict()


def test_from_dict_refuses_fine_counts_that_do_not_fit_the_fine_edges() -> None:
    data = build_profile(pd.DataFrame({"x": np.arange(500.0)}), np.zeros(500)).to_dict()
    data["features"]["x"]["fine_counts"].pop()
    with pytest.raises(ValueError, match="one fine count per fine bin"):
        BaselineProfile.from_dict(data)


@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
            st.just(math.inf),
            st.just(-math.inf),
        ),
        max_size=200,
    ),
    st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), max_size=50),
)
def test_sorted_histogram_equals_histogram(values: list[float], baseline: list[float]) -> None:
    from mlkeel.monitoring.stats import quantile_edges

    edges = quantile_edges(baseline, 10)
    np.testing.assert_array_equal(
        sorted_histogram(np.sort(values), edges), histogram(values, edges)
    )
