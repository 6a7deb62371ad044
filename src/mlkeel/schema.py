"""The input schema saved with every model version: what serving will accept.

Captured from the training features: names and order, kinds, the categories seen, the observed
ranges and whether missing values occurred, plus a few example rows (for smoke tests and the
load tester). Persisted as JSON beside the model, with a schema version so old files still load.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlkeel.metrics import Task

SCHEMA_VERSION = 1
MAX_CATEGORIES = 1000
EXAMPLE_ROWS = 5

Kind = Literal["numeric", "categorical"]
Dtype = Literal["int", "float", "bool", "str"]


def column_kind(dtype: Any) -> Kind:
    """Numeric columns get moments and histograms; everything else (bool too) is categorical."""
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    return "numeric" if numeric else "categorical"


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Kind
    dtype: Dtype
    nullable: bool
    minimum: float | None = None
    maximum: float | None = None
    categories: list[str] | None = None


@dataclass(frozen=True)
class TargetSpec:
    name: str
    task: Task
    classes: list[Any] | None = None


@dataclass(frozen=True)
class InputSchema:
    features: list[FeatureSpec]
    target: TargetSpec
    examples: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    @property
    def names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSchema:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"input schema version {version!r} is not supported; this mlkeel reads "
                f"version {SCHEMA_VERSION}: upgrade mlkeel or retrain the model"
            )
        return cls(
            features=[FeatureSpec(**feature) for feature in data["features"]],
            target=TargetSpec(**data["target"]),
            examples=list(data.get("examples", [])),
        )


def infer_schema(features: pd.DataFrame, target: pd.Series, task: Task) -> InputSchema:
    """The schema of the training features `features` with labels `target`."""
    specs = [_feature_spec(str(name), features[name]) for name in features.columns]
    classes = None
    if task == "classification":
        classes = [_plain(value) for value in sorted(pd.unique(target.dropna()))]
    examples = [
        {str(key): _plain(value) for key, value in row.items()}
        for row in features.head(EXAMPLE_ROWS).to_dict(orient="records")
    ]
    return InputSchema(specs, TargetSpec(str(target.name), task, classes), examples)


def _feature_spec(name: str, column: pd.Series) -> FeatureSpec:
    nullable = bool(column.isna().any())
    if column_kind(column.dtype) == "numeric":
        values = column.to_numpy(dtype=float, na_value=np.nan)
        finite = values[np.isfinite(values)]
        dtype: Dtype = "int" if pd.api.types.is_integer_dtype(column.dtype) else "float"
        return FeatureSpec(
            name,
            "numeric",
            dtype,
            nullable,
            minimum=float(finite.min()) if finite.size else None,
            maximum=float(finite.max()) if finite.size else None,
        )
    dtype = "bool" if pd.api.types.is_bool_dtype(column.dtype) else "str"
    seen = column.dropna().astype(str).value_counts()
    categories = sorted(seen.index[:MAX_CATEGORIES]) if len(seen) <= MAX_CATEGORIES else None
    return FeatureSpec(name, "categorical", dtype, nullable, categories=categories)


def _plain(value: Any) -> Any:
    """A JSON-safe Python scalar (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
