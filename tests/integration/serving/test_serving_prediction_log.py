"""The server and its prediction log together: every answered row stored once, labels,
strict durability, metrics, and a database outage under load."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlkeel.db import make_engine, upgrade
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.prediction_log.runtime import open_prediction_log
from mlkeel.serving.app import create_app
from mlkeel.settings import PredictionLogConfig, Settings
from mlkeel.training import TrainedModel
from private_postgres import PrivateCluster
from serving_support import MODEL, Project, live

pytestmark = pytest.mark.timeout(180)
PREDICT = f"/v1/models/{MODEL}/predict"
FEEDBACK = f"/v1/models/{MODEL}/feedback"


def with_log(project: Project, database_url: str, **changes: Any) -> Settings:
    config = PredictionLogConfig(**{"flush_seconds": 0.2, **changes})
    return project.settings.model_copy(
        update={"database_url": database_url, "prediction_log": config}
    )


def example(trained: TrainedModel) -> dict[str, Any]:
    return dict(trained.schema.examples[0])


def count(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        return PredictionRepository(engine).count(MODEL)
    finally:
        engine.dispose()


def test_every_answered_row_is_stored_once_after_shutdown(
    champion_project: Project, trained: TrainedModel, database_url: str
) -> None:
    settings = with_log(champion_project, database_url)
    app = create_app(settings, champion_project.registry,
                     prediction_log=open_prediction_log(settings))  # fmt: skip
    rows = [example(trained)] * 3
    with live(app) as client:

        def send(worker: int) -> None:
            for i in range(25):
                response = client.post(PREDICT, json={"instances": rows},
                                       headers={"X-Request-ID": f"w{worker}-{i}"})  # fmt: skip
                assert response.status_code == 200

        threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    engine = make_engine(database_url)
    stored = list(PredictionRepository(engine).window(MODEL))
    engine.dispose()
    assert len(stored) == 4 * 25 * 3
    assert len({(r["request_id"], r["row"]) for r in stored}) == 300
    assert {r["version"] for r in stored} == {1}
    assert stored[0]["features"] == rows[0]


def test_feedback_labels_served_rows_and_reports_unknown_ids(
    champion_project: Project, trained: TrainedModel, database_url: str
) -> None:
    settings = with_log(champion_project, database_url)
    app = create_app(settings, champion_project.registry,
                     prediction_log=open_prediction_log(settings))  # fmt: skip
    with live(app) as client:
        client.post(PREDICT, json={"instances": [example(trained)] * 2},
                    headers={"X-Request-ID": "known"})  # fmt: skip
        answer = client.post(FEEDBACK, json=[
            {"request_id": "known", "label": 1},
            {"request_id": "known", "row": 1, "label": 0},
            {"request_id": "never-served", "label": 1},
        ])  # fmt: skip
        single = client.post(FEEDBACK, json={"request_id": "known", "label": 0})
        bad = client.post(FEEDBACK, json=[{"request_id": "known"}])
        metrics = client.get("/metrics").text

    assert answer.status_code == 200
    assert answer.json() == {
        "accepted": 2, "unknown": [{"request_id": "never-served", "row": 0}]
    }  # fmt: skip
    assert single.json() == {"accepted": 1, "unknown": []}
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "[0].label"
    engine = make_engine(database_url)
    labels = {
        (r["request_id"], r["row"]): r["label"] for r in PredictionRepository(engine).window()
    }
    engine.dispose()
    assert labels == {("known", 0): 0, ("known", 1): 0}
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    assert families["mlkeel_prediction_log_submitted"].samples[0].value == 2


def test_strict_durability_answers_after_the_record_is_stored(
    champion_project: Project, trained: TrainedModel, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'strict.db'}"
    settings = with_log(champion_project, url, durability="strict", flush_seconds=30)
    app = create_app(settings, champion_project.registry,
                     prediction_log=open_prediction_log(settings))  # fmt: skip
    with live(app) as client:
        for expected in (1, 2, 3):
            assert client.post(PREDICT, json={"instances": [example(trained)]}).status_code == 200
            assert count(url) == expected


def test_database_outage_under_load_fails_no_request_and_loses_no_record(
    champion_project: Project,
    trained: TrainedModel,
    private_cluster: PrivateCluster,
    tmp_path: Path,
) -> None:
    engine = make_engine(private_cluster.url)
    upgrade(engine)
    engine.dispose()
    url = private_cluster.url
    settings = with_log(champion_project, url, spool_dir=str(tmp_path / "spool"))
    prediction_log = open_prediction_log(settings)
    prediction_log.writer.retry_seconds = 0.5
    app = create_app(settings, champion_project.registry, prediction_log=prediction_log)
    answered: list[str] = []
    failures: list[int] = []
    stop = threading.Event()

    def send(client: httpx.Client, worker: int) -> None:
        i = 0
        while not stop.is_set():
            request_id = f"w{worker}-{i}"
            response = client.post(PREDICT, json={"instances": [example(trained)]},
                                   headers={"X-Request-ID": request_id})  # fmt: skip
            if response.status_code == 200:
                answered.append(request_id)
            else:
                failures.append(response.status_code)
            i += 1

    with live(app) as client:
        threads = [threading.Thread(target=send, args=(client, n)) for n in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(5)
            private_cluster.stop()
            time.sleep(8)
            spooled_during_outage = prediction_log.writer.stats.spooled
            private_cluster.start()
            time.sleep(7)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            if not private_cluster.running:
                private_cluster.start()

    assert failures == []
    assert spooled_during_outage > 0
    assert prediction_log.writer.stats.replayed > 0
    assert prediction_log.writer.stats.dropped == 0
    engine = make_engine(url)
    stored = [r["request_id"] for r in PredictionRepository(engine).window(MODEL)]
    engine.dispose()
    assert len(stored) == len(set(stored))
    assert sorted(stored) == sorted(answered)
