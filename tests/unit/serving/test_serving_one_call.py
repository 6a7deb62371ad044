"""A classifier whose label is its most probable class answers from one predict_proba call;
one with its own decision rule keeps predict."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier

from mlkeel.registry import VersionInfo
from mlkeel.schema import FeatureSpec, InputSchema, TargetSpec
from mlkeel.serving.model_slot import ServedModel, _argmax_agrees
from mlkeel.serving.validation import Validator

SCHEMA = InputSchema(
    features=[
        FeatureSpec("x", "numeric", "float", False),
        FeatureSpec("y", "numeric", "float", False),
    ],
    target=TargetSpec("t", "classification", [0, 1]),
)
FRAME = pd.DataFrame({"x": np.linspace(-3, 3, 60), "y": np.linspace(1, -1, 60)})
LABELS = (FRAME["x"] > 0.5).astype(int)


def served(model: Any) -> tuple[ServedModel, Validator]:
    info = VersionInfo("m", 1, [], "", {}, None, None, None, {})
    validator = Validator(SCHEMA, 1000)
    return ServedModel(info, model, SCHEMA, validator, ("0", "1"), True, 0.0), validator


def test_most_probable_class_models_answer_from_one_call() -> None:
    model = LogisticRegression().fit(FRAME, LABELS)
    plain, validator = served(model)
    rows = [validator.records(FRAME.to_dict("records"), "rows")]

    assert _argmax_agrees(plain, rows)
    fast = replace(plain, classes=model.classes_)
    (expected,), (got,) = plain.predict(rows), fast.predict(rows)
    assert got.predictions == expected.predictions == model.predict(FRAME).tolist()
    assert got.probabilities == expected.probabilities


def test_a_tuned_threshold_keeps_its_own_predict() -> None:
    model = FixedThresholdClassifier(LogisticRegression(), threshold=0.9).fit(FRAME, LABELS)
    tuned, validator = served(model)

    assert not _argmax_agrees(tuned, [validator.records(FRAME.to_dict("records"), "rows")])
