"""Per-hour summaries: what a fold counts, exact merges, the payload, and the folder."""

from __future__ import annotations

import json
import math
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mlkeel.monitoring.profile import BaselineProfile, NumericProfile, build_profile
from mlkeel.monitoring.stats import histogram
from mlkeel.monitoring.summaries import (
    LATENCY_BINS,
    PAYLOAD_VERSION,
    CategoricalSummary,
    NumericSummary,
    Summary,
    SummaryFolder,
    _plan,
    hour_of,
    latency_edges,
)
from mlkeel.prediction_log.record import (
    MISSING,
    UNLISTED,
    ColumnLayout,
    FeatureColumns,
    LoggedRequest,
    PredictionRecord,
)

NOON = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def baseline() -> BaselineProfile:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40.0, 10.0, 5_000),
            "income": rng.lognormal(10.0, 0.5, 5_000),
            "city": rng.choice(["Oslo", "Rome", "Lima"], 5_000),
        }
    )
    return build_profile(frame, rng.random(5_000))


def record(
    features: dict[str, Any],
    prediction: Any = 0.5,
    *,
    row: int = 0,
    latency: float = 2.0,
    when: datetime = NOON,
    version: int = 1,
    variant: str = "champion",
) -> PredictionRecord:
    return PredictionRecord(
        when,
        "churn",
        version,
        variant,
        "r",
        row,
        features,
        prediction,
        None,
        latency,  # type: ignore[arg-type]
    )


def rows(values: list[tuple[Any, Any, Any]]) -> list[PredictionRecord]:
    return [record({"age": a, "income": i, "city": c}) for a, i, c in values]


def request_rows(values: list[tuple[Any, Any, Any]]) -> list[PredictionRecord]:
    """The records of one request: its rows numbered from 0."""
    return [record({"age": a, "income": i, "city": c}, row=n) for n, (a, i, c) in enumerate(values)]


def fold(records: list[PredictionRecord], baseline: BaselineProfile | None) -> Summary:
    summary = Summary("churn", 1, "champion", hour_of(NOON), baseline)
    summary.fold(records)
    return summary


def numeric(summary: Summary, name: str) -> NumericSummary:
    state = summary.features[name]
    assert isinstance(state, NumericSummary)
    return state


def categorical(summary: Summary, name: str) -> CategoricalSummary:
    state = summary.features[name]
    assert isinstance(state, CategoricalSummary)
    return state


# --- what a fold counts -----------------------------------------------------------------------


def test_fold_counts_moments_extremes_missing_and_non_finite(baseline: BaselineProfile) -> None:
    summary = fold(
        rows(
            [(30.0, 1.0, "Oslo"), (50.0, None, "Rome"), (math.inf, 2.0, None), (None, 3.0, "Oslo")]
        ),
        baseline,
    )
    age = numeric(summary, "age")
    assert (age.count, age.missing, age.nonfinite, age.finite) == (3, 1, 1, 2)
    assert age.mean == pytest.approx(40.0)
    assert age.std == pytest.approx(10.0)
    assert (age.min, age.max) == (30.0, 50.0)
    city = categorical(summary, "city")
    assert (city.count, city.missing, city.counts) == (3, 1, {"Oslo": 2, "Rome": 1})
    assert summary.rows == 4


def test_fold_bins_equal_histogram_on_the_baselines_fine_edges(baseline: BaselineProfile) -> None:
    values = np.random.default_rng(1).normal(45.0, 12.0, 3_000)
    values[:5] = [-np.inf, np.inf, 1e9, -1e9, np.nan]
    summary = fold(rows([(float(v), 1.0, "Oslo") for v in values]), baseline)
    profile = baseline.features["age"]
    assert isinstance(profile, NumericProfile)
    bins = numeric(summary, "age").bins
    assert bins is not None
    np.testing.assert_array_equal(bins, histogram(values, profile.fine_edges))


