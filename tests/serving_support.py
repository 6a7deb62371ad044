"""Helpers for the server tests: projects holding the model, live servers, polling."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from mlkeel.registry import Registry
from mlkeel.settings import Settings
from mlkeel.training import TrainedModel, to_candidate

MODEL = "breast_cancer"


@dataclass(frozen=True)
class Project:
    path: Path
    settings: Settings
    registry: Registry

    def register(self, trained: TrainedModel, promote: bool = False) -> int:
        version = self.registry.register(to_candidate(trained)).version
        if promote:
            self.registry.set_alias(MODEL, "champion", version)
        return version

    def with_serving(self, **changes: Any) -> Settings:
        serving = self.settings.serving.model_copy(update=changes)
        return self.settings.model_copy(update={"serving": serving})


@contextmanager
def live(app: FastAPI, ready: bool = True) -> Iterator[httpx.Client]:
    """`app` served by uvicorn on a free loopback port; a client for it (ready first)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            wait_until(lambda: server.started, what="the server to start")
            if ready:
                wait_until(lambda: client.get("/ready").status_code == 200, what="/ready")
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "it") -> float:
    """Poll `condition` until true; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started
