"""The scale-out topology on loopback: scratch PostgreSQL databases, a real ``mlflow server``,
``mlkeel serve`` replicas and ``mlkeel up`` schedulers as subprocesses, each in its own process
group, all torn down (and the databases dropped) by ``Cluster.close`` whatever happened."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from support import free_port

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432"


def clean_environment(**extra: str) -> dict[str, str]:
    """This environment without MLKEEL_* / MLFLOW_* variables, plus `extra`."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("MLKEEL_", "MLFLOW_"))}
    return kept | extra


def wait_for(condition: Callable[[], Any], timeout: float, what: str, log: Path | None) -> Any:
    """Poll `condition` until it is truthy; fail with the tail of `log` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    said = "" if log is None or not log.exists() else log.read_text(errors="replace")[-4000:]
    raise AssertionError(f"{what} within {timeout} s; {log} said:\n{said}")


def answers(url: str, path: str) -> bool:
    try:
        return httpx.get(url + path, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def rss_mib(pid: int) -> float:
    """Resident memory of one process (VmRSS), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Service:
    """One subprocess: its name, process, base URL and log file."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Cluster:
    """Everything started for one test, in start order; `close` undoes it in reverse."""

    root: Path
    databases: list[str] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)

    def database(self, purpose: str) -> str:
        """A fresh scratch database; dropped by `close`."""
        name = f"mlkeel_scale_{purpose}_{uuid.uuid4().hex[:8]}"
        with _admin() as admin, admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return f"{POSTGRES}/{name}"

    def start(self, name: str, command: list[str], port: int, **env: str) -> Service:
        log = self.root / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                env=clean_environment(**env), cwd=self.root,
            )  # fmt: skip
        service = Service(name, process, f"http://127.0.0.1:{port}", log)
        self.services.append(service)
        return service

    def mlflow_server(self, backend: str) -> Service:
        """``mlflow server`` on PostgreSQL, proxying artifacts to a local folder."""
        port = free_port()
        artifacts = self.root / "mlflow-artifacts"
        artifacts.mkdir()
        command = [
            sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
            "--serve-artifacts", "--artifacts-destination", str(artifacts),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}",
        ]  # fmt: skip
        server = self.start("mlflow", command, port)
        wait_for(lambda: answers(server.url, "/health"), 120, "mlflow server is not up",
                 server.log)  # fmt: skip
        return server

    def mlkeel(self, name: str, project: Path, verb: str, **env: str) -> Service:
        port = free_port()
        command = [sys.executable, "-m", "mlkeel", verb, "-p", str(project), "--port", str(port)]
        return self.start(name, command, port, **env)

    def stop(self, service: Service, timeout: float = 60) -> int:
        """SIGTERM, then wait: the graceful stop (requests finish, the log drains)."""
        if service.process.poll() is None:
            service.process.send_signal(signal.SIGTERM)
        return service.process.wait(timeout)

    def close(self) -> None:
        for service in reversed(self.services):
            if service.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(service.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    service.process.wait(30)
        with _admin() as admin, admin.connect() as connection:
            for name in self.databases:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _admin() -> Any:
    engine = sa.create_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    try:
        yield engine
    finally:
        engine.dispose()
