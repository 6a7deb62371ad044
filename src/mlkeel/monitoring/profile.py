"""The baseline profile: what the training data and the model's predictions on it looked like.

It is captured at training time and stored as JSON next to each model version; the monitor
compares production summaries against it (counts on the same bins, category frequencies).

JSON layout (``schema_version`` 1)::

    {"schema_version": 1, "created_at": "2025-01-01T00:00:00+00:00", "rows": 3,
     "features": {
        "age": {"kind": "numeric", "count": 2, "missing": 1, "mean": 35.0, "std": 5.0,
                "min": 30.0, "max": 40.0, "quantiles": {"p01": 30.1, ..., "p99": 39.9},
                "edges": ["-inf", 35.0, "inf"], "counts": [1, 1],
                "fine_edges": ["-inf", 32.0, 35.0, 38.0, "inf"], "fine_counts": [1, 0, 0, 1]},
        "city": {"kind": "categorical", "count": 3, "missing": 0,
                 "frequencies": {"Oslo": 2, "Rome": 1}, "other": 0}},
     "prediction": {"kind": "numeric", ...}}

``count`` is the number of non-missing values and ``missing`` the number of NaN/None, so
``count + missing == rows``. The outer bin edges are infinite and are written as the strings
``"-inf"`` and ``"inf"`` (standard JSON has no infinity; a string cannot be mistaken for a
missing value, as ``null`` could). ``mean``/``std``/``min``/``max`` are ``null`` and
``quantiles`` is empty when a numeric column has no finite value.

``fine_edges``/``fine_counts`` are the monitoring bins: 100 quantile bins of the same sample
(same conventions as ``edges``), always including every decile edge of ``edges``, so counts on
the fine bins add up exactly to counts on the deciles. Profiles written before they existed
load with both empty, and both are left empty (and out of the JSON) when they would equal
``edges``/``counts`` (a constant or tiny column); the monitor then bins on ``edges``/``counts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from mlkeel.monitoring.stats import quantile_edges, sorted_histogram

if TYPE_CHECKING:  # pandas only to build profiles (training), not to read them
    import pandas as pd

SCHEMA_VERSION = 1
BINS = 10
FINE_BINS = 100
MAX_CATEGORIES = 200
QUANTILES: dict[str, float] = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}

FeatureKind = Literal["numeric", "categorical"]


def feature_kind(dtype: Any) -> FeatureKind:
    """Return "numeric" iff the dtype is numeric and not boolean; everything else is categorical.

    The one rule for the whole package: summaries and the monitor must classify columns alike.
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return "numeric" if is_numeric_dtype(dtype) and not is_bool_dtype(dtype) else "categorical"


