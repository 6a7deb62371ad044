"""Errors never leak: a model that raises answers 500 with the request id, not a traceback."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from test_serving_reloader import SCHEMA, FakeRegistry

from mlkeel.registry import LoadedModel
from mlkeel.serving.app import create_app
from mlkeel.serving.model_slot import ModelSpec
from mlkeel.settings import Settings


class Fragile(LogisticRegression):  # type: ignore[misc]
    """Fails on inputs far outside what it was trained on."""

    def predict_proba(self, X: pd.DataFrame) -> object:  # noqa: N803 - scikit-learn's name
        if (X["x"] > 100).any():
            raise RuntimeError("secret internals")
        return super().predict_proba(X)


class FragileRegistry(FakeRegistry):
    def load(self, name: str, version: int) -> LoadedModel:
        model = Fragile().fit(pd.DataFrame({"x": [0.0, 0.2, 0.8, 1.0]}), [0, 0, 1, 1])
        return LoadedModel(self._info(version), model, SCHEMA, {}, Path("."))


def test_an_unexpected_error_is_a_500_with_the_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(project_dir=tmp_path, project="p")
    app = create_app(settings, FragileRegistry(), models=[ModelSpec("m")])  # type: ignore[arg-type]

    async def ask() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t") as client,
        ):
            return [
                await client.post("/v1/models/m/predict", json={"instances": [{"x": 0.5}]}),
                await client.post(
                    "/v1/models/m/predict",
                    json={"instances": [{"x": 1e9}]},
                    headers={"X-Request-ID": "r9"},
                ),
                await client.get("/nowhere"),
            ]

    with caplog.at_level(logging.ERROR):
        fine, broken, missing = asyncio.run(ask())

    assert fine.status_code == 200
    assert broken.status_code == 500
    error = broken.json()["error"]
    assert (error["type"], error["request_id"]) == ("internal_error", "r9")
    assert "r9" in error["message"]
    assert "secret" not in broken.text
    assert broken.headers["X-Request-ID"] == "r9"
    assert "r9" in caplog.text
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "not_found")
