"""The soak's time series: every interval, the server's memory, the last interval's latency
percentiles and counts, the client's pacing, and the prediction log's queue and drops."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from soak_kit.client import Interval, Tally
from soak_kit.server import Server

MB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    t_s: float  # since the paced load started
    rss_mb: float  # VmRSS of the server's process tree
    anon_mb: float  # RssAnon of the tree: the heap, unaffected by page-cache reclaim
    requests: int  # finished in the interval (answers + transport failures)
    ok: int
    errors: int  # non-2xx answers + transport failures
    target_rps: float
    achieved_rps: float  # answered requests per second over the interval
    p50_ms: float | None
    p99_ms: float | None  # from the actual send
    p99_corrected_ms: float | None  # from the due time: includes any client-side lag
    max_ms: float | None
    late_sends: int  # sends more than 10 ms behind their due time
    max_lag_ms: float
    in_flight: int
    server_cpu_pct: float | None  # the server tree's CPU over the interval, % of one core
    client_cpu_pct: float | None  # this process's CPU over the interval, % of one core
    load_average: float  # the machine's 1-minute load average (it is shared)
    queue_depth: float | None  # prediction log records waiting in the server's memory
    dropped: float | None  # prediction log records lost, cumulative
    submitted: float | None  # prediction log records handed to the writer, cumulative
    written: float | None  # ... inserted into the database, cumulative

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile_ms(values_s: list[float], q: float) -> float | None:
    if not values_s:
        return None
    return float(np.percentile(np.asarray(values_s) * 1000.0, q))


@dataclass
class CpuMeter:
    """CPU seconds of the server tree and of this process since the last reading."""

    server: Server
    last: tuple[float, float] | None = None

    def read(self) -> tuple[float | None, float | None]:
        now = (self.server.cpu_seconds(), time.process_time())
        last, self.last = self.last, now
        if last is None:
            return None, None
        return now[0] - last[0], now[1] - last[1]


async def take_sample(
    server: Server, tally: Tally, cpu: CpuMeter, *, t_s: float, seconds: float, target_rps: float
) -> Sample:
    """Close the current interval of `tally` and read the server's memory, CPU and /metrics."""
    interval: Interval = tally.take()
    server_cpu, client_cpu = cpu.read()
    rss = await asyncio.to_thread(server.rss_bytes)
    anon = await asyncio.to_thread(server.anon_bytes)
    metrics = await asyncio.to_thread(server.log_metrics)
    return Sample(
        t_s=round(t_s, 1),
        rss_mb=rss / MB,
        anon_mb=anon / MB,
        requests=interval.requests,
        ok=interval.ok,
        errors=interval.errors,
        target_rps=target_rps,
        achieved_rps=interval.ok / seconds if seconds > 0 else 0.0,
        p50_ms=percentile_ms(interval.latencies_s, 50),
        p99_ms=percentile_ms(interval.latencies_s, 99),
        p99_corrected_ms=percentile_ms(interval.corrected_s, 99),
        max_ms=percentile_ms(interval.latencies_s, 100),
        late_sends=interval.late_sends,
        max_lag_ms=interval.max_lag_s * 1000.0,
        in_flight=tally.in_flight,
        server_cpu_pct=_share(server_cpu, seconds),
        client_cpu_pct=_share(client_cpu, seconds),
        load_average=os.getloadavg()[0],
        queue_depth=metrics.get("queue_depth"),
        dropped=metrics.get("dropped_total"),
        submitted=metrics.get("submitted_total"),
        written=metrics.get("written_total"),
    )


def _share(cpu_s: float | None, seconds: float) -> float | None:
    return None if cpu_s is None or seconds <= 0 else cpu_s / seconds * 100.0


async def sample_every(
    server: Server,
    tally: Tally,
    cpu: CpuMeter,
    samples: list[Sample],
    finished: asyncio.Event,
    *,
    every_s: float,
    load_s: float,
    target_rps: float,
    started: float,
    on_sample: Callable[[Sample], None],
) -> None:
    """A sample at started + k * `every_s` while that is before the load's end (`load_s`), then
    a last one, covering the rest, once `finished` is set (every request answered)."""
    last, k = started, 1
    while True:
        due = started + k * every_s
        if due - started >= load_s - 0.5:
            await finished.wait()
        else:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        now = time.perf_counter()
        sample = await take_sample(
            server, tally, cpu, t_s=now - started, seconds=now - last, target_rps=target_rps
        )
        last, k = now, k + 1
        samples.append(sample)
        on_sample(sample)
        if finished.is_set():
            return
