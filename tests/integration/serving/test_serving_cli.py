"""``mlkeel serve`` as a user runs it: refusing to start without a champion, --latest, workers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from mlkeel.training import TrainedModel
from serving_support import MODEL, Project, wait_until
from support import free_port, ready

pytestmark = pytest.mark.timeout(180)
MLKEEL = Path(sys.executable).with_name("mlkeel")


def test_serve_refuses_to_start_without_a_champion(
    new_project: Callable[[], Project], trained: TrainedModel
) -> None:
    project = new_project()
    project.register(trained)

    result = subprocess.run(  # noqa: S603 - our own CLI
        [str(MLKEEL), "serve", "--project", str(project.path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert f"mlkeel promote {MODEL} VERSION" in message
    assert "--latest" in message
    assert "Traceback" not in result.stderr


def test_serve_latest_with_two_workers_answers(
    new_project: Callable[[], Project], trained: TrainedModel
) -> None:
    project = new_project()
    project.register(trained)
    version = project.register(trained)
    port = free_port()
    command = [str(MLKEEL), "serve", "--project", str(project.path), "--latest"]
    command += ["--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # noqa: S603
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until(lambda: ready(client), 90, "two workers to load the model")
            answers = [
                client.post(
                    f"/v1/models/{MODEL}/predict",
                    json={"instances": trained.schema.examples},
                    headers={"Connection": "close"},  # reach both workers
                )
                for _ in range(6)
            ]
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)

    assert {a.status_code for a in answers} == {200}
    assert {a.json()["version"] for a in answers} == {version}
    assert "not the champion (--latest)" in " ".join(output.split())


@pytest.mark.parametrize("access_log", [None, "true"])
def test_serve_writes_a_line_per_request_only_with_the_access_log_on(
    new_project: Callable[[], Project], trained: TrainedModel, access_log: str | None
) -> None:
    project = new_project()
    project.register(trained)
    port = free_port()
    command = [str(MLKEEL), "serve", "--project", str(project.path), "--latest"]
    env = dict(os.environ)
    env.pop("MLKEEL_SERVING__ACCESS_LOG", None)
    if access_log is not None:
        env["MLKEEL_SERVING__ACCESS_LOG"] = access_log
    server = subprocess.Popen(  # noqa: S603
        [*command, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            wait_until(lambda: ready(client), 90, "the model to load")
            answer = client.post(
                f"/v1/models/{MODEL}/predict", json={"instances": trained.schema.examples}
            )
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)

    assert answer.status_code == 200
    line = f'"POST /v1/models/{MODEL}/predict HTTP/1.1" 200'
    assert (line in output) == (access_log == "true"), output
    assert "Uvicorn running on" in output  # the server's own lines stay either way
