"""What the demo plays against: live traffic from the bundled data (clean, drifted, with a
changed label relationship), a local webhook receiver for alerts, and a broken model."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

MODEL = "breast_cancer"
SHIFTED = ("mean_radius", "mean_texture", "worst_area", "worst_perimeter")

# Appended to the example's mlkeel.toml: the same loop as production, on demo time scales.
DEMO_CONFIG = """
[prediction_log]
flush_seconds = 0.2
summary_seconds = 1

[alerts]
cooldown = "1h"
sinks = [{{type = "log"}}, {{type = "webhook", url = "{webhook}"}}]

[models.breast_cancer.alerts]
min_rows = 50
features = ["mean_radius", "mean_texture", "worst_area", "worst_perimeter"]
performance_drop = 0.05
retrain_on = ["drift", "performance"]

[models.breast_cancer.retrain]
include_production = true
production_window = "1d"
deploy = "approval"

[models.breast_cancer.rollout]
canary_percent = 20
duration = "{canary_for}"
min_requests = {canary_requests}
"""


class Broken:
    """A good model, deliberately broken: it fails on any row whose mean_texture is over 25
    (about one row in ten of drifted traffic; none of the schema's example rows)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.classes_ = model.classes_
        self.feature_names_in_ = model.feature_names_in_

    def _check(self, features: Any) -> None:
        if (np.asarray(features["mean_texture"], dtype=float) > 25).any():
            raise RuntimeError("broken model: cannot score this row")

    def predict(self, features: Any) -> Any:
        self._check(features)
        return self.model.predict(features)

    def predict_proba(self, features: Any) -> Any:
        self._check(features)
        return self.model.predict_proba(features)


@dataclass
class Webhook:
    """A local receiver standing in for Slack: it keeps every alert posted to it."""

    received: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> str:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append(json.loads(body or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Traffic:
    """Rows and their true labels, shaped like each act of the story."""

    frame: pd.DataFrame
    target: str = "target"

    @classmethod
    def load(cls, root: Path) -> Traffic:
        return cls(pd.read_csv(root / "data" / f"{MODEL}.csv"))

    def sample(self, rows: int, seed: int, *, shift: float = 1.0, flip: bool = False
               ) -> tuple[list[dict[str, Any]], list[int]]:  # fmt: skip
        """`rows` rows; `shift` scales a few features (drift); `flip` changes the label
        relationship for large tumours (what the model learnt no longer holds)."""
        sample = self.frame.sample(n=rows, replace=True, random_state=seed)
        labels = sample[self.target].astype(int)
        if flip:
            large = sample["mean_radius"] > sample["mean_radius"].median()
            labels = labels.where(~large, 1 - labels)
        features = sample.drop(columns=[self.target])
        for column in SHIFTED:
            features[column] = features[column] * shift
        records: list[dict[str, Any]] = [
            {str(key): value for key, value in row.items()}
            for row in features.to_dict(orient="records")
        ]
        return records, [int(v) for v in labels]


@dataclass
class Sent:
    requests: int = 0
    failed: int = 0
    variants: dict[str, int] = field(default_factory=dict)


def send(url: str, rows: list[dict[str, Any]], labels: list[int] | None, tag: str,
         sent: Sent) -> None:  # fmt: skip
    """One request per row (8 at a time), then the labels as feedback."""
    with httpx.Client(base_url=url, timeout=30) as client:

        def one(index: int) -> tuple[int, str]:
            response = client.post(
                f"/v1/models/{MODEL}/predict", json={"instances": [rows[index]]},
                headers={"X-Request-ID": f"{tag}-{index}", "X-Routing-Key": f"{tag}-{index}"},
            )  # fmt: skip
            return response.status_code, response.headers.get("x-model-variant", "champion")

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(one, range(len(rows))))
        sent.requests += len(answers)
        sent.failed += sum(status != 200 for status, _ in answers)
        for _, variant in answers:
            sent.variants[variant] = sent.variants.get(variant, 0) + 1
        if labels is not None:
            feedback = [
                {"request_id": f"{tag}-{i}", "label": label} for i, label in enumerate(labels)
            ]
            client.post(f"/v1/models/{MODEL}/feedback", json=feedback).raise_for_status()
