"""A server running in a thread of this process: for ``mlkeel demo`` and ``mlkeel up``."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from mlkeel.errors import MlkeelError


class BackgroundServer:
    """`app` served by uvicorn on `host`:`port` (0 picks a free port) in a daemon thread."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> BackgroundServer:
        """Start and wait until the app's startup (model loading) is done."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MlkeelError(f"the server at {self.url} did not start; see its log above")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful: in-flight requests finish and the prediction log drains."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()
