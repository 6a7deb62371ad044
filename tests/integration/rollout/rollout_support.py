"""Helpers for the rollout tests: a deterministically failing model, traffic, a checker."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np


def row_bucket(values: Any) -> float:
    data = np.ascontiguousarray(np.asarray(values, dtype=np.float64)).tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") / 2**64 * 100


class Flaky:
    """Wraps a fitted model; raises for the rows whose hash falls in the first `share` percent
    (never for the `spared` rows, the schema's examples, so it passes the load check)."""

    def __init__(self, inner: Any, share: float, spared: list[list[float]]) -> None:
        self.inner = inner
        self.share = share
        self.spared = {np.asarray(row, dtype=np.float64).tobytes() for row in spared}

    @property
    def classes_(self) -> Any:
        return self.inner.classes_

    @property
    def feature_names_in_(self) -> Any:
        return self.inner.feature_names_in_

    def fails(self, row: Any) -> bool:
        key = np.asarray(row, dtype=np.float64).tobytes()
        return key not in self.spared and row_bucket(row) < self.share

    def _check(self, features: Any) -> None:
        for row in np.asarray(features, dtype=np.float64):
            if self.fails(row):
                raise RuntimeError("flaky canary: this row always fails")

    def predict(self, features: Any) -> Any:
        self._check(features)
        return self.inner.predict(features)

    def predict_proba(self, features: Any) -> Any:
        self._check(features)
        return self.inner.predict_proba(features)


@contextmanager
def every(seconds: float, job: Callable[[], object]) -> Iterator[list[BaseException]]:
    """Run `job` every `seconds` in a thread (a stand-in for the scheduler); errors collected."""
    stop, errors = threading.Event(), []

    def loop() -> None:
        while not stop.wait(seconds):
            try:
                job()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        stop.set()
        thread.join(30)
