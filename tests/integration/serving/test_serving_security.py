"""Tokens on protected routes, and the limits that keep a server up: string length, predict
timeout, concurrent requests."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from mlkeel.serving.app import create_app
from mlkeel.settings import Settings, load_settings
from mlkeel.training import TrainedModel, to_candidate, train_model
from serving_support import MODEL, Project, live, wait_until

pytestmark = pytest.mark.timeout(180)
ADMIN, PREDICT = "admin-secret-3f9a", "predict-secret-77c1"

SLOW_TRAIN = """
import time

import numpy as np
from sklearn.dummy import DummyClassifier


class Slow:
    # Answers like a constant classifier, slowly.

    def __init__(self, model):
        self.model = model
        self.classes_ = model.classes_

    def predict(self, features):
        time.sleep(0.6)
        return self.model.predict(np.asarray(features))

    def predict_proba(self, features):
        time.sleep(0.6)
        return self.model.predict_proba(np.asarray(features))


def train(data, params):
    features = data.drop(columns=["target"])
    return Slow(DummyClassifier(strategy="prior").fit(np.asarray(features), data["target"]))
"""


def with_tokens(project: Project) -> Settings:
    return project.settings.model_copy(
        update={"admin_token": SecretStr(ADMIN), "predict_token": SecretStr(PREDICT)}
    )


def example(trained: TrainedModel) -> dict[str, Any]:
    return {"instances": trained.schema.examples[:1]}


def test_tokens_guard_routes_with_401_and_403(
    champion_project: Project, trained: TrainedModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(with_tokens(champion_project), champion_project.registry)
    predict = f"/v1/models/{MODEL}/predict"
    with live(app) as client:
        bearer = {"Authorization": f"Bearer {PREDICT}"}
        assert client.post(predict, json=example(trained)).status_code == 401
        wrong = client.post(predict, json=example(trained), headers={"Authorization": "Bearer x"})
        assert wrong.status_code == 403
        assert client.post(predict, json=example(trained), headers=bearer).status_code == 200
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers=bearer).status_code == 403
        ok = client.post("/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"})
        assert ok.status_code == 200
        feedback = client.post(f"/v1/models/{MODEL}/feedback", json={"request_id": "x", "label": 1})
        assert feedback.status_code == 401
        assert client.get("/health").status_code == 200
        unauthorised = client.post(predict, json=example(trained)).json()["error"]

    assert unauthorised["type"] == "unauthorized"
    assert ADMIN not in caplog.text
    assert PREDICT not in caplog.text
    assert ADMIN not in repr(with_tokens(champion_project))


def test_a_client_leaving_mid_body_is_one_log_line_and_the_server_keeps_answering(
    champion_project: Project, trained: TrainedModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlkeel")
    app = create_app(champion_project.settings, champion_project.registry)
    with live(app) as client:
        port = client.base_url.port
        assert port is not None
        with socket.create_connection(("127.0.0.1", port)) as leaving:
            leaving.sendall(
                f"POST /v1/models/{MODEL}/predict HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                '{"instances": ['.encode()
            )
        wait_until(lambda: "disconnected before sending its body" in caplog.text, what="the log")
        answered = client.post(f"/v1/models/{MODEL}/predict", json=example(trained))

    assert answered.status_code == 200
    assert "unexpected error" not in caplog.text
    assert "Traceback" not in caplog.text


@pytest.fixture(scope="module")
def slow_project(new_project: Callable[[], Project]) -> Project:
    project = new_project()
    (project.path / "train.py").write_text(SLOW_TRAIN)
    settings = load_settings(project.path, environ={})
    version = project.registry.register(to_candidate(train_model(settings, settings.model())))
    version = version.version
    project.registry.set_alias(MODEL, "champion", version)
    return project


def test_slow_prediction_answers_503_with_retry_after(
    slow_project: Project, trained: TrainedModel
) -> None:
    settings = slow_project.with_serving(predict_timeout_seconds=0.2)
    with live(create_app(settings, slow_project.registry)) as client:
        response = client.post(f"/v1/models/{MODEL}/predict", json=example(trained))

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["type"] == "predict_timeout"


def test_requests_over_the_concurrency_bound_get_503(
    slow_project: Project, trained: TrainedModel
) -> None:
    settings = slow_project.with_serving(max_concurrent_requests=1, batching=False)
    statuses: list[int] = []
    with live(create_app(settings, slow_project.registry)) as client:

        def send() -> None:
            with httpx.Client(base_url=str(client.base_url), timeout=30) as own:
                statuses.append(own.post(f"/v1/models/{MODEL}/predict",
                                         json=example(trained)).status_code)  # fmt: skip

        threads = [threading.Thread(target=send) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(statuses).count(200) >= 1
    assert 503 in statuses
