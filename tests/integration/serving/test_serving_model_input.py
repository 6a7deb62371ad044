"""What a loaded model is fed: a float array when that answers exactly as the DataFrame it was
fitted on, else the DataFrame (checked at load on the schema's examples)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlkeel.registry import Registry
from mlkeel.serving.model_slot import load_served
from mlkeel.settings import Settings
from mlkeel.training import to_candidate, train_model

BY_NAME = """
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def train(data, params):
    scale = make_column_transformer(
        (StandardScaler(), ["mean_radius", "mean_texture"]), remainder="passthrough"
    )
    model = make_pipeline(scale, LogisticRegression(max_iter=5000))
    return model.fit(data.drop(columns=["target"]), data["target"])
"""


def served_answers(settings: Settings, registry: Registry, project: Path) -> tuple[bool, bool]:
    """(fed an array?, same probabilities as the model given the frame?) for a new version."""
    version = registry.register(to_candidate(train_model(settings, settings.model()))).version
    served = load_served(registry, "breast_cancer", version, max_rows=100)
    frame = pd.read_csv(project / "data" / "breast_cancer.csv").drop(columns=["target"])
    rows = served.validator.records(frame.head(20).to_dict("records"), "instances")

    (outputs,) = served.predict([rows])  # warnings are errors in the test suite

    expected = registry.load("breast_cancer", version).model.predict_proba(frame.head(20))
    got = [[p[label] for label in served.labels or ()] for p in outputs.probabilities or []]
    return not served.wants_frame, bool(np.allclose(got, expected, rtol=1e-9, atol=1e-12))


def test_a_numeric_model_fitted_on_a_frame_is_fed_an_array_and_answers_the_same(
    settings: Settings, registry: Registry, project: Path
) -> None:
    assert served_answers(settings, registry, project) == (True, True)


def test_a_model_selecting_columns_by_name_keeps_its_frame(
    settings: Settings, registry: Registry, project: Path
) -> None:
    (project / "train.py").write_text(BY_NAME)

    assert served_answers(settings, registry, project) == (False, True)