def test_fold_bins_values_on_and_next_to_each_edge_like_a_float64_histogram(
    baseline: BaselineProfile,
) -> None:
    # Values share grid cells with the edges they sit on or next to: only comparing them
    # with those edges tells their side. Folded past a chunk of rows, NaN in one chunk only.
    profile = baseline.features["age"]
    assert isinstance(profile, NumericProfile)
    assert profile.min is not None
    assert profile.max is not None
    edges = np.asarray(profile.fine_edges, dtype=np.float64)
    near = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)])
    values = np.concatenate([np.tile(near, 8), [np.nan]])
    summary = Summary("churn", 1, "champion", hour_of(NOON), baseline)
    for _ in range(2):
        summary.fold(rows([(float(v), 1.0, "Oslo") for v in values]))
        summary.settle()
    age = numeric(summary, "age")
    assert age.bins is not None
    np.testing.assert_array_equal(age.bins, 2 * histogram(values, profile.fine_edges))
    assert age.below == 2 * int((values < profile.min).sum())
    assert age.above == 2 * int((values > profile.max).sum())
    assert (age.count, age.missing) == (2 * (values.size - 1), 2)


def test_fold_bins_a_feature_whose_edges_no_grid_separates_like_a_histogram() -> None:
    # Half the training values within 1e-6 of 0, half up to 1,000: quantile edges 1e-8 apart
    # beside edges 20 apart, too uneven for a grid; that column is sorted instead.
    rng = np.random.default_rng(3)
    train = np.concatenate([rng.uniform(0, 1e-6, 2_000), rng.uniform(1, 1_000, 2_000)])
    skewed = build_profile(pd.DataFrame({"size": train}), rng.random(4_000))
    profile = skewed.features["size"]
    assert isinstance(profile, NumericProfile)
    assert _plan(profile).grid is None  # type: ignore[union-attr]  # the sorted path
    values = np.concatenate([rng.uniform(0, 1e-6, 3_000), rng.uniform(1, 1_000, 3_000)])
    summary = Summary("churn", 1, "champion", hour_of(NOON), skewed)
    summary.fold([record({"size": float(v)}) for v in values])
    state = summary.features["size"]
    assert isinstance(state, NumericSummary)
    assert state.bins is not None
    np.testing.assert_array_equal(state.bins, histogram(values, profile.fine_edges))
    assert state.mean == pytest.approx(values.mean(), rel=1e-12)
    assert state.std == pytest.approx(values.std(), rel=1e-9)


def test_fold_counts_values_outside_the_training_range(baseline: BaselineProfile) -> None:
    profile = baseline.features["age"]
    assert isinstance(profile, NumericProfile)
    assert profile.min is not None
    assert profile.max is not None
    low, high = profile.min, profile.max
    ages = [low - 1, low, high, high + 1, math.inf, -math.inf, (low + high) / 2]
    age = numeric(fold(rows([(a, 1.0, "Oslo") for a in ages]), baseline), "age")
    assert (age.below, age.above) == (2, 2)


def test_fold_counts_unseen_categories_and_caps_tracked_ones(baseline: BaselineProfile) -> None:
    summary = Summary("churn", 1, "champion", 0, baseline, max_categories=3)
    cities = ["Paris", "Oslo", "Quito", "Rome", "Lima", "Kyiv", "Paris"]
    summary.fold(rows([(40.0, 1.0, c) for c in cities]))
    city = categorical(summary, "city")
    # The baseline's own categories are always tracked; new ones only up to the cap.
    assert city.counts == {"Paris": 2, "Oslo": 1, "Quito": 1, "Rome": 1, "Lima": 1}
    assert (city.other, city.unseen, city.count) == (1, 4, 7)


def test_fold_treats_non_numbers_in_a_numeric_feature_as_missing(
    baseline: BaselineProfile,
) -> None:
    age = numeric(
        fold(rows([(30.0, 1.0, "Oslo"), ("n/a", 1.0, "Oslo"), ("31", 1.0, "Oslo")]), baseline),
        "age",
    )
    assert (age.count, age.missing, age.max) == (2, 1, 31.0)


def test_fold_keys_bools_and_numbers_of_a_categorical_feature_as_strings() -> None:
    summary = fold([record({"flag": v}) for v in [True, False, True, 3]], None)
    assert categorical(summary, "flag").counts == {"True": 2, "False": 1, "3": 1}


