"""Adaptive micro-batching: fewer predict calls, each request its own rows, no idle wait."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from mlkeel.serving.batching import Batcher

pytestmark = pytest.mark.timeout(60)


class Model:
    """Multiplies rows by 10, slowly enough for requests to queue; records each call."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds
        self.calls: list[tuple[str, list[list[int]]]] = []
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def __call__(self, key: str, inputs: Sequence[list[int]]) -> list[list[int]]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.calls.append((key, [list(rows) for rows in inputs]))
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
        if any(-1 in rows for rows in inputs):
            raise ValueError("the model cannot take -1")
        return [[value * 10 for value in rows] for rows in inputs]


def run(coroutine: object) -> object:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def test_fifty_concurrent_one_row_requests_take_far_fewer_calls_and_get_their_own_rows() -> None:
    model = Model()

    async def main() -> list[list[int]]:
        batcher = Batcher(model, max_rows=256, max_wait=0.002)
        try:
            return await asyncio.gather(*(batcher.submit("m", [i], 1) for i in range(50)))
        finally:
            await batcher.aclose()

    answers = run(main())

    assert answers == [[i * 10] for i in range(50)]
    assert len(model.calls) <= 5
    assert model.most_at_once == 1


def test_multi_row_requests_are_split_back_in_order() -> None:
    model = Model()
    sizes = [3, 1, 4, 1, 5, 9, 2, 6]
    requests = [list(range(sum(sizes[:i]), sum(sizes[: i + 1]))) for i in range(len(sizes))]

    async def main() -> list[list[int]]:
        batcher = Batcher(model, max_rows=8, max_wait=0.002)
        answers = await asyncio.gather(*(batcher.submit("m", r, len(r)) for r in requests))
        await batcher.aclose()
        return answers

    answers = run(main())

    assert answers == [[v * 10 for v in rows] for rows in requests]
    for _, inputs in model.calls:  # a batch stays within max_rows unless one request is bigger
        assert sum(len(rows) for rows in inputs) <= 8 or len(inputs) == 1


def test_a_lone_request_is_dispatched_at_once_whatever_the_max_wait() -> None:
    model = Model(seconds=0)

    async def main() -> list[int]:
        batcher = Batcher(model, max_rows=256, max_wait=30.0)
        answer = await asyncio.wait_for(batcher.submit("m", [7], 1), timeout=10)
        await batcher.aclose()
        return answer

    assert run(main()) == [70]


def test_an_announced_request_joins_the_batch_it_is_about_to_miss() -> None:
    model = Model(seconds=0)

    async def late(batcher: Batcher[str, list[int], list[int]]) -> list[int]:
        with batcher.expecting():
            await asyncio.sleep(0.05)  # still reading its body when the first one is queued
        return await batcher.submit("m", [2], 1)

    async def main() -> list[list[int]]:
        batcher = Batcher(model, max_rows=256, max_wait=5.0)
        late_one = asyncio.create_task(late(batcher))
        await asyncio.sleep(0)  # the late request announces itself first
        answers = await asyncio.gather(batcher.submit("m", [1], 1), late_one)
        await batcher.aclose()
        return answers

    assert run(main()) == [[10], [20]]
    assert len(model.calls) == 1


def test_requests_for_different_versions_are_never_mixed() -> None:
    model = Model()

    async def main() -> list[list[int]]:
        batcher = Batcher(model, max_rows=256, max_wait=0.002)
        keys = ["v1", "v2"] * 10
        answers = await asyncio.gather(*(batcher.submit(k, [i], 1) for i, k in enumerate(keys)))
        await batcher.aclose()
        return answers

    assert run(main()) == [[i * 10] for i in range(20)]
    for key, inputs in model.calls:
        expected = 0 if key == "v1" else 1
        assert all(rows[0] % 2 == expected for rows in inputs)


def test_one_bad_request_fails_alone_when_its_batch_fails() -> None:
    model = Model()

    async def main() -> list[object]:
        batcher = Batcher(model, max_rows=256, max_wait=0.002)
        values = [[1], [2], [-1], [4], [5]]
        answers = await asyncio.gather(
            *(batcher.submit("m", v, 1) for v in values), return_exceptions=True
        )
        await batcher.aclose()
        return answers

    answers = run(main())

    assert answers[:2] == [[10], [20]]
    assert isinstance(answers[2], ValueError)
    assert answers[3:] == [[40], [50]]


def test_without_batching_each_request_is_its_own_call_one_at_a_time() -> None:
    model = Model(seconds=0.005)

    async def main() -> list[list[int]]:
        batcher = Batcher(model, batching=False)
        answers = await asyncio.gather(*(batcher.submit("m", [i], 1) for i in range(12)))
        await batcher.aclose()
        return answers

    assert run(main()) == [[i * 10] for i in range(12)]
    assert len(model.calls) == 12
    assert model.most_at_once == 1


def test_a_cancelled_request_is_skipped() -> None:
    model = Model(seconds=0.05)

    async def main() -> list[int]:
        batcher = Batcher(model, batching=False)
        first = asyncio.create_task(batcher.submit("m", [1], 1))
        doomed = asyncio.create_task(batcher.submit("m", [2], 1))
        last = asyncio.create_task(batcher.submit("m", [3], 1))
        await asyncio.sleep(0.01)
        doomed.cancel()
        answers = [await first, await last]
        await batcher.aclose()
        return answers

    assert run(main()) == [[10], [30]]
    assert [inputs for _, inputs in model.calls] == [[[1]], [[3]]]
