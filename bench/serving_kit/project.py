"""The benchmark's temporary mlkeel project: two models on sklearn's bundled breast_cancer data,
registered through the library and promoted to champion, exactly as `mlkeel train` would.

- ``lr``: StandardScaler + LogisticRegression, sub-millisecond predict: overhead-bound;
- ``rf``: a 100-tree RandomForestClassifier (random_state=0, n_jobs=1): model-bound.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODELS = ("lr", "rf")

CONFIG = """\
project = "servingbench"
tracking_uri = "sqlite:///.mlkeel/mlflow.db"
database_url = "sqlite:///.mlkeel/mlkeel.db"
{tables}
"""

TABLE = """
[models.{name}]
train = "train:train_{name}"
data = "data/breast_cancer.csv"
target = "target"
task = "classification"
metric = "roc_auc"
"""

TRAIN = textwrap.dedent(
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler


    def _split(data):
        return data.drop(columns=["target"]), data["target"]


    def train_lr(data, params):
        features, labels = _split(data)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        return model.fit(features, labels)


    def train_rf(data, params):
        features, labels = _split(data)
        model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1)
        return model.fit(features, labels)
    """
)


@dataclass(frozen=True)
class RegisteredModel:
    """One registered champion: where its pickle lies and rows to send it."""

    name: str
    version: int
    pickle_path: Path
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class BenchProject:
    root: Path
    tracking_uri: str
    database_path: Path
    models: dict[str, RegisteredModel]


def build_project(root: Path) -> BenchProject:
    """Scaffold, train, register and promote both models under `root`."""
    from mlkeel.cli.compose import registry_for
    from mlkeel.scaffold import init_project
    from mlkeel.settings import load_settings

    init_project(root, "breast_cancer")  # writes data/breast_cancer.csv and the .gitignore
    tables = "".join(TABLE.format(name=name) for name in MODELS)
    (root / "mlkeel.toml").write_text(CONFIG.format(tables=tables))
    (root / "train.py").write_text(TRAIN)
    settings = load_settings(root, environ={})
    registry = registry_for(settings)
    rows = _rows(root / "data" / "breast_cancer.csv")
    models = {name: _register(settings, registry, name, rows) for name in MODELS}
    database = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
    return BenchProject(root, settings.resolved_tracking_uri, database, models)


def _register(
    settings: Any, registry: Any, name: str, rows: list[dict[str, Any]]
) -> RegisteredModel:
    from mlkeel.training import to_candidate, train_model

    trained = train_model(settings, settings.model(name))
    version = registry.register(to_candidate(trained)).version
    registry.set_alias(name, "champion", version)
    source = registry.client.get_model_version_download_uri(name, str(version))
    model_dir = Path(source.removeprefix("file://"))
    return RegisteredModel(name, version, model_dir / "model.pkl", rows)


def _rows(csv: Path) -> list[dict[str, Any]]:
    """Every row of the data set as a JSON object of its 30 features (the target dropped)."""
    import pandas as pd

    frame = pd.read_csv(csv).drop(columns=["target"])
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return rows
