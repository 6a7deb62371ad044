"""Baseline profiles: column kinds, missing values, JSON round trip and schema versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlkeel.monitoring.profile import (
    SCHEMA_VERSION,
    BaselineProfile,
    CategoricalProfile,
    NumericProfile,
    build_profile,
    feature_kind,
    profile_column,
)

# A version-1 profile exactly as an earlier mlkeel wrote it: it must keep loading.
PROFILE_V1: dict[str, Any] = {
    "schema_version": 1,
    "created_at": "2025-01-01T00:00:00+00:00",
    "rows": 4,
    "features": {
        "age": {
            "kind": "numeric",
            "count": 3,
            "missing": 1,
            "mean": 30.0,
            "std": 8.16496580927726,
            "min": 20.0,
            "max": 40.0,
            "quantiles": {
                "p01": 20.2,
                "p05": 21.0,
                "p25": 25.0,
                "p50": 30.0,
                "p75": 35.0,
                "p95": 39.0,
                "p99": 39.8,
            },
            "edges": ["-inf", 26.0, 34.0, "inf"],
            "counts": [1, 1, 1],
        },
        "city": {
            "kind": "categorical",
            "count": 4,
            "missing": 0,
            "frequencies": {"Oslo": 3, "Rome": 1},
            "other": 0,
        },
    },
    "prediction": {
        "kind": "categorical",
        "count": 4,
        "missing": 0,
        "frequencies": {"yes": 2, "no": 2},
        "other": 0,
    },
}


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [20.0, 30.0, np.nan, 40.0],
            "visits": [1, 2, 3, 4],
            "city": ["Oslo", "Rome", None, "Oslo"],
            "member": [True, False, True, True],
        }
    )


@pytest.mark.parametrize(
    ("series", "kind"),
    [
        (pd.Series([1, 2]), "numeric"),
        (pd.Series([1.5, np.nan]), "numeric"),
        (pd.Series([1, None], dtype="Int64"), "numeric"),
        (pd.Series(["a", "b"]), "categorical"),
        (pd.Series(["a", 1], dtype=object), "categorical"),
        (pd.Series(["a", "b"], dtype="category"), "categorical"),
        (pd.Series([True, False]), "categorical"),
        (pd.Series([True, None], dtype="boolean"), "categorical"),
    ],
)
def test_feature_kind_is_numeric_only_for_non_bool_numeric_dtypes(
    series: pd.Series, kind: str
) -> None:
    assert feature_kind(series.dtype) == kind
    assert profile_column(series).kind == kind


def test_build_profile_detects_numeric_and_categorical_columns(frame: pd.DataFrame) -> None:
    profile = build_profile(frame, np.zeros(len(frame)))
    kinds = {name: feature.kind for name, feature in profile.features.items()}
    assert kinds == {
        "age": "numeric",
        "visits": "numeric",
        "city": "categorical",
        "member": "categorical",
    }
    assert profile.rows == 4


def test_build_profile_counts_missing_values(frame: pd.DataFrame) -> None:
    profile = build_profile(frame, np.zeros(len(frame)))
    age, city = profile.features["age"], profile.features["city"]
    assert (age.count, age.missing) == (3, 1)
    assert (city.count, city.missing) == (3, 1)


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([None, "a", np.nan], dtype=object),
        pd.Series(["a", None, None]),
        pd.Series([1, None, None], dtype="Int64"),
        pd.Series([1.0, np.nan, np.nan]),
    ],
)
def test_none_nan_and_na_all_count_as_missing(series: pd.Series) -> None:
    profile = profile_column(series)
    assert (profile.count, profile.missing) == (1, 2)


def test_numeric_profile_holds_moments_quantiles_and_bin_counts(frame: pd.DataFrame) -> None:
    age = build_profile(frame, np.zeros(len(frame))).features["age"]
    assert isinstance(age, NumericProfile)
    assert (age.mean, age.min, age.max) == (30.0, 20.0, 40.0)
    assert age.std == pytest.approx(np.std([20.0, 30.0, 40.0]))
    assert list(age.quantiles) == ["p01", "p05", "p25", "p50", "p75", "p95", "p99"]
    assert age.quantiles["p50"] == 30.0
    assert age.edges[0] == -np.inf
    assert age.edges[-1] == np.inf
    assert len(age.counts) == len(age.edges) - 1
    assert sum(age.counts) == age.count


def test_bool_column_is_categorical_with_string_values(frame: pd.DataFrame) -> None:
    member = build_profile(frame, np.zeros(len(frame))).features["member"]
    assert member == CategoricalProfile(
        count=4, missing=0, frequencies={"True": 3, "False": 1}, other=0
    )


def test_object_column_keeps_each_values_own_string() -> None:
    profile = profile_column(pd.Series([1, 1.0, True, "1"], dtype=object))
    assert isinstance(profile, CategoricalProfile)
    assert profile.frequencies == {"1": 2, "1.0": 1, "True": 1}


def test_categorical_profile_keeps_200_most_frequent_and_counts_the_rest_as_other() -> None:
    values = [f"c{i:03d}" for i in range(250) for _ in range(1 + (i < 10))]
    profile = profile_column(pd.Series(values))
    assert isinstance(profile, CategoricalProfile)
    assert len(profile.frequencies) == 200
    assert list(profile.frequencies)[:10] == [f"c{i:03d}" for i in range(10)]
    assert profile.other == 50
    assert sum(profile.frequencies.values()) + profile.other == profile.count


def test_all_missing_numeric_column_has_no_moments_and_one_bin() -> None:
    profile = profile_column(pd.Series([np.nan, np.nan]))
    assert profile == NumericProfile(
        count=0,
        missing=2,
        mean=None,
        std=None,
        min=None,
        max=None,
        quantiles={},
        edges=[-np.inf, np.inf],
        counts=[0],
    )


@pytest.mark.parametrize(
    ("predictions", "kind"),
    [
        (np.array([0.1, 0.9, 0.4, 0.7]), "numeric"),
        (np.array(["yes", "no", "no", "yes"]), "categorical"),
        (np.array([True, False, False, True]), "categorical"),
    ],
)
def test_prediction_kind_follows_the_array_dtype(
    frame: pd.DataFrame, predictions: np.ndarray, kind: str
) -> None:
    assert build_profile(frame, predictions).prediction.kind == kind


def test_build_profile_refuses_predictions_of_wrong_shape(frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"one value per row \(4\), got shape \(4, 2\)"):
        build_profile(frame, np.zeros((4, 2)))


def test_build_profile_records_created_at_as_iso_string(frame: pd.DataFrame) -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    profile = build_profile(frame, np.zeros(len(frame)), created_at=moment)
    assert profile.created_at == "2025-01-02T03:04:05+00:00"
    assert datetime.fromisoformat(build_profile(frame, np.zeros(4)).created_at).tzinfo is UTC


def test_profile_round_trips_through_strict_json(frame: pd.DataFrame) -> None:
    profile = build_profile(frame, np.array(["yes", "no", "no", "yes"]))
    text = json.dumps(profile.to_dict(), allow_nan=False)
    assert BaselineProfile.from_dict(json.loads(text)) == profile
    assert json.loads(text)["features"]["age"]["edges"][0] == "-inf"


def test_version_1_profile_still_loads() -> None:
    profile = BaselineProfile.from_dict(PROFILE_V1)
    age = profile.features["age"]
    assert isinstance(age, NumericProfile)
    assert age.edges == [-np.inf, 26.0, 34.0, np.inf]
    assert profile.prediction == CategoricalProfile(
        count=4, missing=0, frequencies={"yes": 2, "no": 2}, other=0
    )
    assert profile.to_dict() == PROFILE_V1


@pytest.mark.parametrize("version", [SCHEMA_VERSION + 1, 0, None])
def test_from_dict_refuses_unknown_schema_version(version: int | None) -> None:
    data = {**PROFILE_V1, "schema_version": version}
    with pytest.raises(
        ValueError, match=rf"schema_version {version}; .* supports schema_version 1"
    ):
        BaselineProfile.from_dict(data)


def test_from_dict_names_a_missing_key() -> None:
    data = {key: value for key, value in PROFILE_V1.items() if key != "rows"}
    with pytest.raises(ValueError, match="lacks the key 'rows'"):
        BaselineProfile.from_dict(data)


def test_from_dict_refuses_unknown_feature_kind() -> None:
    data = {**PROFILE_V1, "prediction": {"kind": "text"}}
    with pytest.raises(ValueError, match="unknown feature kind 'text'"):
        BaselineProfile.from_dict(data)
