"""The scale-out topology on loopback, every piece a real process: PostgreSQL for operational
data, a real ``mlflow server`` on PostgreSQL with proxied artifacts, three ``mlkeel serve``
replicas and two ``mlkeel up`` schedulers. Traffic goes through every replica, a promotion
reaches all of them within 5 s, one scheduler leads, the other takes over when the leader is
killed, and every answered request is in the prediction log exactly once.

Measurements (promotion latency per replica, failover time, memory and connections per
process) are written to stderr: ``pytest -s`` shows them.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from scale_cluster import Cluster, Service, clean_environment, rss_mib, wait_for

from mlkeel.scaffold import init_project

MODEL = "breast_cancer"
REPLICAS = 3
REQUESTS = 300
PROMOTION_BUDGET_S = 5.0
SCHEDULES = """
[schedules]
prune = "off"
leader_poll = 0.5

[models.breast_cancer.schedules]
monitor = "*/2 * * * * *"
monitor_window = "1h"
canary = "off"
retrain = "off"
retrain_on_alert = false
"""

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path)
    try:
        yield started
    finally:
        started.close()


def mlkeel_cli(cluster: Cluster, project: Path, *args: str) -> str:
    """``mlkeel ARGS`` as a user types it, in its own process; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "mlkeel", *args, "-p", str(project)],
        capture_output=True, text=True, timeout=300, env=clean_environment(), cwd=cluster.root,
    )  # fmt: skip
    assert done.returncode == 0, f"mlkeel {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def served_version(service: Service) -> int | None:
    try:
        found = httpx.get(f"{service.url}/v1/models/{MODEL}", timeout=5)
    except httpx.TransportError:
        return None
    return int(found.json()["version"]) if found.status_code == 200 else None


def champion(mlflow: Service) -> int | None:
    """The version MLflow's registry calls champion now (its REST API)."""
    try:
        found = httpx.get(
            f"{mlflow.url}/api/2.0/mlflow/registered-models/alias",
            params={"name": MODEL, "alias": "champion"},
            timeout=5,
        )
    except httpx.TransportError:
        return None
    return int(found.json()["model_version"]["version"]) if found.status_code == 200 else None