def test_fold_reads_records_whose_keys_come_in_any_order(baseline: BaselineProfile) -> None:
    ordered = rows([(30.0, 1.0, "Oslo")] * 3)
    shuffled = [
        record({"city": "Rome", "age": 50.0, "income": 2.0}),
        record({"income": 3.0, "age": 60.0}),  # a missing key counts as missing
    ]
    summary = fold(ordered + shuffled, baseline)
    age, city = numeric(summary, "age"), categorical(summary, "city")
    assert (age.count, age.max) == (5, 60.0)
    assert (city.counts, city.missing) == ({"Oslo": 3, "Rome": 1}, 1)


def test_fold_without_baseline_keeps_moments_and_categories_but_no_bins() -> None:
    summary = fold(rows([(30.0, 1.0, "Oslo"), (50.0, 2.0, "Rome")]), None)
    age = numeric(summary, "age")
    assert (age.count, age.mean, age.bins, age.edges_id) == (2, 40.0, None, None)
    assert categorical(summary, "city").unseen == 0


def test_kind_without_baseline_follows_the_first_present_value() -> None:
    summary = fold([record({"x": None}), record({"x": None})], None)
    summary.fold([record({"x": "a"}), record({"x": None})])
    state = categorical(summary, "x")
    assert (state.count, state.missing, state.counts) == (1, 3, {"a": 1})


def test_fold_folds_the_prediction_against_the_baselines_prediction(
    baseline: BaselineProfile,
) -> None:
    summary = fold([record({"age": 1.0}, prediction=p) for p in [0.1, 0.9, None]], baseline)
    prediction = summary.prediction
    assert isinstance(prediction, NumericSummary)
    assert (prediction.count, prediction.missing, prediction.binned) == (2, 1, 2)


def test_requests_count_row_zero_and_errors(baseline: BaselineProfile) -> None:
    summary = fold([record({"age": 1.0}, row=r) for r in [0, 1, 2, 0]], baseline)
    summary.count_errors(3)
    assert (summary.rows, summary.requests, summary.errors) == (4, 5, 3)


def test_latency_quantiles_fall_in_the_bin_of_the_true_quantile() -> None:
    latencies = np.random.default_rng(2).lognormal(1.0, 1.0, 5_000)
    summary = fold([record({"x": 1.0}, latency=float(v)) for v in latencies], None)
    ratio = 10 ** (1 / 40)  # one bin
    for name, level in {"p50": 0.5, "p95": 0.95, "p99": 0.99}.items():
        exact = float(np.quantile(latencies, level))
        assert exact / ratio <= summary.latency_quantiles()[name] <= exact * ratio


def test_latency_bins_cover_a_tenth_of_a_millisecond_to_a_minute() -> None:
    edges = latency_edges()
    assert edges[0] == pytest.approx(0.1)
    assert edges[-1] > 60_000
    summary = fold([record({"x": 1.0}, latency=v) for v in [0.0, 0.05, 0.1, 1e6]], None)
    assert summary.latency[0] == 2
    assert summary.latency[1] == 1
    assert summary.latency[LATENCY_BINS + 1] == 1


# --- merging ----------------------------------------------------------------------------------

values = st.one_of(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    st.none(),
    st.just(math.inf),
    st.just(-math.inf),
)
record_strategy = st.builds(
    lambda age, income, city, row, latency, minute: record(
        {"age": age, "income": income, "city": city},
        prediction=income,
        row=row,
        latency=latency,
        when=NOON + timedelta(minutes=minute),
    ),
    values,
    values,
    st.one_of(st.none(), st.sampled_from(["Oslo", "Rome", "Lima", "Kyiv", "Quito"])),
    st.integers(0, 2),
    st.floats(min_value=0.0, max_value=1e5, allow_nan=False),
    st.integers(0, 59),
)


def same(left: Summary, right: Summary) -> None:
    """Counts equal exactly; mean and M2 up to floating-point rounding."""
    a, b = left.to_payload(), right.to_payload()
    assert a["latency"] == b["latency"] | {"sum": pytest.approx(a["latency"]["sum"])}
    for name in a["features"].keys() | b["features"].keys():
        x, y = a["features"][name], b["features"][name]
        assert x.keys() == y.keys()
        for key in x:
            if key in ("mean", "m2") and x[key] is not None:
                assert y[key] == pytest.approx(x[key], rel=1e-9, abs=1e-6), (name, key)
            else:
                assert x[key] == y[key], (name, key)
    for key in ("rows", "requests", "errors"):
        assert a[key] == b[key]


