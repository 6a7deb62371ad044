"""Small helpers several test modules share: scaffolded projects, free ports, running the CLI
in-process, readiness polling."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import httpx
import pytest

from mlkeel.cli import main
from mlkeel.scaffold import init_project


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``mlkeel ARGS`` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def ready(client: httpx.Client) -> bool:
    """Whether the server behind `client` answers /ready with 200 (False while it starts)."""
    try:
        return client.get("/ready").status_code == 200
    except httpx.TransportError:
        return False


def make_project(root: Path, store: Path, example: str | None = "breast_cancer") -> Path:
    """A scaffolded project whose MLflow store is a copy of `store` (an initialised one)."""
    init_project(root, example)
    (root / ".mlkeel").mkdir(exist_ok=True)
    shutil.copyfile(store, root / ".mlkeel" / "mlflow.db")
    return root
