"""``mlkeel up`` as a user runs it: one process serves traffic and runs the schedules; drifted
traffic raises an alert, the alert retrains, the new version is promoted; every run shows in
``mlkeel jobs`` and ``GET /v1/jobs``; SIGTERM stops cleanly (exit 0, nothing left running)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlkeel.cli import main

MODEL = "breast_cancer"
SCHEDULES = """
[schedules]
prune = "*/20 * * * * *"
leader_poll = 0.5
stop_timeout = 30

[models.breast_cancer.schedules]
monitor = "*/2 * * * * *"
canary = "*/3 * * * * *"
retrain = "off"
retrain_on_alert = true

[models.breast_cancer.alerts]
min_rows = 20
retrain_on = ["drift"]
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out = capsys.readouterr().out
    return int(exited.value.code or 0), out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout} s; mlkeel up said:\n{log.read_text()[-4000:]}")


def clean_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLKEEL_", "MLFLOW_"))}
    return environment | extra


@pytest.fixture
def project(tmp_path: Path, mlflow_store: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "bc"
    assert cli(capsys, "init", str(root), "--example", MODEL)[0] == 0
    (root / ".mlkeel").mkdir()
    shutil.copyfile(mlflow_store, root / ".mlkeel" / "mlflow.db")
    assert cli(capsys, "train", "-p", str(root))[0] == 0
    assert cli(capsys, "promote", MODEL, "1", "-p", str(root), "--by", "alice")[0] == 0
    with (root / "mlkeel.toml").open("a", encoding="utf-8") as config:
        config.write(SCHEDULES)
    return root


@pytest.fixture
def up(project: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    log = tmp_path / "up.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlkeel", "up", "-p", str(project), "--port", str(port)],
            stdout=output, stderr=subprocess.STDOUT, env=clean_environment(),
        )  # fmt: skip
    try:
        yield process, f"http://127.0.0.1:{port}", log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def drifted_rows(project: Path, count: int) -> list[dict[str, float]]:
    """Real rows with every measurement tripled: far outside the training distribution."""
    with (project / "data" / "breast_cancer.csv").open() as data:
        rows = list(csv.DictReader(data))[:count]
    return [{k: float(v) * 3 for k, v in row.items() if k != "target"} for row in rows]


def job_runs(base: str, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{base}/v1/jobs", params=params, timeout=10).json()
    return found


@pytest.mark.slow
def test_up_serves_monitors_retrains_on_drift_and_stops_cleanly(
    project: Path, up: tuple[subprocess.Popen[bytes], str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    process, base, log = up
    wait_for(lambda: "mlkeel up: serving" in log.read_text(), 60, "no start", log)
    wait_for(lambda: httpx.get(f"{base}/ready").status_code == 200, 60, "not ready", log)

    for batch in range(6):  # 60 drifted rows of traffic
        rows = drifted_rows(project, 60)[batch * 10 : batch * 10 + 10]
        answer = httpx.post(f"{base}/v1/models/{MODEL}/predict", json={"instances": rows})
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Model-Version"] == "1"

    # The monitor runs every 2 s; the log writer saves its hourly summaries every 10 s.
    alerting = wait_for(
        lambda: [r for r in job_runs(base, kind="monitor")
                 if r["outcome"] == "ok" and r["summary"]["status"] == "alerting"],
        90, "no alerting monitoring run", log,
    )  # fmt: skip
    assert alerting[-1]["summary"]["dataset_drift"] is True
    assert alerting[-1]["summary"]["retrain_asked"] is True
    retrain = wait_for(
        lambda: [r for r in job_runs(base, kind="retrain") if r["outcome"] != "running"],
        180, "no finished retrain", log,
    )  # fmt: skip
    assert [(r["trigger"], r["outcome"]) for r in retrain] == [("alert", "ok")], retrain
    assert retrain[0]["summary"]["trigger"] == "drift"
    assert retrain[0]["summary"]["outcome"] == "promoted"
    assert retrain[0]["summary"]["version"] == 2
    wait_for(lambda: httpx.get(f"{base}/v1/models/{MODEL}").json().get("version") == 2,
             30, "the server did not follow the promotion", log)  # fmt: skip

    runs = job_runs(base, limit="500")
    kinds = {r["kind"] for r in runs}
    assert {"monitor", "canary", "retrain"} <= kinds
    assert all(r["runner"].endswith(f"pid {process.pid}") for r in runs)
    code, out = cli(capsys, "jobs", "--json", "-n", "500", "-p", str(project))
    assert code == 0
    assert {r["id"] for r in json.loads(out)} >= {r["id"] for r in runs}

    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0, log.read_text()[-4000:]
    assert "SIGTERM: stopping" in log.read_text()
    code, out = cli(capsys, "jobs", "--json", "-n", "1000", "-p", str(project))
    assert [r for r in json.loads(out) if r["outcome"] == "running"] == []
    code, out = cli(capsys, "history", MODEL, "--json", "-p", str(project))
    timeline = [(e["action"], e["version"], e["trigger"]) for e in json.loads(out)]
    assert timeline[-1] == ("promoted", 2, "drift")
    code, out = cli(capsys, "jobs", "--kind", "retrain", "-p", str(project))
    assert code == 0
    assert "retrain:breast_cancer" in out
    assert "alert" in out
    assert "outcome=promot" in out
