"""Two ``mlkeel up`` processes on one PostgreSQL database: both serve, one runs the jobs (an
advisory lock elects it), and the other takes over when the leader is killed."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_up import clean_environment, cli, free_port, wait_for

from mlkeel.db import make_engine
from mlkeel.scheduling.runs import JobRunStore

SCHEDULES = """
[schedules]
prune = "off"
leader_poll = 0.5

[models.breast_cancer.schedules]
monitor = "* * * * * *"
canary = "off"
retrain = "off"
"""


def start(project: Path, log: Path, url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlkeel", "up", "-p", str(project), "--port", str(port)],
            stdout=output, stderr=subprocess.STDOUT,
            env=clean_environment(MLKEEL_DATABASE_URL=url),
        )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


def runs_by(url: str, *processes: subprocess.Popen[bytes]) -> dict[int, list[Any]]:
    engine = make_engine(url)
    try:
        found = JobRunStore(engine).recent(5000)
    finally:
        engine.dispose()
    return {p.pid: [r for r in found if r.runner.endswith(f"pid {p.pid}")] for p in processes}


def healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_two_up_processes_elect_one_runner_and_fail_over(
    tmp_path: Path, mlflow_store: Path, postgres_url: str,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    project = tmp_path / "bc"
    assert cli(capsys, "init", str(project), "--example", "breast_cancer")[0] == 0
    (project / ".mlkeel").mkdir()
    shutil.copyfile(mlflow_store, project / ".mlkeel" / "mlflow.db")
    with (project / "mlkeel.toml").open("a", encoding="utf-8") as config:
        config.write(SCHEDULES)
    monkeypatch.setenv("MLKEEL_DATABASE_URL", postgres_url)
    assert cli(capsys, "db", "upgrade", "-p", str(project))[0] == 0

    first, first_url = start(project, tmp_path / "first.log", postgres_url)
    second = None
    try:
        wait_for(lambda: runs_by(postgres_url, first)[first.pid], 60, "first ran no job",
                 tmp_path / "first.log")  # fmt: skip
        second, second_url = start(project, tmp_path / "second.log", postgres_url)
        wait_for(lambda: healthy(second_url), 60, "second does not serve",
                 tmp_path / "second.log")  # fmt: skip
        time.sleep(4)
        by = runs_by(postgres_url, first, second)
        assert len(by[first.pid]) >= 4
        assert by[second.pid] == []
        assert healthy(first_url)
        outcomes = {r.outcome for r in by[first.pid]}
        assert outcomes <= {"ok", "running"}, [r.error for r in by[first.pid]]

        first.send_signal(signal.SIGKILL)  # the leader dies without a word
        first.wait(30)
        wait_for(lambda: runs_by(postgres_url, second)[second.pid], 30,
                 "second did not take over", tmp_path / "second.log")  # fmt: skip
        by = runs_by(postgres_url, first, second)
        assert "running" not in {r.outcome for r in by[first.pid]}  # marked interrupted

        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0, (tmp_path / "second.log").read_text()[-3000:]
        by = runs_by(postgres_url, second)
        assert by[second.pid]
        assert "running" not in {r.outcome for r in by[second.pid]}
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(30)
