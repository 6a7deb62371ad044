"""``mlkeel serve`` as a subprocess in its own process group: start, wait for /ready, read its
memory and its /metrics, stop it gracefully (SIGTERM; SIGKILL after a grace), always.

Memory is the sum of VmRSS over the server's process tree (serving_kit.processes scans /proc).
The stop grace is longer than the prediction log writer's 30 s drain, so a graceful stop is
given the time to store every queued record before the count is taken.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from serving_kit.processes import HOST, descendants, free_port, tree_cpu_seconds, tree_rss_bytes
from serving_kit.servers import base_env

READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 40.0
LOG_METRICS = (  # Prometheus sample names of the prediction log's writer
    "mlkeel_prediction_log_queue_depth",
    "mlkeel_prediction_log_dropped_total",
    "mlkeel_prediction_log_submitted_total",
    "mlkeel_prediction_log_written_total",
    "mlkeel_prediction_log_spooled_total",
    "mlkeel_prediction_log_write_failures_total",
    "mlkeel_prediction_log_spool_bytes",
)


class ServerFailed(RuntimeError):
    """The server exited or never became ready."""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log_file: Path
    ready_s: float = 0.0
    exit_code: int | None = None
    stopped_gracefully: bool | None = None
    stop_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def rss_bytes(self) -> int:
        return tree_rss_bytes(self.process.pid)

    def anon_bytes(self) -> int:
        """RssAnon over the tree: the heap, which a leak grows. VmRSS also holds file pages
        (libraries, mmapped files) that the kernel reclaims under memory pressure."""
        return sum(_status_kb(pid, "RssAnon:") * 1024 for pid in self.pids())

    def pids(self) -> list[int]:
        return [self.process.pid, *descendants(self.process.pid)]

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def log_metrics(self) -> dict[str, float]:
        """The prediction log's figures from /metrics (empty when it cannot be read)."""
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=5) as answer:  # noqa: S310
                text = answer.read().decode()
        except (urllib.error.URLError, OSError):
            return {}
        found: dict[str, float] = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in LOG_METRICS:
                found[name.removeprefix("mlkeel_prediction_log_")] = float(value)
        return found


@contextlib.contextmanager
def serving(project_root: Path, model: str, log_file: Path) -> Iterator[Server]:
    """`mlkeel serve --model MODEL` on a free loopback port; stopped (group-wide) on any exit."""
    port = free_port()
    argv = [
        sys.executable, "-m", "mlkeel", "serve", "-p", str(project_root),
        "--host", HOST, "--port", str(port), "--model", model,
    ]  # fmt: skip
    with log_file.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603  # our own argv
            argv,
            cwd=project_root,
            env=base_env(),  # no MLKEEL_* from the caller: the prediction log is on by default
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one
        )
    server = Server(process, port, log_file)
    try:
        _wait_ready(server)
        yield server
    finally:
        stop(server)


def _wait_ready(server: Server) -> None:
    started = time.perf_counter()
    while time.perf_counter() - started < READY_TIMEOUT_S:
        if not server.alive():
            raise ServerFailed(
                f"exited with code {server.process.returncode} before it was ready:\n"
                + server.log_tail()
            )
        if _ready(server.url + "/ready"):
            server.ready_s = time.perf_counter() - started
            return
        time.sleep(0.1)
    raise ServerFailed(f"not ready after {READY_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310  # loopback
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop(server: Server) -> None:
    """SIGTERM the process group; SIGKILL it (and escaped descendants) after the grace."""
    process = server.process
    if server.exit_code is not None:
        return
    family = descendants(process.pid)
    started = time.perf_counter()
    graceful = process.poll() is None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        graceful = False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    for pid in family:  # children that left the group
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    server.exit_code = process.returncode
    # uvicorn re-raises the SIGTERM it caught once shutdown is complete: -15 is a clean exit
    server.stopped_gracefully = graceful and process.returncode in (0, -signal.SIGTERM)
    server.stop_s = time.perf_counter() - started


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def count_logged(database: Path) -> int | None:
    """Rows in the prediction log table; None when the table cannot be read."""
    try:
        with contextlib.closing(sqlite3.connect(database, timeout=10)) as connection:
            (count,) = connection.execute("SELECT COUNT(*) FROM mlkeel_predictions").fetchone()
    except sqlite3.Error:
        return None
    return int(count)


def spool_bytes(project_root: Path) -> int:
    """Bytes left in the spool folder (records never stored in the database)."""
    folder = project_root / ".mlkeel" / "spool"
    if not folder.is_dir():
        return 0
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
