from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlkeel.registry import Registry
from mlkeel.settings import Settings
from mlkeel.training import to_candidate, train_model
from support import free_port


@pytest.mark.timeout(120)
def test_ui_serves_mlflow_on_the_project_store(
    project: Path, settings: Settings, registry: Registry
) -> None:
    registry.register(to_candidate(train_model(settings, settings.model())))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlkeel", "ui", "-p", str(project), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        body = _wait_for_models(f"http://127.0.0.1:{port}", deadline=time.monotonic() + 90)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)

    assert [model["name"] for model in body["registered_models"]] == ["breast_cancer"]
    assert server.returncode == 130
    assert _processes_mentioning(f"--port {port}") == []  # the whole MLflow tree is gone


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in status.read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(int(status.parent.name))
        except OSError:
            continue
    return found


def _wait_for_models(base: str, deadline: float) -> dict[str, list[dict[str, str]]]:
    url = f"{base}/api/2.0/mlflow/registered-models/search"
    while True:
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"MLflow UI did not answer at {url}")
        time.sleep(0.5)
