"""Soak test (issue 11): `mlkeel serve` with the prediction log on, held for minutes at 70% of its
measured maximum throughput; memory, latency over time, errors, and every answer logged.

    uv run python bench/soak.py [--minutes 10] [--find-max-seconds 20] [--quick]

A temporary project (the breast_cancer example: a scaled logistic regression, 30 numeric
features) is trained, registered and promoted through the library; ``mlkeel serve`` runs as
its own process group on a free 127.0.0.1 port with the default configuration (prediction log
ON, SQLite). Single-row requests:

1. one checked request, then a short warm-up;
2. the maximum: back-to-back requests from 8 connections for ``--find-max-seconds``;
3. the soak: an open-loop paced load at 70% of that maximum for ``--minutes`` (the client
   holds the rate and reports achieved vs target), sampled every 10 s: the server tree's RSS,
   the interval's p50/p99, requests, errors (non-2xx and transport), the prediction log's
   queue depth and dropped count from /metrics;
4. a graceful stop (SIGTERM), then the prediction log table is counted against the requests
   answered over the server's whole life.

Prints the series and the checks (RSS growth < 10%, zero errors, rate held, every answer
logged, nothing dropped), writes bench/results/soak-<timestamp>.json. The server is stopped on
any exit (error, Ctrl-C, SIGTERM, or the overall time bound). ``--quick``: 1 minute, 10 s max.
The client shares the machine with the server (one asyncio thread, raw HTTP/1.1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Coroutine
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from serving_kit.processes import HOST
from soak_kit import report
from soak_kit.client import Tally, closed_loop, make_requests, paced
from soak_kit.project import SoakProject, build_project
from soak_kit.samples import MB, CpuMeter, Sample, percentile_ms, sample_every, take_sample
from soak_kit.server import Server, count_logged, serving, spool_bytes

RESULTS_DIR = Path(__file__).resolve().parent / "results"
LOAD_SHARE = 0.70
MAX_CONCURRENCY = 8
PACED_CONNECTIONS = 64
SAMPLE_EVERY_S = 10.0
WARMUP_S = 3.0
SETUP_BUDGET_S = 600.0  # project build, server start and stop, counting: the bound beyond load
T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def say(self, text: str) -> None:
        elapsed = int(time.perf_counter() - self.start)
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}", flush=True)


# ---- the phases --------------------------------------------------------------------------------
async def load_phases(
    server: Server, project: SoakProject, args: argparse.Namespace, clock: Clock
) -> tuple[dict[str, Any], list[Sample]]:
    """Check, warm up, find the maximum, soak at 70% of it; the figures and the samples."""
    path = f"/v1/models/{project.model}/predict"
    requests = make_requests(HOST, server.port, path, project.rows)
    await asyncio.to_thread(check_answer, server.url + path, project.rows[0])
    run: dict[str, Any] = {"rss_ready_mb": server.rss_bytes() / MB}

    warm = Tally()
    await closed_loop(HOST, server.port, requests, warm, concurrency=MAX_CONCURRENCY,
                      seconds=WARMUP_S)  # fmt: skip
    top = Tally()
    elapsed = await closed_loop(
        HOST, server.port, requests, top, concurrency=MAX_CONCURRENCY, seconds=args.find_max
    )
    max_rps = top.ok / elapsed
    target = LOAD_SHARE * max_rps
    clock.say(
        f"maximum at concurrency {MAX_CONCURRENCY}: {max_rps:.1f} req/s over {elapsed:.1f} s "
        f"({sum(top.statuses.values()) + sum(top.failures.values())} errors); "
        f"soak target {target:.1f} req/s for {args.minutes:g} min"
    )
    if max_rps <= 0:
        raise RuntimeError(f"no successful request while finding the maximum:\n{server.log_tail()}")

    soak = Tally()
    print(report.header(), flush=True)
    cpu = CpuMeter(server)
    samples = [await take_sample(server, soak, cpu, t_s=0.0, seconds=1.0, target_rps=target)]
    print(report.row(samples[0]), flush=True)
    seconds = args.minutes * 60.0
    finished = asyncio.Event()
    started = time.perf_counter()
    sampler = asyncio.create_task(
        sample_every(server, soak, cpu, samples, finished, every_s=SAMPLE_EVERY_S, load_s=seconds,
                     target_rps=target, started=started,
                     on_sample=lambda s: print(report.row(s), flush=True))
    )  # fmt: skip
    try:
        soak_elapsed, unsent = await paced(HOST, server.port, requests, soak, rate=target,
                                   seconds=seconds, connections=PACED_CONNECTIONS)  # fmt: skip
        finished.set()
        await asyncio.wait_for(sampler, timeout=30)
    finally:
        sampler.cancel()

    run.update(
        max_rps=max_rps,
        max_seconds=elapsed,
        max_p99_ms=_p99(top),
        max_errors=sum(top.statuses.values()) + sum(top.failures.values()),
        target_rps=target,
        soak_seconds=soak_elapsed,
        soak_answered=soak.ok,
        soak_achieved_rps=soak.ok / soak_elapsed,
        soak_error_kinds={**{str(k): v for k, v in soak.statuses.items()}, **soak.failures},
        late_sends=sum(s.late_sends for s in samples),
        unsent=unsent,
        answered_total=1 + warm.ok + top.ok + soak.ok,  # the checked request, then the loads
        log_metrics_before_stop=server.log_metrics(),
    )
    return run, samples


def _p99(tally: Tally) -> float | None:
    return percentile_ms(tally.take().latencies_s, 99)


def check_answer(url: str, row: dict[str, Any]) -> None:
    """One request before any load: a 200 with one prediction, or raise."""
    body = json.dumps({"instances": [row]}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310  # loopback
        predictions = json.loads(answer.read()).get("predictions")
    if not isinstance(predictions, list) or len(predictions) != 1:
        raise RuntimeError(f"unexpected answer to one row: {predictions!r}")


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """On uvloop when it is installed (less client CPU), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


