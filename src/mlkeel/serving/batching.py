"""Adaptive micro-batching: concurrent requests' rows go to the model in one predict call.

One worker task per batcher runs one predict at a time, in a thread (so one model never
predicts twice at once in a worker process). When it is idle, a lone request is dispatched at
once: there is no fixed wait. While a predict runs, new requests queue; the next call takes
all of them (up to ``max_rows``), and waits up to ``max_wait`` for more only while requests
that announced themselves (`expecting`) are still on their way. With batching off, the same
worker runs one request per call: predict is serialised without a lock on the event loop.

A batch holds requests for the same key only (the served model version), so a request is
answered wholly by the version it started with, even across a hot swap. If a merged call
fails, each request in it is retried alone, so one bad request cannot fail its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import anyio.to_thread

Key = TypeVar("Key")
In = TypeVar("In")
Out = TypeVar("Out")

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Item(Generic[Key, In, Out]):
    key: Key
    value: In
    rows: int
    future: asyncio.Future[Out] = field(repr=False)


class Batcher(Generic[Key, In, Out]):
    """Runs ``predict(key, inputs) -> outputs`` (one output per input) in a worker thread."""

    def __init__(
        self,
        predict: Callable[[Key, Sequence[In]], Sequence[Out]],
        *,
        batching: bool = True,
        max_rows: int = 256,
        max_wait: float = 0.002,
    ) -> None:
        self._predict = predict
        self._batching = batching
        self._max_rows = max_rows
        self._max_wait = max_wait
        self._queue: deque[_Item[Key, In, Out]] = deque()
        self._arrived = asyncio.Event()
        self._expected = 0
        self._worker: asyncio.Task[None] | None = None
        self.calls = 0  # predict calls made, for tests and curiosity

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """Announce a request that will `submit` soon (while its body is read and checked)."""
        self._expected += 1
        try:
            yield
        finally:
            self._expected -= 1

    async def submit(self, key: Key, value: In, rows: int) -> Out:
        """Queue `value` (`rows` rows) for the model `key` and wait for its output."""
        loop = asyncio.get_running_loop()
        item: _Item[Key, In, Out] = _Item(key, value, rows, loop.create_future())
        self._queue.append(item)
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run(), name="mlkeel-batcher")
        return await item.future

    async def aclose(self) -> None:
        """Stop the worker; requests still queued are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for item in self._queue:
            item.future.cancel()
        self._queue.clear()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            batch = self._take([])
            if self._batching and self._max_wait > 0:
                await self._gather(batch)
            await self._execute(batch)

    def _take(self, batch: list[_Item[Key, In, Out]]) -> list[_Item[Key, In, Out]]:
        """Move queued items of the batch's key into it, oldest first, within the row limit."""
        rows = sum(item.rows for item in batch)
        while self._queue:
            item = self._queue[0]
            if item.future.done():  # its request was cancelled while it waited
                self._queue.popleft()
                continue
            if batch and (
                not self._batching
                or item.key is not batch[0].key
                or rows + item.rows > self._max_rows
            ):
                break
            batch.append(self._queue.popleft())
            rows += item.rows
        return batch

    async def _gather(self, batch: list[_Item[Key, In, Out]]) -> None:
        """Wait up to max_wait for requests that announced themselves but are not queued yet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._max_wait
        while self._expected > 0 and not self._queue and self._room(batch):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
            self._take(batch)  # what is left queued belongs to another batch: stop then

    def _room(self, batch: list[_Item[Key, In, Out]]) -> bool:
        return sum(item.rows for item in batch) < self._max_rows

    async def _execute(self, batch: list[_Item[Key, In, Out]]) -> None:
        batch = [item for item in batch if not item.future.done()]
        if not batch:
            return
        try:
            outputs = await self._call(batch)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0], exc)
                return
            log.warning("a batch of %d requests failed (%r); retrying each alone", len(batch), exc)
            for item in batch:
                try:
                    _settle(item, (await self._call([item]))[0])
                except Exception as single:
                    _settle(item, single)
            return
        for item, output in zip(batch, outputs, strict=True):
            _settle(item, output)

    async def _call(self, batch: list[_Item[Key, In, Out]]) -> Sequence[Out]:
        self.calls += 1
        key, values = batch[0].key, [item.value for item in batch]
        outputs = await anyio.to_thread.run_sync(self._predict, key, values)
        if len(outputs) != len(values):
            raise RuntimeError(f"predict returned {len(outputs)} outputs for {len(values)} inputs")
        return outputs


def _settle(item: _Item[Key, In, Out], result: Out | BaseException) -> None:
    if item.future.done():
        return
    if isinstance(result, BaseException):
        item.future.set_exception(result)
    else:
        item.future.set_result(result)
