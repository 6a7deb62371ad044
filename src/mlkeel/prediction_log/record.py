"""One logged prediction, one served request's worth of them, and the interface serving hands
them to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

RECORD_VERSION = 1

Variant = Literal["champion", "canary", "shadow"]


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One row of one request: its inputs, the model's output, and how it was served."""

    time: datetime
    model: str
    version: int
    variant: Variant
    request_id: str
    row: int
    features: dict[str, Any]
    prediction: Any
    probabilities: dict[str, float] | None
    latency_ms: float
    record_version: int = RECORD_VERSION


# Category codes below 0 (folding shifts codes by 2 to count these two first):
MISSING = -2  # a missing value
UNLISTED = -1  # a value not among its feature's levels: the record holds it


@dataclass(frozen=True, slots=True)
class ColumnLayout:
    """Which features a FeatureColumns block holds, in which order, and what its codes name.
    Serving keeps one per model version, so blocks of one layout share this very object."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]  # per categorical feature, the category of each code


@dataclass(frozen=True, slots=True)
class FeatureColumns:
    """One request's features column-wise, as serving checked them against the input schema.

    Handed to the log beside the request's records so that folding a batch into monitoring
    summaries concatenates arrays instead of reading every row's dict (reading 25 values out
    of each of 1,000 dicts was most of the fold's cost). A categorical value is a code: its
    index in the feature's ``levels`` (the training categories), else ``UNLISTED`` (the value
    is in the record) or ``MISSING``.
    """

    layout: ColumnLayout
    numbers: npt.NDArray[np.float64]  # (rows, len(numeric)), C order; NaN where missing
    codes: npt.NDArray[np.int64]  # (rows, len(categorical)), C order


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """The records of one served request: one per row, all of one model, version, variant
    and time, with the request's features column-wise when serving has them."""

    records: Sequence[PredictionRecord]
    columns: FeatureColumns | None = None


class PredictionSink(Protocol):
    """Where serving hands finished predictions. ``submit`` must be O(1) and never raise."""

    def submit(
        self, records: Sequence[PredictionRecord], columns: FeatureColumns | None = None
    ) -> None: ...


class DiscardSink:
    """The sink used when no prediction log is configured."""

    def submit(
        self, records: Sequence[PredictionRecord], columns: FeatureColumns | None = None
    ) -> None:
        return None