@settings(max_examples=60, deadline=None)
@given(st.lists(record_strategy, max_size=40), st.integers(0, 40), st.booleans())
def test_merging_the_folds_of_two_halves_equals_folding_the_whole(
    baseline: BaselineProfile, batch: list[PredictionRecord], cut: int, with_baseline: bool
) -> None:
    profile = baseline if with_baseline else None
    whole = fold(batch, profile)
    first, second = fold(batch[:cut], profile), fold(batch[cut:], profile)
    first.merge(second)
    same(first, whole)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(record_strategy, max_size=15), min_size=3, max_size=3))
def test_merge_is_associative(
    baseline: BaselineProfile, parts: list[list[PredictionRecord]]
) -> None:
    def folded(i: int) -> Summary:
        return fold(parts[i], baseline)

    left = folded(0)
    left.merge(folded(1))
    left.merge(folded(2))
    tail = folded(1)
    tail.merge(folded(2))
    right = folded(0)
    right.merge(tail)
    same(left, right)


def test_merge_refuses_another_model_version(baseline: BaselineProfile) -> None:
    other = Summary("churn", 2, "champion", 0)
    with pytest.raises(ValueError, match="their baselines differ"):
        fold([], baseline).merge(other)


def test_merge_refuses_counts_on_other_bins(baseline: BaselineProfile) -> None:
    mine = fold(rows([(30.0, 1.0, "Oslo")]), baseline)
    theirs = Summary.from_payload(mine.to_payload())
    state = theirs.features["age"]
    assert isinstance(state, NumericSummary)
    state.edges_id = "0" * 16
    with pytest.raises(ValueError, match="different bins"):
        mine.merge(theirs)


def test_merge_adds_binned_and_unbinned_parts(baseline: BaselineProfile) -> None:
    binned = fold(rows([(30.0, 1.0, "Oslo")]), baseline)
    binned.merge(fold(rows([(50.0, 1.0, "Oslo")]), None))
    age = numeric(binned, "age")
    assert (age.count, age.binned, age.mean) == (2, 1, 40.0)


def test_merge_refuses_a_feature_of_another_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        fold([record({"x": 1.0})], None).merge(fold([record({"x": "a"})], None))


# --- payload ----------------------------------------------------------------------------------


def test_payload_round_trips_through_strict_json(baseline: BaselineProfile) -> None:
    summary = fold(
        rows([(30.0, 1.0, "Oslo"), (math.inf, None, "Paris"), (None, 2.0, None)]), baseline
    )
    summary.count_errors(2)
    text = json.dumps(summary.to_payload(), allow_nan=False)
    again = Summary.from_payload(json.loads(text))
    assert again.to_payload() == summary.to_payload()
    assert again.key == summary.key


def test_payload_of_a_column_without_finite_values_has_null_extremes() -> None:
    payload = fold([record({"x": math.inf})], None).to_payload()
    assert payload["payload_version"] == PAYLOAD_VERSION
    assert (payload["features"]["x"]["min"], payload["features"]["x"]["max"]) == (None, None)


@pytest.mark.parametrize("version", [None, 0, PAYLOAD_VERSION + 1])
def test_from_payload_refuses_unknown_payload_versions(version: int | None) -> None:
    payload = fold([], None).to_payload() | {"payload_version": version}
    with pytest.raises(ValueError, match="payload_version"):
        Summary.from_payload(payload)


def test_from_payload_names_a_missing_key() -> None:
    payload = fold([], None).to_payload()
    del payload["latency"]
    with pytest.raises(ValueError, match="'latency'"):
        Summary.from_payload(payload)


def test_a_rebuilt_summary_keeps_folding_with_its_baseline(baseline: BaselineProfile) -> None:
    first = fold(rows([(30.0, 1.0, "Oslo")]), baseline)
    again = Summary.from_payload(first.to_payload(), baseline)
    again.fold(rows([(50.0, 1.0, "Rome")]))
    age = numeric(again, "age")
    assert (age.count, age.binned) == (2, 2)


# --- columns handed by serving ---------------------------------------------------------------