def follow_promotion(
    cluster: Cluster, project: Path, mlflow: Service, replicas: list[Service]
) -> dict[str, float]:
    """Promote v2 and time, per replica, from the alias moving in MLflow to serving v2."""
    promote = subprocess.Popen(
        [sys.executable, "-m", "mlkeel", "promote", MODEL, "2", "--by", "scale-test", "-p",
         str(project)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean_environment(), cwd=cluster.root,
    )  # fmt: skip
    moved: float | None = None
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 300
    while len(seen) < len(replicas) and time.monotonic() < deadline:
        if moved is None and champion(mlflow) == 2:
            moved = time.monotonic()
        for replica in replicas:
            if replica.name not in seen and served_version(replica) == 2:
                seen[replica.name] = time.monotonic()
        if moved is None and promote.poll() not in (None, 0):
            break
        time.sleep(0.05)
    output = promote.communicate(timeout=300)[0].decode()
    assert promote.returncode == 0, output
    assert moved is not None, "the champion alias never moved to version 2"
    return {name: round(max(0.0, at - moved), 2) for name, at in seen.items()}


def rows(project: Path, count: int) -> list[dict[str, float]]:
    import csv

    with (project / "data" / "breast_cancer.csv").open() as data:
        found = list(itertools.islice(csv.DictReader(data), count))
    return [{k: float(v) for k, v in row.items() if k != "target"} for row in found]


def send(replicas: list[Service], instances: list[dict[str, float]], count: int) -> list[str]:
    """`count` one-row requests, round-robin over `replicas`; the answered request ids."""
    answered = []
    clients = [httpx.Client(base_url=r.url, timeout=30) for r in replicas]
    try:
        for index in range(count):
            client = clients[index % len(clients)]
            request_id = f"scale-{uuid.uuid4().hex}"
            answer = client.post(
                f"/v1/models/{MODEL}/predict",
                json={"instances": [instances[index % len(instances)]]},
                headers={"X-Request-ID": request_id},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["request_id"] == request_id
            answered.append(request_id)
    finally:
        for client in clients:
            client.close()
    return answered


def runs_by_pid(engine: sa.Engine) -> dict[int, list[tuple[float, str]]]:
    """Job runs grouped by the pid of the runner that recorded them: (started, outcome)."""
    found: dict[int, list[tuple[float, str]]] = {}
    with engine.connect() as connection:
        query = "SELECT runner, started, outcome FROM mlkeel_job_runs ORDER BY started"
        for runner, started, outcome in connection.exec_driver_sql(query):
            found.setdefault(int(runner.rsplit(" ", 1)[1]), []).append((started, outcome))
    return found


def connections(engine: sa.Engine) -> dict[str, int]:
    """Open connections per application_name (each process names itself in its URL)."""
    query = (
        "SELECT application_name, count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1"
    )
    with engine.connect() as connection:
        return {name: int(n) for name, n in connection.exec_driver_sql(query)}


def report(measured: dict[str, Any]) -> None:
    sys.stderr.write("\nscale-out measurements: " + json.dumps(measured, indent=2) + "\n")


def test_replicas_follow_promotion_one_leader_fails_over_and_nothing_is_lost(
    cluster: Cluster, tmp_path: Path
) -> None:
    measured: dict[str, Any] = {}
    tracking = cluster.database("mlflow")
    operational = cluster.database("ops")
    mlflow = cluster.mlflow_server(tracking)

    project = tmp_path / "bc"
    init_project(project, MODEL)
    config = project / "mlkeel.toml"
    text = config.read_text().replace('"sqlite:///.mlkeel/mlflow.db"', f'"{mlflow.url}"')
    text = text.replace('"sqlite:///.mlkeel/mlkeel.db"', f'"{operational}"')
    config.write_text(text + SCHEDULES)

    mlkeel_cli(cluster, project, "db", "upgrade")
    mlkeel_cli(cluster, project, "train")
    mlkeel_cli(cluster, project, "promote", MODEL, "1", "--by", "scale-test")

    def named(name: str) -> str:
        return f"{operational}?application_name={name}"

    replicas = [
        cluster.mlkeel(f"serve-{i}", project, "serve", MLKEEL_SERVING__RELOAD_SECONDS="1",
                       MLKEEL_DATABASE_URL=named(f"serve-{i}"))
        for i in range(REPLICAS)
    ]  # fmt: skip
    schedulers = [
        cluster.mlkeel(f"up-{i}", project, "up", MLKEEL_DATABASE_URL=named(f"up-{i}"))
        for i in range(2)
    ]
    for service in replicas + schedulers:
        wait_for(lambda s=service: served_version(s) == 1, 120, f"{service.name} not serving v1",
                 service.log)  # fmt: skip

    engine = sa.create_engine(operational)
    try:
        # Traffic through every replica.
        instances = rows(project, 50)
        answered = send(replicas, instances, REQUESTS)
        measured["rss_mib"] = {s.name: round(rss_mib(s.pid)) for s in [mlflow, *replicas,
                                                                        *schedulers]}  # fmt: skip
        measured["connections"] = connections(engine)

        # A promotion, followed by every replica within the budget.
        mlkeel_cli(cluster, project, "train")
        latency = follow_promotion(cluster, project, mlflow, replicas)
        measured["promotion_latency_s"] = latency
        assert set(latency) == {r.name for r in replicas}, latency
        assert max(latency.values()) <= PROMOTION_BUDGET_S, latency
        after = send(replicas, instances, 3 * REPLICAS)
        answered += after

        # One leader: every job run so far recorded by one scheduler.
        pids = {s.pid: s for s in schedulers}
        wait_for(lambda: runs_by_pid(engine), 60, "no job run recorded", schedulers[0].log)
        time.sleep(2)  # a standby that also ran jobs would show by now (monitor every 2 s)
        by_pid = runs_by_pid(engine)
        assert len(by_pid) == 1, by_pid
        leader_pid = next(iter(by_pid))
        leader = pids[leader_pid]
        standby = next(s for s in schedulers if s is not leader)
        assert len(by_pid[leader_pid]) >= 2
        assert {outcome for _, outcome in by_pid[leader_pid]} <= {"ok", "running"}

        # kill -9 the leader: the standby takes over and records runs.
        os.killpg(leader.pid, signal.SIGKILL)
        killed = time.time()
        leader.process.wait(30)
        taken = wait_for(lambda: runs_by_pid(engine).get(standby.pid), 60,
                         "the standby did not take over", standby.log)  # fmt: skip
        measured["failover_s"] = round(taken[0][0] - killed, 2)
        wait_for(lambda: len(runs_by_pid(engine).get(standby.pid, [])) >= 2, 30,
                 "the new leader stopped running jobs", standby.log)  # fmt: skip
        assert served_version(standby) == 2

        # Nothing lost: stop the replicas gracefully, then count every answered request.
        for replica in replicas:
            # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
            assert cluster.stop(replica) in (0, -signal.SIGTERM), replica.log.read_text()[-3000:]
        assert cluster.stop(standby) == 0, standby.log.read_text()[-3000:]
        with engine.connect() as connection:
            stored = connection.execute(
                sa.text(
                    "SELECT request_id, count(*) FROM mlkeel_predictions "
                    "WHERE request_id LIKE 'scale-%' GROUP BY request_id"
                )
            ).all()
        counts = dict(stored)
        assert set(counts) == set(answered)
        assert set(counts.values()) == {1}
        measured["logged"] = len(counts)
        jobs = json.loads(mlkeel_cli(cluster, project, "jobs", "--json", "-n", "1000"))
        runners = {run["runner"].rsplit(" ", 1)[1] for run in jobs}
        assert runners == {str(leader.pid), str(standby.pid)}
        assert "running" not in {run["outcome"] for run in jobs if run["runner"].endswith(
            f"pid {standby.pid}")}  # fmt: skip
    finally:
        engine.dispose()
        report(measured)
