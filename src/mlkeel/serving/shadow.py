"""Shadow traffic: a copy of every answered request, predicted later by the shadow version.

The response path only appends to a bounded queue (O(1), never raises, never waits). One
worker task drains it: it lets copies gather for up to ``linger`` seconds, takes every
queued request for the same shadow version (up to ``max_rows`` rows), predicts them in one
call in a thread, and hands the outputs to `on_outputs` (the prediction log, variant
``shadow``). Gathering matters: for a model bound by per-call overhead, one call for 30 rows
costs about what one call for one row does, so the shadow takes a small share of the CPU the
champion needs (measured in bench/rollout.py). A full queue drops the copy and
counts it; a failing shadow is counted and never reaches a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio.to_thread

from mlkeel.serving.model_slot import Outputs, ServedModel
from mlkeel.serving.validation import Rows

LINGER_SECONDS = 0.05  # off the response path, so waiting costs no client anything

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """One answered request, to be predicted again by the shadow version."""

    served: ServedModel
    rows: Rows
    request_id: str


OnOutputs = Callable[[ShadowJob, Outputs, float], None]
OnFailure = Callable[[ShadowJob, Exception], None]


class ShadowRunner:
    """A bounded queue of shadow jobs and the one task that predicts them."""

    def __init__(
        self,
        limit: int,
        max_rows: int,
        on_outputs: OnOutputs,
        on_failure: OnFailure,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self.limit = limit
        self.max_rows = max_rows
        self.linger = linger
        self._on_outputs = on_outputs
        self._on_failure = on_failure
        self._queue: deque[ShadowJob] = deque()
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._busy = False
        self.dropped = 0
        self.done = 0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def offer(self, job: ShadowJob) -> bool:
        """Queue `job`; False (and counted) when the queue is full. Call on the event loop."""
        if len(self._queue) >= self.limit:
            self.dropped += 1
            return False
        self._queue.append(job)
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="mlkeel-shadow")
        return True

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until the queue is empty (tests, benchmarks, shutdown)."""
        deadline = time.monotonic() + timeout
        while (self._queue or self._busy) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._queue.clear()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if self.linger > 0 and len(self._queue) < self.max_rows:
                await asyncio.sleep(self.linger)
            batch = self._take()
            self._busy = True
            try:
                await self._predict(batch)
            finally:
                self._busy = False

    def _take(self) -> list[ShadowJob]:
        batch = [self._queue.popleft()]
        rows = batch[0].rows.count
        while self._queue:
            job = self._queue[0]
            if job.served is not batch[0].served or rows + job.rows.count > self.max_rows:
                break
            batch.append(self._queue.popleft())
            rows += job.rows.count
        return batch

    async def _predict(self, batch: list[ShadowJob]) -> None:
        served = batch[0].served
        started = time.perf_counter()
        try:
            outputs = await anyio.to_thread.run_sync(served.predict, [j.rows for j in batch])
        except Exception as exc:
            if len(batch) > 1:  # one bad request must not fail its neighbours: each alone
                for job in batch:
                    await self._predict([job])
                return
            self._report(self._on_failure, batch[0], exc)
            return
        elapsed = (time.perf_counter() - started) * 1000
        for job, output in zip(batch, outputs, strict=True):
            self.done += 1
            self._report(self._on_outputs, job, output, elapsed)

    @staticmethod
    def _report(callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:  # a side channel: never let it stop the worker
            log.exception("handling a shadow prediction failed")
