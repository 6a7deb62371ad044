"""One ``mlkeel up`` process: the server in a thread, the job runner beside it, until a signal.

SIGINT (Ctrl-C) or SIGTERM starts a clean stop, in parallel: the server stops accepting,
finishes in-flight requests and drains the prediction log (uvicorn's graceful shutdown and the
app's lifespan); the runner schedules nothing more, lets running jobs end and records those
that could not as interrupted. A second signal during the stop exits at once (status 130).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlkeel.scheduling.runner import JobRunner
    from mlkeel.serving.background import BackgroundServer

log = logging.getLogger(__name__)
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve_and_schedule(
    server: BackgroundServer,
    runner: JobRunner | None,
    announce: Callable[[str], None],
    started: Callable[[], None] | None = None,
) -> None:
    """Run `server` and `runner` until SIGINT or SIGTERM, then stop both cleanly.

    Must run in the main thread (signal handlers live there).
    """
    stop = threading.Event()

    def on_signal(number: int, _frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        if stop.is_set():
            announce(f"{name} again: exiting now, without waiting")
            os._exit(130)
        announce(f"{name}: stopping (requests in flight finish, the log drains, jobs end)")
        stop.set()

    previous = {number: signal.signal(number, on_signal) for number in SIGNALS}
    serving = False
    try:
        server.start()
        serving = True
        if runner is not None:
            runner.start()
        if started is not None:
            started()
        stop.wait()
    finally:
        _stop_both(server if serving else None, runner, announce)
        for number, handler in previous.items():
            signal.signal(number, handler)


def _stop_both(
    server: BackgroundServer | None, runner: JobRunner | None, announce: Callable[[str], None]
) -> None:
    stopping = None
    if server is not None:
        stopping = threading.Thread(target=server.stop, name="mlkeel-server-stop")
        stopping.start()
    if runner is not None:
        interrupted = runner.stop()
        if interrupted:
            announce(f"{len(interrupted)} job run(s) recorded as interrupted")
    if stopping is not None:
        stopping.join()
    announce("stopped")
