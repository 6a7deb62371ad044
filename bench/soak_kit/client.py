"""A lean HTTP/1.1 load client on asyncio streams: keep-alive connections, pre-formatted
requests, only the status line and Content-Length parsed, so the client spends little of the
CPU it shares with the server.

Two ways to drive it:

- :func:`closed_loop`: `concurrency` workers send back to back (the maximum throughput);
- :func:`paced`: open-loop at a fixed rate. Request i is due at ``start + i / rate``; a free
  worker takes the next due slot, sleeps until it, sends. While a worker is free the rate holds
  whatever the latency; when every worker is busy, sends start late and the lag is measured.
  Latency is kept two ways: from the actual send (service time) and from the due time
  (corrected for coordinated omission).

Every request started is awaited (up to the timeout) before a run returns, so the answered
count is exact: it is what the server saw and logged.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TIMEOUT_S = 10.0
RECONNECT_PAUSE_S = 0.05


class ProtocolError(Exception):
    """The server's answer was not HTTP/1.1 we understand."""


def make_requests(host: str, port: int, path: str, rows: Sequence[dict[str, Any]]) -> list[bytes]:
    """One raw POST per row, each ``{"instances": [row]}``."""
    requests = []
    for row in rows:
        body = json.dumps({"instances": [row]}, separators=(",", ":")).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


class Connection:
    """One keep-alive connection, reopened after any failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, request: bytes) -> int:
        """POST and read the whole answer; its status code."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(request)
        status_line = await reader.readline()
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"bad status line {status_line[:80]!r}")
        length, close = await _headers(reader)
        if length is None:
            raise ProtocolError("an answer without Content-Length")
        await reader.readexactly(length)
        if close:
            self.close()
        return int(parts[1])

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
        self._streams = None


async def _headers(reader: asyncio.StreamReader) -> tuple[int | None, bool]:
    """Content-Length and whether the server closes, reading up to the blank line."""
    length, close = None, False
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    return length, close


@dataclass
class Interval:
    """What happened since the last :meth:`Tally.take`."""

    latencies_s: list[float] = field(default_factory=list)  # from the actual send
    corrected_s: list[float] = field(default_factory=list)  # from the due time (paced only)
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)  # non-2xx answers
    failures: Counter[str] = field(default_factory=Counter)  # transport errors, timeouts
    late_sends: int = 0  # paced: sends that started more than 10 ms after their due time
    max_lag_s: float = 0.0

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) + sum(self.failures.values())

    @property
    def requests(self) -> int:
        return self.ok + self.errors


@dataclass
class Tally:
    """The running interval plus the totals; one event loop, so no locks."""

    current: Interval = field(default_factory=Interval)
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0

    def take(self) -> Interval:
        taken, self.current = self.current, Interval()
        return taken

    def record(self, status: int | str, sent: float, done: float, due: float | None) -> None:
        interval = self.current
        if isinstance(status, str):
            interval.failures[status] += 1
            self.failures[status] += 1
            return
        interval.latencies_s.append(done - sent)
        if due is not None:
            interval.corrected_s.append(done - due)
        if 200 <= status < 300:
            interval.ok += 1
            self.ok += 1
        else:
            interval.statuses[status] += 1
            self.statuses[status] += 1


async def _one(connection: Connection, request: bytes, tally: Tally, due: float | None) -> None:
    sent = time.perf_counter()
    tally.in_flight += 1
    try:
        async with asyncio.timeout(TIMEOUT_S):
            status: int | str = await connection.send(request)
    except (OSError, asyncio.IncompleteReadError, ProtocolError, TimeoutError) as exc:
        connection.close()
        status = type(exc).__name__
    finally:
        tally.in_flight -= 1
    tally.record(status, sent, time.perf_counter(), due)
    if isinstance(status, str):
        await asyncio.sleep(RECONNECT_PAUSE_S)


@dataclass
class _Plan:
    host: str
    port: int
    requests: Sequence[bytes]
    tally: Tally
    next_index: int = 0

    def next_request(self) -> bytes:
        request = self.requests[self.next_index % len(self.requests)]
        self.next_index += 1
        return request


async def _closed_worker(plan: _Plan, deadline: float) -> None:
    connection = Connection(plan.host, plan.port)
    try:
        while time.perf_counter() < deadline:
            await _one(connection, plan.next_request(), plan.tally, None)
    finally:
        connection.close()


async def _paced_worker(plan: _Plan, start: float, end: float, rate: float) -> None:
    connection = Connection(plan.host, plan.port)
    try:
        while True:
            due = start + plan.next_index / rate
            if due >= end or time.perf_counter() >= end:  # behind schedule at the end: stop
                return
            request = plan.next_request()
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                lag = now - due
                plan.tally.current.max_lag_s = max(plan.tally.current.max_lag_s, lag)
                plan.tally.current.late_sends += lag > 0.01
            await _one(connection, request, plan.tally, due)
    finally:
        connection.close()


async def closed_loop(
    host: str, port: int, requests: Sequence[bytes], tally: Tally, *, concurrency: int,
    seconds: float,
) -> float:  # fmt: skip
    """Send back to back from `concurrency` connections for `seconds`; the elapsed time."""
    plan = _Plan(host, port, requests, tally)
    started = time.perf_counter()
    workers = [_closed_worker(plan, started + seconds) for _ in range(concurrency)]
    await _bounded(workers, seconds)
    return time.perf_counter() - started


async def paced(
    host: str, port: int, requests: Sequence[bytes], tally: Tally, *, rate: float,
    seconds: float, connections: int,
) -> tuple[float, int]:  # fmt: skip
    """Send `rate` requests per second for `seconds` over up to `connections`.

    No request starts after `seconds`; the elapsed time and how many due slots went unsent
    because the client was behind schedule when time ran out."""
    plan = _Plan(host, port, requests, tally)
    started = time.perf_counter()
    end = started + seconds
    workers = [_paced_worker(plan, started, end, rate) for _ in range(connections)]
    await _bounded(workers, seconds)
    return time.perf_counter() - started, max(0, math.ceil(rate * seconds) - plan.next_index)


async def _bounded(workers: list[Any], seconds: float) -> None:
    """Run the workers; past `seconds` plus the request timeout and a margin, cancel them."""
    tasks = [asyncio.create_task(worker) for worker in workers]
    try:
        await asyncio.wait(tasks, timeout=seconds + TIMEOUT_S + 5)
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            raise result
