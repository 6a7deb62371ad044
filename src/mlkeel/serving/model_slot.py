"""The models a server answers with: load a version, check that it predicts, swap it in.

A `ModelSlot` holds a reference to one immutable `ServedModel`. A request reads the reference
once, at its start, and uses that object throughout, so it is served wholly by one version.
A swap replaces the reference in one assignment, so the read path needs no lock.

Beside the champion, a slot may hold a canary (answering a share of the requests, routing.py)
and a shadow (receiving a copy of every request off the response path, shadow.py). The three
travel together in one immutable `Lineup`, so a request reads one consistent snapshot.
"""

from __future__ import annotations

import functools
import itertools
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mlkeel.errors import ConfigError
from mlkeel.serving.validation import Rows, Validator

if TYPE_CHECKING:
    from mlkeel.registry import Registry, VersionInfo
    from mlkeel.schema import InputSchema
    from mlkeel.serving.routing import Canary

CHAMPION = "champion"


@dataclass(frozen=True)
class ModelSpec:
    """Which version of a model to serve: the champion, the newest, or a pinned one."""

    name: str
    version: int | None = None
    latest: bool = False

    @classmethod
    def parse(cls, text: str, latest: bool = False) -> ModelSpec:
        """``NAME`` (follow the champion, or the newest with `latest`) or ``NAME@VERSION``."""
        name, sep, version = text.partition("@")
        if not name or (sep and not version.isdigit()):
            raise ConfigError(f"--model {text!r} must be NAME or NAME@VERSION, e.g. churn@3")
        return cls(name, int(version) if sep else None, latest and not sep)

    @property
    def follows(self) -> str:
        if self.version is not None:
            return f"version {self.version} (pinned)"
        return "the newest version" if self.latest else f"the {CHAMPION!r} alias"

    def target(self, registry: Registry) -> VersionInfo:
        """The version this spec points at now (a blocking registry call)."""
        if self.version is not None:
            return registry.version(self.name, self.version)
        if self.latest:
            return registry.latest(self.name)
        return registry.resolve(self.name, CHAMPION)


@dataclass(frozen=True, slots=True)
class Outputs:
    """One request's share of a predict call, as JSON-ready Python values."""

    predictions: list[Any]
    probabilities: list[dict[str, float]] | None


@dataclass(frozen=True, eq=False)
class ServedModel:
    """One loaded model version, ready to answer; never changed once built."""

    info: VersionInfo
    model: Any
    schema: InputSchema
    validator: Validator
    labels: tuple[str, ...] | None  # probability keys, when the model has predict_proba
    wants_frame: bool  # gets a DataFrame: fitted on one, and answers an array differently
    loaded_at: float
    # A classifier whose label is the class of highest probability answers from one
    # predict_proba call instead of predict + predict_proba: half the model time (measured:
    # random forest, one row, 9.1 -> 4.6 ms of CPU). Decided at load (`_argmax_agrees`).
    classes: Any = None

    @property
    def name(self) -> str:
        return self.info.name

    @functools.cached_property
    def _frame_columns(self) -> Any:
        """The input frame's column labels, built once and of object dtype: with the string
        dtype pandas 3 infers from a list, sklearn's feature-name checks cost ~0.1 ms more a
        call (measured, one row: LR pipeline 635 -> 494 µs, random forest 3.28 -> 3.17 ms)."""
        import pandas as pd

        return pd.Index(self.validator.names, dtype=object)

    @property
    def version(self) -> int:
        return self.info.version

    def predict(self, batch: Sequence[Rows]) -> list[Outputs]:
        """Predict all requests' rows in one call and split the answers back. Blocking."""
        features = self._input(batch)
        probabilities: list[dict[str, float]] | None = None
        if self.labels is None:
            predictions = _plain(np.asarray(self.model.predict(features)))
        else:
            labels = self.labels
            matrix = np.asarray(self.model.predict_proba(features), dtype=np.float64)
            probabilities = [dict(zip(labels, row, strict=True)) for row in matrix.tolist()]
            if self.classes is not None:
                predictions = _plain(self.classes[np.argmax(matrix, axis=1)])
            else:
                predictions = _plain(np.asarray(self.model.predict(features)))
        outputs, start = [], 0
        for rows in batch:
            end = start + rows.count
            shares = probabilities[start:end] if probabilities is not None else None
            outputs.append(Outputs(predictions[start:end], shares))
            start = end
        return outputs

    def _input(self, batch: Sequence[Rows]) -> Any:
        import pandas as pd

        names = self.validator.names
        if self.validator.numeric_only:
            matrices = [rows.matrix for rows in batch if rows.matrix is not None]
            matrix = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
            # One float block: 5-20x faster to build than from records (measured, 30 columns).
            if not self.wants_frame:
                return matrix
            return pd.DataFrame(matrix, columns=self._frame_columns, copy=False)
        parts = [rows.columns for rows in batch if rows.columns is not None]
        columns = (
            parts[0]
            if len(parts) == 1
            else [_concat(pieces) for pieces in zip(*parts, strict=True)]
        )
        frame = pd.DataFrame(dict(zip(names, columns, strict=True)), copy=False)
        frame.columns = self._frame_columns
        return frame


@dataclass(frozen=True)
class Lineup:
    """The versions one model answers with at one moment; replaced whole, never changed."""

    champion: ServedModel | None = None
    canary: Canary | None = None
    shadow: ServedModel | None = None


