"""Helpers for the retraining tests: a breast_cancer project whose train.py can be told (by a
parameter) to misbehave."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlkeel.cli.compose import registry_for
from mlkeel.db import make_engine, upgrade
from mlkeel.history import HistoryRepository
from mlkeel.registry import Registry
from mlkeel.retraining.deploy import current_champion, promote
from mlkeel.retraining.pipeline import RetrainResult, retrain
from mlkeel.scaffold import init_project
from mlkeel.settings import Settings, load_settings
from mlkeel.training import to_candidate, train_model

MODEL = "breast_cancer"
TRAIN_PY = '''
import time
from pathlib import Path

from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class Unloadable:
    """Predicts in the process that trained it; refuses to be unpickled."""

    def __init__(self, model):
        self.model = model
        self.classes_ = model.classes_

    def predict(self, rows):
        return self.model.predict(rows)

    def predict_proba(self, rows):
        return self.model.predict_proba(rows)

    def __setstate__(self, state):
        raise RuntimeError("this model cannot be unpickled")


def train(data, params):
    mode = params.get("mode", "good")
    if mode == "raise":
        raise RuntimeError("the training code crashed")
    if mode == "wait":
        deadline = time.time() + 60
        while not Path(params["flag"]).exists() and time.time() < deadline:
            time.sleep(0.02)
    features, labels = data.drop(columns=["target"]), data["target"]
    if mode == "worse":  # ignores the features: roc_auc 0.5
        return DummyClassifier(strategy="prior").fit(features, labels)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(features, labels)
    return Unloadable(model) if mode == "unloadable" else model
'''


@dataclass
class Lab:
    path: Path
    settings: Settings
    registry: Registry
    history: HistoryRepository

    def configure(self, **retrain: Any) -> None:
        """Change [models.breast_cancer.retrain] (or `params=` / `database_url=`)."""
        config = self.settings.model(MODEL)
        params = retrain.pop("params", None)
        update: dict[str, Any] = {"retrain": config.retrain.model_copy(update=retrain)}
        if params is not None:
            update["params"] = params
        models = {MODEL: config.model_copy(update=update)}
        self.settings = self.settings.model_copy(update={"models": models})

    def retrain(self, **options: Any) -> RetrainResult:
        options.setdefault("actor", "tester")
        return retrain(self.settings, self.registry, self.history, MODEL, **options)

    def champion(self) -> int | None:
        return current_champion(self.registry, MODEL)

    def first_champion(self) -> int:
        """Train, register and promote (through the gate) version 1."""
        trained = train_model(self.settings, self.settings.model(MODEL))
        version = self.registry.register(to_candidate(trained)).version
        promote(self.settings, self.registry, self.history, MODEL, version, actor="tester")
        return version


def make_lab(root: Path, store: Path, database_url: str | None = None) -> Iterator[Lab]:
    init_project(root, "breast_cancer")
    (root / ".mlkeel").mkdir(exist_ok=True)
    shutil.copyfile(store, root / ".mlkeel" / "mlflow.db")
    (root / "train.py").write_text(TRAIN_PY)
    settings = load_settings(root, environ={})
    if database_url is not None:
        settings = settings.model_copy(update={"database_url": database_url})
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    try:
        yield Lab(root, settings, registry_for(settings), HistoryRepository(engine))
    finally:
        engine.dispose()
