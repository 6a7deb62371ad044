"""Run a measuring script in a fresh process: its JSON answer, wall time and peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KIT = Path(__file__).resolve().parent
EVIDENTLY = ("evidently==0.7.23", "pandas<3", "pyarrow")


@dataclass(frozen=True)
class ChildRun:
    """One finished child: what it printed, and what the parent saw."""

    answer: dict[str, Any]
    wall_s: float  # process start to exit, as the parent timed it (interpreter, imports)
    tree_peak_rss_bytes: int  # wait4's ru_maxrss: the largest process of the child's tree


class ChildFailed(RuntimeError):
    pass


def python_command(script: str, *args: str) -> list[str]:
    """This environment's interpreter running one of the kit's scripts."""
    return [sys.executable, str(KIT / script), *args]


def evidently_command(script: str, *args: str) -> list[str]:
    """Evidently's own environment (uv, no project): its import fails with pandas 3."""
    withs = [part for package in EVIDENTLY for part in ("--with", package)]
    return ["uv", "run", "--no-project", "--quiet", *withs, "python", str(KIT / script), *args]


def run_child(command: list[str], timeout_s: float) -> ChildRun:
    """Run `command` and parse the last stdout line as JSON; raise ChildFailed otherwise."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, start_new_session=True)
        status, usage = _wait(process, timeout_s)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if status != 0 or not stdout.strip():
        tail = "\n".join(stderr.strip().splitlines()[-6:])
        script = next((Path(part).name for part in command if part.endswith(".py")), command[0])
        raise ChildFailed(f"{script} exited {status}: {tail}")
    answer = json.loads(stdout.strip().splitlines()[-1])
    return ChildRun(answer, wall, usage.ru_maxrss * 1024)


def _wait(process: subprocess.Popen[bytes], timeout_s: float) -> tuple[int, Any]:
    """Reap the child with wait4 (Popen.wait would discard its resource usage)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid == process.pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage
        if time.monotonic() > deadline:
            os.killpg(process.pid, 9)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            raise ChildFailed(f"timed out after {timeout_s:.0f} s: {' '.join(process.args)}")
        time.sleep(0.02)
