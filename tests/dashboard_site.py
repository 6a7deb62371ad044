"""A project with everything the dashboard shows, made through the real paths: two versions,
a deployment event and a gated retraining run, traffic through the server's API (its log
writer folds the hourly summaries), labels, and two stored monitoring reports with alerts.

One categorical feature is named ``<img src=x onerror=alert(2)>`` and some of the logged
rows carry the category ``<script>alert(1)</script>``: both must show as text.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from mlkeel.db import make_engine
from mlkeel.history import DeploymentEvent, HistoryRepository, PipelineRun, StepRecord
from mlkeel.monitoring.pipeline import monitor
from mlkeel.prediction_log.runtime import open_prediction_log
from mlkeel.registry import Registry
from mlkeel.scaffold import init_project
from mlkeel.serving.app import create_app
from mlkeel.serving.background import BackgroundServer
from mlkeel.settings import Settings, load_settings
from mlkeel.training import to_candidate, train_model

MODEL = "breast_cancer"
EVIL_FEATURE = "<img src=x onerror=alert(2)>"
EVIL_CATEGORY = "<script>alert(1)</script>"
SHIFTED = ["mean_radius", "worst_area"]

TRAIN = """
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CITY = {city!r}


def train(data, params):
    features = data.drop(columns=["target"])
    numeric = [c for c in features.columns if c != CITY]
    prepare = ColumnTransformer([
        ("numbers", StandardScaler(), numeric),
        ("city", OneHotEncoder(handle_unknown="ignore"), [CITY]),
    ])
    model = make_pipeline(prepare, LogisticRegression(C=params.get("C", 1.0), max_iter=1000))
    return model.fit(features, data["target"])
"""

ALERTS = f"""
[models.breast_cancer.alerts]
features = {SHIFTED!r}
unseen_rate = 0.01
min_rows = 50
"""


@dataclass(frozen=True)
class Site:
    project: Path
    settings: Settings
    registry: Registry
    champion: int
    challenger: int


def build_site(root: Path, mlflow_store: Path) -> Site:
    """The project under `root`, with its data made (see the module docstring)."""
    project = root / "project"
    init_project(project, MODEL)
    (project / ".mlkeel").mkdir(exist_ok=True)
    shutil.copyfile(mlflow_store, project / ".mlkeel" / "mlflow.db")
    data = pd.read_csv(project / "data" / f"{MODEL}.csv")
    data.insert(3, EVIL_FEATURE, ["Oslo" if i % 3 else "Rome" for i in range(len(data))])
    data.to_csv(project / "data" / f"{MODEL}.csv", index=False)
    (project / "train.py").write_text(TRAIN.format(city=EVIL_FEATURE))
    with (project / "mlkeel.toml").open("a") as toml:
        toml.write(ALERTS)

    settings = load_settings(project, environ={})
    from mlkeel.cli.compose import registry_for

    registry = registry_for(settings)
    config = settings.model()
    champion = registry.register(to_candidate(train_model(settings, config))).version
    registry.set_alias(MODEL, "champion", champion)
    challenger = registry.register(to_candidate(train_model(settings, config, {"C": 0.5}))).version
    _history(settings, champion, challenger)

    frame = data.drop(columns=["target"])
    serve_traffic(settings, registry, _rows(frame, 240, shift=1.0, seed=1), data["target"])
    since, until = _window()
    engine = make_engine(settings.resolved_database_url)
    try:
        monitor(settings, registry, engine, MODEL, since, until, sinks=[])
        serve_traffic(settings, registry, _rows(frame, 240, shift=1.7, seed=2), None)
        monitor(settings, registry, engine, MODEL, since, until, sinks=[])
    finally:
        engine.dispose()
    return Site(project, settings, registry, champion, challenger)


def serve_traffic(
    settings: Settings, registry: Registry, rows: list[dict[str, Any]], labels: Any
) -> None:
    """`rows` through the API four at a time; with `labels`, every other request labelled."""
    app = create_app(settings, registry, prediction_log=open_prediction_log(settings, registry))
    server = BackgroundServer(app).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for start in range(0, len(rows), 4):
                batch = rows[start : start + 4]
                answer = client.post(f"/v1/models/{MODEL}/predict", json={"instances": batch})
                assert answer.status_code == 200, answer.text
                if labels is not None and start % 8 == 0:
                    request_id = answer.json()["request_id"]
                    items = [
                        {"request_id": request_id, "row": i, "label": int(labels.iloc[start + i])}
                        for i in range(len(batch))
                    ]
                    sent = client.post(f"/v1/models/{MODEL}/feedback", json=items)
                    assert sent.status_code == 200, sent.text
    finally:
        server.stop()  # drains the log and saves the hourly summaries


def live_server(site: Site) -> BackgroundServer:
    """The model server of `site`, dashboard included, started."""
    app = create_app(
        site.settings,
        site.registry,
        prediction_log=open_prediction_log(site.settings, site.registry),
    )
    return BackgroundServer(app).start()


def _rows(frame: pd.DataFrame, count: int, shift: float, seed: int) -> list[dict[str, Any]]:
    sample = frame.iloc[[(seed * 7 + i * 13) % len(frame) for i in range(count)]].copy()
    for column in SHIFTED:
        sample[column] = sample[column] * shift
    if shift != 1.0:
        sample[EVIL_FEATURE] = [EVIL_CATEGORY if i % 4 == 0 else "Oslo" for i in range(count)]
    return list(sample.to_dict(orient="records"))


def _history(settings: Settings, champion: int, challenger: int) -> None:
    engine = make_engine(settings.resolved_database_url)
    from mlkeel.db import upgrade

    upgrade(engine)
    history = HistoryRepository(engine)
    now = time.time()
    history.record(DeploymentEvent(MODEL, "promoted", champion, "tester", reason="first model",
                                   trigger="manual", ts=now - 3600))  # fmt: skip
    gate = {"passed": False, "checks": [
        {"name": "no regression (test set)", "passed": False, "skipped": False,
         "detail": f"{EVIL_CATEGORY} roc_auc fell by 0.03"},
        {"name": "smoke", "passed": True, "skipped": False, "detail": "loaded and predicted"},
    ]}  # fmt: skip
    history.record(DeploymentEvent(MODEL, "blocked", challenger, "scheduler", previous=champion,
                                   reason="gate failed", trigger="drift", gate=gate,
                                   ts=now - 600))  # fmt: skip
    run = PipelineRun(
        id="run0001", model=MODEL, trigger="drift", actor="scheduler", started=now - 700,
        outcome="blocked", ended=now - 600, parent_version=champion,
        challenger_version=challenger, gate=gate,
        steps=[StepRecord("data", "ok", 0.4), StepRecord("train", "ok", 1.2),
               StepRecord("gate", "failed", 0.3, "no regression failed")],
    )  # fmt: skip
    history.start_run(run)
    engine.dispose()


def _window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=2), now + timedelta(hours=1)
