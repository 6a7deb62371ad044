"""Server processes: start in their own process group, wait until ready, sample the tree's memory,
stop (SIGTERM, then SIGKILL) even on error.

Memory is the sum of VmRSS over the server's process tree, found by scanning /proc for
descendants (this kernel has no /proc/PID/task/TID/children). A ``uv`` launcher process in the
tree is left out of the sum: it only waits for its child, and servers we start without uv
would not have it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
READY_POLL_S = 0.05
RSS_POLL_S = 0.25
STOP_GRACE_S = 8.0
LAUNCHERS = frozenset({"uv"})
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Launch:
    """How to start one server and how to know it is ready."""

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: Path
    port: int
    ready_path: str
    log_file: Path


@dataclass
class RunningServer:
    launch: Launch
    process: subprocess.Popen[bytes]
    started: float
    ready_s: float | None = None
    ready_cpu_s: float | None = None  # CPU the process tree used to get ready
    peak_rss_bytes: int = 0
    _sampling: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.launch.port}"

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.launch.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""


class ServerFailed(RuntimeError):
    """A server exited or never became ready."""


@contextlib.contextmanager
def running(launch: Launch, ready_timeout_s: float) -> Iterator[RunningServer]:
    """Start the server, wait for readiness, sample its memory until stopped; always stop it."""
    server = _spawn(launch)
    sampler = threading.Thread(target=_sample_rss, args=(server,), daemon=True)
    sampler.start()
    try:
        _wait_ready(server, ready_timeout_s)
        yield server
    finally:
        server._sampling.set()
        stop(server.process)
        sampler.join(timeout=2)


def _spawn(launch: Launch) -> RunningServer:
    with launch.log_file.open("ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603  # our own argv
            list(launch.argv),
            cwd=launch.cwd,
            env=dict(launch.env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )
    return RunningServer(launch, process, started)


def _wait_ready(server: RunningServer, timeout_s: float) -> None:
    url = server.url + server.launch.ready_path
    deadline = server.started + timeout_s
    last = "no answer"
    while time.perf_counter() < deadline:
        if server.process.poll() is not None:
            raise ServerFailed(
                f"exited with code {server.process.returncode} before it was ready:\n"
                + server.log_tail()
            )
        ready, last = _probe(url, last)
        if ready:
            server.ready_s = time.perf_counter() - server.started
            server.ready_cpu_s = tree_cpu_seconds(server.process.pid)
            return
        time.sleep(READY_POLL_S)
    raise ServerFailed(
        f"not ready after {timeout_s:.0f} s (last answer: {last}):\n{server.log_tail()}"
    )


def _probe(url: str, last: str) -> tuple[bool, str]:
    """(ready, what it answered): 200 is ready; an HTTP error keeps its body for the report."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310  # loopback
            return response.status == 200, f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code} {exc.read()[:300]!r}"
    except (urllib.error.URLError, OSError):
        return False, last


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL it (and any escaped descendant) after a grace."""
    if process.poll() is not None:
        _kill_tree(process.pid, signal.SIGKILL)
        return
    family = descendants(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_GRACE_S)
    for pid in family:  # children that left the group (a server may setsid its workers)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _kill_tree(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
    for child in descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, sig)


# ---- memory -----------------------------------------------------------------------------------
def _sample_rss(server: RunningServer) -> None:
    while not server._sampling.wait(RSS_POLL_S):
        if server.process.poll() is not None:
            return
        total = tree_rss_bytes(server.process.pid)
        server.peak_rss_bytes = max(server.peak_rss_bytes, total)


def tree_rss_bytes(root: int) -> int:
    return sum(_rss(pid) for pid in [root, *descendants(root)] if _name(pid) not in LAUNCHERS)


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _ppid(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found, frontier = [], [root]
    while frontier:
        kids = children.get(frontier.pop(), [])
        found.extend(kids)
        frontier.extend(kids)
    return found


def _ppid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU time of the process tree's live members, in seconds."""
    ticks = 0
    for pid in [root, *descendants(root)]:
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the name (which, in parentheses, may hold spaces): state is [0]."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