LEVELS = ("Oslo", "Rome", "Lima")  # Quito is not among them: its rows are read from the record
LAYOUT = ColumnLayout(("age", "income"), ("city",), (LEVELS,))  # shared, as serving's validator


def served(records: list[PredictionRecord], layout: ColumnLayout = LAYOUT) -> LoggedRequest:
    """One request's records with its features column-wise, as serving's validator hands them."""
    numbers = np.array(
        [[r.features[n] for n in layout.numeric] for r in records], dtype=np.float64
    ).reshape(len(records), len(layout.numeric))
    codes = np.array(
        [[code(r.features[n]) for n in layout.categorical] for r in records], dtype=np.int64
    ).reshape(len(records), len(layout.categorical))
    return LoggedRequest(records, FeatureColumns(layout, numbers, codes))


def code(value: Any) -> int:
    return MISSING if value is None else LEVELS.index(value) if value in LEVELS else UNLISTED


REQUESTS = st.lists(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-50.0, 150.0)),
            st.one_of(st.none(), st.floats(0.0, 1e6)),
            st.one_of(st.none(), st.sampled_from(["Oslo", "Rome", "Lima", "Quito"])),
        ),
        min_size=1,
        max_size=3,
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(requests=REQUESTS, with_baseline=st.booleans(), shared_layout=st.booleans())
def test_folding_served_columns_equals_folding_the_records_dicts(
    baseline: BaselineProfile,
    requests: list[list[tuple[Any, Any, Any]]],
    with_baseline: bool,
    shared_layout: bool,
) -> None:
    # Without a baseline, a city that is always missing shows no kind in the records; serving's
    # columns say categorical. Both count it as missing; only the payload's kind differs.
    assume(with_baseline or any(c is not None for request in requests for _, _, c in request))
    profile = baseline if with_baseline else None
    layouts = [LAYOUT if shared_layout else ColumnLayout(*astuple(LAYOUT)) for _ in requests]
    by_request = [
        served(request_rows(values), layout)
        for values, layout in zip(requests, layouts, strict=True)
    ]
    from_columns = SummaryFolder(lambda model, version: profile)
    from_records = SummaryFolder(lambda model, version: profile)

    from_columns.fold_requests(by_request)
    from_records.fold([r for request in by_request for r in request.records])

    payloads = [
        {key: s.to_payload() for key, s in folder.take_dirty().items()}
        for folder in (from_columns, from_records)
    ]
    assert payloads[0] == payloads[1]


def test_requests_of_two_layouts_in_one_batch_fold_like_their_records(
    baseline: BaselineProfile,
) -> None:
    without_income = ColumnLayout(("age",), ("city",), (LEVELS,))
    pair = [record({"age": 30.0, "city": "Quito"}), record({"age": 31.0, "city": "Rome"}, row=1)]
    requests = [
        served(rows([(40.0 + i, 2.0, "Quito")])) if i % 2 == 0 else served(pair, without_income)
        for i in range(6)
    ]
    from_columns = SummaryFolder(lambda model, version: baseline)
    from_records = SummaryFolder(lambda model, version: baseline)

    from_columns.fold_requests(requests)
    from_records.fold([r for request in requests for r in request.records])

    (by_columns,) = from_columns.take_dirty().values()
    (by_records,) = from_records.take_dirty().values()
    assert by_columns.to_payload() == by_records.to_payload()
    assert categorical(by_columns, "city").counts == {"Quito": 6, "Rome": 3}
    assert numeric(by_columns, "income").missing == 6


def test_served_columns_are_folded_as_the_baselines_kind(baseline: BaselineProfile) -> None:
    records = [record({"age": 41.0, "income": 20.0, "city": 7.0})]
    request = LoggedRequest(
        records,
        FeatureColumns(
            ColumnLayout(("city",), ("age",), (("41",),)), np.array([[7.0]]), np.array([[0]])
        ),
    )
    folder = SummaryFolder(lambda model, version: baseline)

    folder.fold_requests([request])

    (summary,) = folder.take_dirty().values()
    assert categorical(summary, "city").counts == {"7.0": 1}
    assert numeric(summary, "age").mean == 41.0
    assert numeric(summary, "income").missing == 1  # absent from the columns