@dataclass(frozen=True)
class NumericProfile:
    """A numeric column: moments and quantiles over finite values, counts on quantile bins."""

    kind: Literal["numeric"] = field(default="numeric", init=False)
    count: int
    missing: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    quantiles: dict[str, float]
    edges: list[float]
    counts: list[int]
    fine_edges: list[float] = field(default_factory=list)  # empty in older profiles
    fine_counts: list[int] = field(default_factory=list)

    @property
    def monitoring_edges(self) -> list[float]:
        """The bins production summaries count on: ``fine_edges``, else ``edges``."""
        return self.fine_edges if self.fine_edges else self.edges

    @property
    def monitoring_counts(self) -> list[int]:
        """The baseline's counts on ``monitoring_edges``."""
        return self.fine_counts if self.fine_edges else self.counts

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe dict; infinite edges become "-inf"/"inf"."""
        document: dict[str, Any] = {
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "quantiles": dict(self.quantiles),
            "edges": [_edge_to_json(edge) for edge in self.edges],
            "counts": list(self.counts),
        }
        if self.fine_edges:
            document["fine_edges"] = [_edge_to_json(edge) for edge in self.fine_edges]
            document["fine_counts"] = list(self.fine_counts)
        return document

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericProfile:
        """Rebuild a profile written by ``to_dict``."""
        edges = [_edge_from_json(edge) for edge in data["edges"]]
        counts = [int(c) for c in data["counts"]]
        if len(counts) != len(edges) - 1:
            raise ValueError(
                f"a numeric profile needs one count per bin: {len(edges)} edges "
                f"but {len(counts)} counts"
            )
        fine_edges = [_edge_from_json(edge) for edge in data.get("fine_edges", [])]
        fine_counts = [int(c) for c in data.get("fine_counts", [])]
        if fine_edges and len(fine_counts) != len(fine_edges) - 1:
            raise ValueError(
                f"a numeric profile needs one fine count per fine bin: {len(fine_edges)} "
                f"fine edges but {len(fine_counts)} fine counts"
            )
        return cls(
            count=int(data["count"]),
            missing=int(data["missing"]),
            mean=_optional_float(data["mean"]),
            std=_optional_float(data["std"]),
            min=_optional_float(data["min"]),
            max=_optional_float(data["max"]),
            quantiles={str(k): float(v) for k, v in data["quantiles"].items()},
            edges=edges,
            counts=counts,
            fine_edges=fine_edges,
            fine_counts=fine_counts,
        )


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical column: counts of its most frequent values (as strings) and the rest."""

    kind: Literal["categorical"] = field(default="categorical", init=False)
    count: int
    missing: int
    frequencies: dict[str, int]
    other: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe dict."""
        return {
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "frequencies": dict(self.frequencies),
            "other": self.other,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalProfile:
        """Rebuild a profile written by ``to_dict``."""
        return cls(
            count=int(data["count"]),
            missing=int(data["missing"]),
            frequencies={str(k): int(v) for k, v in data["frequencies"].items()},
            other=int(data["other"]),
        )


FeatureProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class BaselineProfile:
    """The training baseline of one model version: every feature and the predictions."""

    rows: int
    features: dict[str, FeatureProfile]
    prediction: FeatureProfile
    created_at: str
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Return a dict that ``json.dumps`` accepts as is (no NaN, no infinity)."""
        return {
            "schema_version": self.schema_version,
            "created_at": self.created_at,
            "rows": self.rows,
            "features": {name: prof.to_dict() for name, prof in self.features.items()},
            "prediction": self.prediction.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineProfile:
        """Rebuild a profile from ``to_dict`` output; refuse schema versions we do not know."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"baseline profile has schema_version {version!r}; this mlkeel supports "
                f"schema_version {SCHEMA_VERSION}. Upgrade mlkeel to read newer profiles, "
                "or rebuild the profile by retraining the model version"
            )
        try:
            return cls(
                rows=int(data["rows"]),
                features={str(k): _feature_from_dict(v) for k, v in data["features"].items()},
                prediction=_feature_from_dict(data["prediction"]),
                created_at=str(data["created_at"]),
                schema_version=SCHEMA_VERSION,
            )
        except KeyError as exc:
            raise ValueError(f"baseline profile lacks the key {exc.args[0]!r}") from exc


def build_profile(
    frame: pd.DataFrame,
    predictions: npt.ArrayLike,
    *,
    created_at: datetime | None = None,
) -> BaselineProfile:
    """Profile the training features and the model's predictions on them.

    Predictions are numeric (regression, positive-class probability) or categorical (class
    labels) by the same rule as columns, applied to the array's dtype.
    """
    labels = np.asarray(predictions)
    if labels.ndim != 1 or labels.shape[0] != len(frame):
        raise ValueError(
            f"predictions must be 1-D with one value per row ({len(frame)}), got shape "
            f"{labels.shape}; for predict_proba output pass the positive-class column"
        )
    names = [str(column) for column in frame.columns]
    if len(set(names)) != len(names):
        raise ValueError(f"column names must be unique as strings, got {names}")
    features = {
        name: profile_column(frame.iloc[:, position]) for position, name in enumerate(names)
    }
    moment = created_at or datetime.now(UTC)
    return BaselineProfile(
        rows=len(frame),
        features=features,
        prediction=profile_column(_series(labels)),
        created_at=moment.isoformat(),
    )


def _series(values: Any) -> pd.Series:
    import pandas as pd

    return pd.Series(values)


def profile_column(column: pd.Series) -> FeatureProfile:
    """Profile one column, numeric or categorical by ``feature_kind`` of its dtype."""
    if feature_kind(column.dtype) == "numeric":
        return _numeric_profile(column.to_numpy(dtype=np.float64, na_value=np.nan))
    return _categorical_profile(column)


def _numeric_profile(values: npt.NDArray[np.float64]) -> NumericProfile:
    # One sort, then every quantile and histogram reads the sorted array (~6x faster at 1M).
    present = np.sort(values[~np.isnan(values)])
    finite = present[np.isfinite(present)]
    edges = quantile_edges(finite, BINS)
    counts = sorted_histogram(present, edges)
    # The deciles' edges are merged in (linspace levels can differ by an ulp: 3 * 0.1 is not
    # 0.3), so the monitor rebuilds decile counts exactly by summing fine bins.
    fine_edges = np.union1d(quantile_edges(finite, FINE_BINS), edges)
    fine_counts = sorted_histogram(present, fine_edges)
    if fine_edges.size == edges.size:  # nothing finer than the deciles: keep one copy
        fine_edges, fine_counts = fine_edges[:0], fine_counts[:0]
    if finite.size == 0:
        return NumericProfile(
            count=int(present.size),
            missing=int(values.size - present.size),
            mean=None,
            std=None,
            min=None,
            max=None,
            quantiles={},
            edges=edges.tolist(),
            counts=counts.tolist(),
            fine_edges=fine_edges.tolist(),
            fine_counts=fine_counts.tolist(),
        )
    levels = np.quantile(finite, list(QUANTILES.values()))
    return NumericProfile(
        count=int(present.size),
        missing=int(values.size - present.size),
        mean=float(finite.mean()),
        std=float(finite.std()),
        min=float(finite.min()),
        max=float(finite.max()),
        quantiles={name: float(level) for name, level in zip(QUANTILES, levels, strict=True)},
        edges=edges.tolist(),
        counts=counts.tolist(),
        fine_edges=fine_edges.tolist(),
        fine_counts=fine_counts.tolist(),
    )


def _categorical_profile(column: pd.Series) -> CategoricalProfile:
    present = column[column.notna()]
    if present.dtype == object:
        # Hashing merges 1, 1.0 and True; convert first so each keeps its own str().
        present = present.astype(str)
    tallies: dict[str, int] = {}
    for value, n in present.value_counts(sort=False).items():
        if n > 0:
            key = str(value)
            tallies[key] = tallies.get(key, 0) + int(n)
    ranked = sorted(tallies.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[:MAX_CATEGORIES])
    return CategoricalProfile(
        count=len(present),
        missing=len(column) - len(present),
        frequencies=kept,
        other=sum(n for _, n in ranked[MAX_CATEGORIES:]),
    )


def _feature_from_dict(data: Mapping[str, Any]) -> FeatureProfile:
    kind = data.get("kind")
    if kind == "numeric":
        return NumericProfile.from_dict(data)
    if kind == "categorical":
        return CategoricalProfile.from_dict(data)
    raise ValueError(f"unknown feature kind {kind!r}; expected 'numeric' or 'categorical'")


def _edge_to_json(edge: float) -> float | str:
    if np.isinf(edge):
        return "inf" if edge > 0 else "-inf"
    return edge


def _edge_from_json(edge: float | str) -> float:
    if isinstance(edge, str) and edge not in ("inf", "-inf"):
        raise ValueError(f"bin edge {edge!r} is not a number, 'inf' or '-inf'")
    return float(edge)


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)
