"""Traffic through a real server, summaries folded by its log writer, and the monitor's
verdicts on them: clean traffic is healthy, shifted features drift and alert."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlkeel.db import make_engine
from mlkeel.monitoring.pipeline import monitor
from mlkeel.prediction_log.runtime import open_prediction_log
from mlkeel.registry import Registry
from mlkeel.serving.app import create_app
from mlkeel.serving.background import BackgroundServer
from mlkeel.settings import Settings
from mlkeel.training import to_candidate, train_model

pytestmark = pytest.mark.timeout(240)
MODEL = "breast_cancer"
SHIFTED = ["mean_radius", "mean_texture", "worst_area"]


@pytest.fixture
def champion(settings: Settings, registry: Registry) -> int:
    version = registry.register(to_candidate(train_model(settings, settings.model()))).version
    registry.set_alias(MODEL, "champion", version)
    return version


def serve_traffic(settings: Settings, registry: Registry, rows: list[dict[str, Any]]) -> None:
    server = BackgroundServer(
        create_app(settings, registry, prediction_log=open_prediction_log(settings, registry))
    ).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for start in range(0, len(rows), 4):
                response = client.post(
                    f"/v1/models/{MODEL}/predict", json={"instances": rows[start : start + 4]}
                )
                assert response.status_code == 200, response.text
    finally:
        server.stop()  # drains the log and saves the hourly summaries


def traffic(project: Path, rows: int, shift: float = 1.0, seed: int = 3) -> list[dict[str, Any]]:
    frame = pd.read_csv(project / "data" / "breast_cancer.csv").drop(columns=["target"])
    sample = frame.sample(n=rows, replace=True, random_state=seed)
    for column in SHIFTED:
        sample[column] = sample[column] * shift
    return list(sample.to_dict(orient="records"))


def window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=2), now + timedelta(hours=1)


def test_clean_traffic_is_healthy_and_shifted_features_drift(
    project: Path, settings: Settings, registry: Registry, champion: int
) -> None:
    serve_traffic(settings, registry, traffic(project, 600))
    engine = make_engine(settings.resolved_database_url)
    try:
        clean = monitor(settings, registry, engine, MODEL, *window(), sinks=[]).report
        assert clean.rows == 600
        assert clean.version == 1
        assert [f.name for f in clean.features if f.drifted] == []
        assert not clean.dataset_drift
        assert clean.traffic is not None
        assert clean.traffic.requests == 150
        assert clean.traffic.latency_ms["p99"] > 0

        serve_traffic(settings, registry, traffic(project, 600, shift=1.6, seed=4))
        drifted = monitor(settings, registry, engine, MODEL, *window(), sinks=[]).report
    finally:
        engine.dispose()

    assert sorted(f.name for f in drifted.features if f.drifted) == sorted(SHIFTED)
    assert drifted.rows == 1200


def test_cli_json_contract_and_exit_codes(
    project: Path, settings: Settings, registry: Registry, champion: int
) -> None:
    toml = project / "mlkeel.toml"
    toml.write_text(toml.read_text() + "\n[models.breast_cancer.alerts]\nfeatures = "
                    + json.dumps(SHIFTED) + "\n")  # fmt: skip
    serve_traffic(settings, registry, traffic(project, 600, shift=1.6))
    command = [sys.executable, "-m", "mlkeel", "monitor", "-p", str(project), "--json",
               "--window", "3h"]  # fmt: skip

    result = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert {"model", "version", "window", "rows", "dataset_drift", "drift_share", "features",
            "prediction_drift", "performance", "alerts"} <= set(report)  # fmt: skip
    assert {"name", "type", "method", "score", "threshold", "drifted"} <= set(report["features"][0])
    assert any("mean_radius" in alert for alert in report["alerts"])

    alerts = [sys.executable, "-m", "mlkeel", "alerts", "-p", str(project), "--open", "--json"]
    listed = subprocess.run(alerts, capture_output=True, text=True, timeout=60)
    assert {alert["subject"] for alert in json.loads(listed.stdout)} >= set(SHIFTED)


def test_monitor_errors_exit_2(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlkeel", "monitor", "-p", str(project), "--since", "nonsense"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert result.returncode == 2
    assert "nonsense" in result.stderr
