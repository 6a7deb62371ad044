"""One logged prediction, and the interface serving hands predictions to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

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


class PredictionSink(Protocol):
    """Where serving hands finished predictions. ``submit`` must be O(1) and never raise."""

    def submit(self, records: Sequence[PredictionRecord]) -> None: ...


class DiscardSink:
    """The sink used when no prediction log is configured."""

    def submit(self, records: Sequence[PredictionRecord]) -> None:
        return None
