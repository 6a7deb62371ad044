"""``kill -9`` of a serving process whose database is down: the restarted server replays
the spool the dead one left, so every answered prediction reaches the database once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from mlkeel.db import make_engine, upgrade
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.training import TrainedModel
from private_postgres import PrivateCluster
from serving_support import MODEL, Project, wait_until
from support import free_port, ready

pytestmark = pytest.mark.timeout(240)
MLKEEL = Path(sys.executable).with_name("mlkeel")


def start_server(project: Project, port: int, environment: dict[str, str]) -> subprocess.Popen[str]:
    command = [str(MLKEEL), "serve", "--project", str(project.path), "--port", str(port)]
    return subprocess.Popen(  # noqa: S603 - our own CLI
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )


def test_kill_9_while_spooling_then_restart_replays_everything(
    new_project: Callable[[], Project],
    trained: TrainedModel,
    private_cluster: PrivateCluster,
    tmp_path: Path,
) -> None:
    project = new_project()
    project.register(trained, promote=True)
    engine = make_engine(private_cluster.url)
    upgrade(engine)
    engine.dispose()
    spool = tmp_path / "spool"
    environment = {
        **os.environ,
        "MLKEEL_DATABASE_URL": private_cluster.url,
        "MLKEEL_PREDICTION_LOG__SPOOL_DIR": str(spool),
        "MLKEEL_PREDICTION_LOG__FLUSH_SECONDS": "0.1",
    }
    port = free_port()
    private_cluster.stop()
    answered: list[str] = []
    server = start_server(project, port, environment)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until(lambda: ready(client), 90, "the server to load its model")
            for i in range(200):
                response = client.post(
                    f"/v1/models/{MODEL}/predict",
                    json={"instances": trained.schema.examples[:1]},
                    headers={"X-Request-ID": f"before-kill-{i}"},
                )
                assert response.status_code == 200
                answered.append(f"before-kill-{i}")
        time.sleep(1.0)  # several flushes: the batches reach the spool
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        assert list(spool.glob("*.spool")), "the dead server left no spool"

        private_cluster.start()
        server = start_server(project, port, environment)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until(lambda: ready(client), 90, "the restarted server")
    finally:
        server.terminate()
        server.wait(timeout=30)
        if not private_cluster.running:
            private_cluster.start()

    engine = make_engine(private_cluster.url)
    stored = [row["request_id"] for row in PredictionRepository(engine).window(MODEL)]
    engine.dispose()
    assert sorted(stored) == sorted(answered)
    assert list(spool.glob("*.spool")) == []