# ---- main --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=None, help="soak length (default 10)")
    parser.add_argument(
        "--find-max-seconds", dest="find_max", type=float, default=None,
        help="how long to measure the maximum throughput (default 20)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="1 minute soak, 10 s maximum")
    args = parser.parse_args(argv)
    args.minutes = args.minutes or (1.0 if args.quick else 10.0)
    args.find_max = args.find_max or (10.0 if args.quick else 20.0)
    if not 0.5 <= args.minutes <= 120:
        parser.error("--minutes must be between 0.5 and 120")
    if not 3 <= args.find_max <= 300:
        parser.error("--find-max-seconds must be between 3 and 300")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through `serving(...)`: the server is stopped


def environment() -> dict[str, Any]:
    found: dict[str, Any] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    for name in ("mlkeel", "uvicorn", "fastapi", "scikit-learn", "sqlalchemy", "uvloop"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def main() -> None:
    args = parse_args()
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(sig, _terminate)
    signal.alarm(int(SETUP_BUDGET_S + WARMUP_S + args.find_max + args.minutes * 60))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    clock = Clock()
    meta: dict[str, Any] = {
        "started": stamp, "minutes": args.minutes, "find_max_seconds": args.find_max,
        "load_share": LOAD_SHARE, "max_concurrency": MAX_CONCURRENCY,
        "paced_connections": PACED_CONNECTIONS, "sample_every_s": SAMPLE_EVERY_S,
        "load_average_start": os.getloadavg(), "environment": environment(),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="mlkeel-soak-") as scratch:
        project = build_project(Path(scratch) / "project")
        clock.say(f"project ready: {project.model} v{project.version} is the champion")
        log_file = Path(scratch) / "server.log"
        try:
            with serving(project.root, project.model, log_file) as server:
                clock.say(f"server ready after {server.ready_s:.1f} s at {server.url}")
                run, samples = run_async(load_phases(server, project, args, clock))
        except BaseException:
            print(f"server log (tail):\n{_tail(log_file)}", file=sys.stderr)
            raise
        signal.alarm(0)
        clock.say(f"server stopped in {server.stop_s:.1f} s, exit code {server.exit_code}")
        run.update(
            server_exit_code=server.exit_code,
            server_stopped_gracefully=server.stopped_gracefully,
            server_ready_s=server.ready_s,
            records_logged=count_logged(project.database_path),
            spool_bytes_left=spool_bytes(project.root),
            load_average_end=os.getloadavg(),
            server_log_tail=server.log_tail(10),
        )
    found = report.checks(run, samples)
    print(f"\nmaximum {run['max_rps']:.1f} req/s at c{MAX_CONCURRENCY} "
          f"(p99 {run['max_p99_ms']:.1f} ms); soak target {run['target_rps']:.1f} req/s, "
          f"achieved {run['soak_achieved_rps']:.1f} req/s over {run['soak_seconds']:.0f} s; "
          f"load average {meta['load_average_start'][0]:.1f} -> "
          f"{run['load_average_end'][0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print("p99 ms per interval: " + ", ".join(report.fmt(s.p99_ms) for s in samples[1:]))
    report.print_checks(found)
    path = report.write_json(RESULTS_DIR / f"soak-{stamp}.json", {**meta, **run}, samples, found)
    print(f"\nresults: {path} ({time.perf_counter() - clock.start:.0f} s in all)")
    sys.exit(0 if all(check.passed is not False for check in found) else 1)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    main()
