"""The hand-written baseline: a minimal FastAPI app, as a team would write it in an afternoon.

    BENCH_MODEL_FILE=/path/model.pkl uvicorn plain_app:app --host 127.0.0.1 --port 8000

A sync handler (FastAPI runs it in its threadpool) builds a DataFrame from the JSON rows and
calls ``predict_proba``. ``POST /predict`` takes ``{"instances": [{feature: value}, ...]}``;
``GET /health`` answers once the model is loaded.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pandas as pd
from fastapi import FastAPI

MODEL: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    with open(os.environ["BENCH_MODEL_FILE"], "rb") as handle:
        model = pickle.load(handle)  # noqa: S301  # the benchmark's own registered model
    MODEL["model"] = model
    MODEL["features"] = list(model.feature_names_in_)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(payload: dict[str, Any]) -> dict[str, Any]:
    frame = pd.DataFrame(payload["instances"], columns=MODEL["features"])
    return {"predictions": MODEL["model"].predict_proba(frame).tolist()}