def test_fold_requests_groups_by_version_and_hour_and_folds_column_less_ones_by_record(
    baseline: BaselineProfile,
) -> None:
    later = NOON + timedelta(hours=1)
    folder = SummaryFolder(lambda model, version: baseline)

    folder.fold_requests(
        [
            served(rows([(30.0, 1.0, "Oslo")])),
            served([record({"age": 31.0, "income": 1.0, "city": "Oslo"}, when=later)]),
            served([record({"age": 32.0, "income": 1.0, "city": "Oslo"}, version=2)]),
            LoggedRequest(rows([(33.0, 1.0, "Rome"), (34.0, 1.0, "Rome")])),
        ]
    )

    hour = hour_of(NOON)
    dirty = folder.take_dirty()
    assert {key: s.rows for key, s in dirty.items()} == {
        ("churn", 1, "champion", hour): 3,
        ("churn", 1, "champion", hour + 3600): 1,
        ("churn", 2, "champion", hour): 1,
    }
    assert categorical(dirty[("churn", 1, "champion", hour)], "city").counts == {
        "Oslo": 1,
        "Rome": 2,
    }


# --- the folder -------------------------------------------------------------------------------


def test_folder_groups_records_by_version_variant_and_hour(baseline: BaselineProfile) -> None:
    asked: list[tuple[str, int]] = []

    def baseline_for(model: str, version: int) -> BaselineProfile | None:
        asked.append((model, version))
        return baseline if version == 1 else None

    folder = SummaryFolder(baseline_for)
    later = NOON + timedelta(hours=1)
    folder.fold(
        [
            record({"age": 1.0}),
            record({"age": 2.0}, when=later),
            record({"age": 3.0}, variant="canary"),
            record({"age": 4.0}, version=2),
            record({"age": 5.0}),
        ]
    )
    dirty = folder.take_dirty()
    hour = hour_of(NOON)
    assert {key: s.rows for key, s in dirty.items()} == {
        ("churn", 1, "champion", hour): 2,
        ("churn", 1, "champion", hour + 3600): 1,
        ("churn", 1, "canary", hour): 1,
        ("churn", 2, "champion", hour): 1,
    }
    assert sorted(asked) == [("churn", 1), ("churn", 2)]  # once per version
    assert numeric(dirty[("churn", 2, "champion", hour)], "age").bins is None


def test_take_dirty_returns_only_summaries_changed_since_the_last_call() -> None:
    folder = SummaryFolder(lambda model, version: None)
    folder.fold([record({"x": 1.0})])
    folder.fold([record({"x": 1.0}, variant="canary")])
    assert len(folder.take_dirty()) == 2
    assert folder.take_dirty() == {}
    folder.count_error("churn", 1, "champion", NOON)
    (summary,) = folder.take_dirty().values()
    assert (summary.rows, summary.errors, summary.requests) == (1, 1, 2)


def test_evict_forgets_hours_before_the_given_one() -> None:
    folder = SummaryFolder(lambda model, version: None)
    folder.fold([record({"x": 1.0}), record({"x": 1.0}, when=NOON + timedelta(hours=2))])
    assert folder.evict(hour_of(NOON) + 3600) == 1
    assert len(folder) == 1
    assert [key[3] for key in folder.take_dirty()] == [hour_of(NOON) + 7200]


def test_hour_of_floors_to_the_hour() -> None:
    assert hour_of(NOON + timedelta(minutes=59, seconds=59)) == hour_of(NOON)
    assert hour_of(NOON.timestamp() + 3600) == hour_of(NOON) + 3600


def test_fold_counts_unhashable_categorical_values_by_their_string() -> None:
    summary = fold([record({"tags": ["a", "b"]}), record({"tags": "a"})], None)
    assert categorical(summary, "tags").counts == {"['a', 'b']": 1, "a": 1}


def test_after_evict_records_of_evicted_hours_are_counted_late_not_folded() -> None:
    folder = SummaryFolder(lambda model, version: None)
    folder.evict(hour_of(NOON))
    folder.fold([record({"x": 1.0}, when=NOON - timedelta(minutes=1)), record({"x": 1.0})])
    folder.count_error("churn", 1, "champion", NOON - timedelta(hours=3), n=2)
    assert folder.late == 3
    assert [s.rows for s in folder.take_dirty().values()] == [1]
