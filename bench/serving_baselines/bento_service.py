"""The BentoML baseline (BentoML 1.2+ service API), run from its own environment:

    BENCH_MODEL_FILE=/path/model.pkl BENCH_BENTO_BATCHING=1 \\
        uv run --with bentoml bentoml serve bento_service:Classifier --port 3000

One worker (one predict thread, BentoML's default for sync APIs). With
``BENCH_BENTO_BATCHING=1`` the API is batchable: BentoML's adaptive dispatcher merges
concurrent requests' rows into one ``predict_proba`` call. ``POST /predict`` takes
``{"instances": [{feature: value}, ...]}``; ``GET /readyz`` answers once the model is loaded.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import bentoml
import pandas as pd

BATCHING = os.environ.get("BENCH_BENTO_BATCHING") == "1"
MAX_BATCH_ROWS = 256  # mlkeel's serving.batch_max_rows default


@bentoml.service(workers=1)
class Classifier:
    def __init__(self) -> None:
        with open(os.environ["BENCH_MODEL_FILE"], "rb") as handle:
            self.model = pickle.load(handle)  # noqa: S301  # the benchmark's own model
        self.features = list(self.model.feature_names_in_)

    @bentoml.api(batchable=BATCHING, max_batch_size=MAX_BATCH_ROWS)
    def predict(self, instances: list[dict[str, Any]]) -> list[list[float]]:
        frame = pd.DataFrame(instances, columns=self.features)
        result: list[list[float]] = self.model.predict_proba(frame).tolist()
        return result