class ModelSlot:
    """One configured model: the versions it serves, if any, and why not when not."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.lineup = Lineup()
        self.problem: str | None = "not loaded yet"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def served(self) -> ServedModel | None:
        """The champion (or the pinned or newest version the spec follows)."""
        return self.lineup.champion

    def swap(self, served: ServedModel) -> ServedModel | None:
        """Serve `served` from now on; return the version it replaces."""
        previous = self.lineup.champion
        self.lineup, self.problem = replace(self.lineup, champion=served), None
        return previous

    def set_canary(self, canary: Canary | None) -> None:
        self.lineup = replace(self.lineup, canary=canary)

    def set_shadow(self, shadow: ServedModel | None) -> None:
        self.lineup = replace(self.lineup, shadow=shadow)


def load_served(
    registry: Registry, name: str, version: int, max_rows: int, max_string: int = 1024
) -> ServedModel:
    """Load `version` and check that it predicts its own schema's examples. Blocking.

    Anything that fails here (a digest mismatch, a model that cannot unpickle or predict)
    raises, so the version is never swapped in.
    """
    loaded = registry.load(name, version)
    model, schema = loaded.model, loaded.schema
    validator = Validator(schema, max_rows, max_string)
    labels = None
    if schema.target.task == "classification" and hasattr(model, "predict_proba"):
        classes = getattr(model, "classes_", None)
        classes = schema.target.classes if classes is None else list(classes)
        labels = tuple(str(label) for label in classes or [])
    served = ServedModel(
        loaded.info,
        model,
        schema,
        validator,
        labels or None,
        hasattr(model, "feature_names_in_"),
        time.time(),
    )
    if schema.examples:
        examples = [validator.records(schema.examples, "examples")]
        served.predict(examples)
        if labels and _argmax_agrees(served, examples):
            served = replace(served, classes=np.asarray(model.classes_))
        if served.wants_frame and _feeds_arrays(served, examples):
            served = replace(served, wants_frame=False)
    return served


def _feeds_arrays(served: ServedModel, examples: list[Rows]) -> bool:
    """Make an all-numeric model fitted on a DataFrame take a float array of the same columns,
    if it then answers the examples as it answered their frame; return whether it does.

    sklearn's DataFrame checks cost ~0.3 ms a call, a fifth of an overhead-bound request
    (measured, one row: LR pipeline 494 -> 167 µs, random forest 3.23 -> 2.86 ms). The model
    forgets the column names its first step was fitted with, so sklearn does not warn about
    an array; one that needs them (selects columns by name, passes the frame on) raises,
    warns or answers differently, and gets its names back and keeps the frame.
    """
    model, validator = served.model, served.validator
    if not validator.numeric_only:
        return False
    if list(getattr(model, "feature_names_in_", ())) != validator.names:
        return False
    first = _first_step(model)
    if "feature_names_in_" not in vars(first):
        return False
    frame, array = served._input(examples), replace(served, wants_frame=False)._input(examples)
    methods = _outputs(model)
    expected = [getattr(model, method)(frame) for method in methods]
    names = first.__dict__.pop("feature_names_in_")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = [getattr(model, method)(array) for method in methods]
        if not caught and all(map(_same, expected, got)):
            return True
    except Exception:  # any failure on the array: the model needs the frame
        pass
    first.feature_names_in_ = names
    return False


def _first_step(model: Any) -> Any:
    """The estimator that first sees the input: a pipeline's first step, recursively."""
    while hasattr(model, "steps"):
        model = model.steps[0][1]
    return model


def _same(expected: Any, got: Any) -> bool:
    """Equal labels; floats equal but for the last bits (an array's memory layout can change
    the order of a dot product's additions)."""
    expected, got = np.asarray(expected), np.asarray(got)
    if expected.dtype.kind == "f" and got.dtype.kind == "f":
        return bool(np.allclose(expected, got, rtol=1e-9, atol=1e-12, equal_nan=True))
    return bool(np.array_equal(expected, got))


def _outputs(model: Any) -> list[str]:
    return ["predict", "predict_proba"] if hasattr(model, "predict_proba") else ["predict"]


# Classifiers whose predict applies a tuned threshold or its own decision function rather
# than the most probable class: they keep predict + predict_proba.
OWN_DECISION = frozenset({"FixedThresholdClassifier", "TunedThresholdClassifierCV", "SVC", "NuSVC"})


def _argmax_agrees(served: ServedModel, examples: list[Rows]) -> bool:
    """Whether the model's label is its most probable class, so one call answers both."""
    model = served.model
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if type(final).__name__ in OWN_DECISION or getattr(model, "classes_", None) is None:
        return False
    features = served._input(examples)
    derived = np.asarray(model.classes_)[np.argmax(model.predict_proba(features), axis=1)]
    return bool(np.array_equal(derived, np.asarray(model.predict(features))))


def _concat(pieces: Sequence[Any]) -> Any:
    if isinstance(pieces[0], np.ndarray):
        return np.concatenate(pieces)
    return list(itertools.chain.from_iterable(pieces))


def _plain(values: np.ndarray[Any, Any]) -> list[Any]:
    """Predictions as JSON-ready Python values; a non-finite float becomes None."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        return [float(v) if np.isfinite(v) else None for v in values.ravel()]
    return list(values.tolist())
