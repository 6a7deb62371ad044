"""Scale-out benchmark (issue 12): the prediction log's PostgreSQL COPY rate with several
replicas writing at once, and the daily monitoring job's cost as logged rows grow.

    uv run python bench/scale.py [--quick] [--records 50000] [--rounds 3]
                                 [--rows 1000000] [--summary-rows 10000000] [--writers 4]

(a) Insert rate: 1, 2 and 4 processes, each a replica's ``PredictionLogWriter`` over a
``PredictionRepository`` (COPY on PostgreSQL) on the same scratch database, each pushing
``--records`` 25-feature records (bench/predlog.py's) in 10-record requests. Records are made
before a start barrier; the table is emptied before each run. Reported: rows/s of all
processes together (all rows / first start to last end) and per process, median of ``--rounds``.

(b) Monitoring: bench/monitoring_kit's traffic (25 features, 24 hours, known drift) logged by
``--writers`` replicas in parallel processes into PostgreSQL. At ``--rows`` the replicas store
the raw records (COPY) and fold their hourly summaries; at ``--summary-rows`` they only fold
and store the summaries (10M raw rows would take longer than this benchmark's budget to
insert, and the daily job never reads them). The daily job (monitoring_kit/daily_job.py:
read the window's summaries, merge, compare with the baseline) runs in fresh processes;
for contrast, one SQL aggregate (count + mean of one feature) over the raw rows.

Writes bench/results/scale-<timestamp>.json. About 4-6 minutes at the defaults on 2 cores;
``--quick`` (20,000 records, one round, 100,000 and 1,000,000 rows) about 1-2 minutes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from drift_data import NUMERIC
from monitoring_kit.children import python_command, run_child
from monitoring_kit.traffic import MODEL, WriterCost, WriterSpec, reference, run_writer, window
from predlog import make_records

from mlkeel.db import make_engine, upgrade
from mlkeel.monitoring.profile import BaselineProfile
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.prediction_log.spool import Spool
from mlkeel.prediction_log.writer import PredictionLogWriter

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
CONCURRENCY = (1, 2, 4)
JOB_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Options:
    records: int
    rounds: int
    rows: int
    summary_rows: int
    writers: int
    job_runs: int
    reference_rows: int
    seed: int


def parse_options() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="per process, insert test")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000, help="raw rows + summaries")
    parser.add_argument("--summary-rows", type=int, default=10_000_000, help="summaries only")
    parser.add_argument("--writers", type=int, default=4, help="log-writer replicas")
    parser.add_argument("--job-runs", type=int, default=3)
    parser.add_argument("--reference", type=int, default=50_000, help="baseline sample rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        return Options(20_000, 1, 100_000, 1_000_000, args.writers, 1, 20_000, args.seed)
    return Options(args.records, args.rounds, args.rows, args.summary_rows, args.writers,
                   args.job_runs, args.reference, args.seed)  # fmt: skip


class Scratch:
    """Scratch databases on the machine's PostgreSQL, dropped by `drop`."""

    def __init__(self) -> None:
        self.admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
        self.names: list[str] = []

    def create(self, purpose: str) -> str:
        name = f"mlkeel_bench_scale_{purpose}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        url = f"{SERVER}/{name}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        return url

    def drop(self) -> None:
        with self.admin.connect() as connection:
            for name in self.names:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.dispose()


# ---- (a) COPY from several replicas ---------------------------------------------------------
def replica(url: str, count: int, seed: int, barrier: Any, out: Any) -> None:
    """One replica's writer pushing `count` records; puts (rows, start, end) on `out`."""
    records = make_records(count, seed)
    engine = make_engine(url)
    with tempfile.TemporaryDirectory() as spool:
        writer = PredictionLogWriter(PredictionRepository(engine), Spool(Path(spool)))
        writer.start()
        barrier.wait()
        started = time.monotonic()
        for at in range(0, count, 10):
            writer.submit(records[at : at + 10])
        writer.stop(timeout=600)
        ended = time.monotonic()
    engine.dispose()
    out.put((writer.stats.written, writer.stats.spooled, started, ended))


def insert_run(url: str, processes: int, count: int, seed: int) -> dict[str, float]:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE mlkeel_predictions")
    engine.dispose()
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=replica, args=(url, count, seed * 100 + i, barrier, out))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    finished = [out.get(timeout=900) for _ in workers]
    for worker in workers:
        worker.join()
    if any(spooled for _, spooled, _, _ in finished):
        raise RuntimeError(f"records went to the spool, the database refused them: {finished}")
    rows = sum(written for written, _, _, _ in finished)
    wall = max(end for *_, end in finished) - min(start for _, _, start, _ in finished)
    per = [written / (end - start) for written, _, start, end in finished]
    return {"rows": rows, "total_rows_s": rows / wall, "per_process_rows_s": statistics.mean(per)}


def insert_rates(url: str, options: Options) -> list[dict[str, Any]]:
    found = []
    for processes in CONCURRENCY:
        runs = [insert_run(url, processes, options.records, r) for r in range(options.rounds)]
        total = statistics.median(run["total_rows_s"] for run in runs)
        per = statistics.median(run["per_process_rows_s"] for run in runs)
        each = ", ".join(f"{run['total_rows_s']:,.0f}" for run in runs)
        print(f"  {processes} process(es) x {options.records:,} records: {total:,.0f} rows/s "
              f"total, {per:,.0f} rows/s per process (runs: {each})")  # fmt: skip
        found.append({"processes": processes, "total_rows_s": total, "per_process_rows_s": per,
                      "runs": runs})  # fmt: skip
    return found


# ---- (b) monitoring as rows grow ------------------------------------------------------------
def fill(url: str, rows: int, options: Options, profile: BaselineProfile, raw: bool) -> float:
    """Every replica's traffic into `url` in parallel processes; the wall seconds."""
    specs = [WriterSpec(url, rows, options.writers, index, options.seed, raw, None)
             for index in range(options.writers)]  # fmt: skip
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(options.writers, os.cpu_count() or 1)) as pool:
        costs = list(pool.map(run_writer, specs, [profile] * len(specs)))
    total = WriterCost()
    for cost in costs:
        total.add(cost)
    if total.rows != rows:
        raise RuntimeError(f"logged {total.rows:,} rows, expected {rows:,}")
    return time.perf_counter() - started


def daily_job(url: str, profile_path: Path, runs: int) -> dict[str, Any]:
    since, until = window()
    command = python_command("daily_job.py", "--db", url, "--profile", str(profile_path),
                             "--since", str(since), "--until", str(until))  # fmt: skip
    answers = [run_child(command, JOB_TIMEOUT_S).answer for _ in range(runs)]
    return {
        **{key: statistics.median(a[key] for a in answers)
           for key in ("job_s", "read_s", "merge_s", "compare_s")},
        "summary_rows": answers[0]["summary_rows"],
        "rows_seen": answers[0]["rows"],
        "flagged": answers[0]["flagged"],
        "peak_rss_mib": max(a["peak_rss_bytes"] for a in answers) / 2**20,
    }  # fmt: skip


def table_bytes(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as connection:
        found = {
            table: int(connection.exec_driver_sql(
                f"SELECT pg_total_relation_size('{table}')").scalar_one())
            for table in ("mlkeel_predictions", "mlkeel_summaries")
        }  # fmt: skip
    engine.dispose()
    return found


def raw_scan_s(url: str) -> float:
    """Count and mean of ONE feature over the raw window, in SQL: the least a job reading raw
    rows pays (a real one aggregates all 25 features, several statistics each)."""
    since, until = window()
    engine = make_engine(url)
    with engine.connect() as connection:
        started = time.perf_counter()
        connection.exec_driver_sql(
            f"SELECT count(*), avg((features->>'{NUMERIC[0]}')::float) FROM mlkeel_predictions "
            f"WHERE model = '{MODEL}' AND ts >= {since} AND ts < {until}"
        ).one()
        seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def monitoring(scratch: Scratch, options: Options, workdir: Path) -> list[dict[str, Any]]:
    _, profile = reference(options.seed, options.reference_rows)
    profile_path = workdir / "profile.json"
    profile_path.write_text(json.dumps(profile.to_dict()))
    points = []
    for rows, raw in ((options.rows, True), (options.summary_rows, False)):
        url = scratch.create(f"{rows}")
        stored = "raw rows (COPY) + summaries" if raw else "summaries only"
        print(f"  logging {rows:,} rows, {stored}, {options.writers} replicas ...")
        fill_s = fill(url, rows, options, profile, raw)
        job = daily_job(url, profile_path, options.job_runs)
        point = {"rows": rows, "stored": stored, "fill_s": fill_s, "bytes": table_bytes(url),
                 "job": job, "raw_scan_s": raw_scan_s(url) if raw else None}  # fmt: skip
        points.append(point)
        scan = f"; SQL count + mean of x0 over raw rows {point['raw_scan_s']:.2f} s" if raw else ""
        print(f"    fill {fill_s:.0f} s; daily job {job['job_s'] * 1000:.0f} ms (read "
              f"{job['read_s'] * 1000:.0f}, merge {job['merge_s'] * 1000:.0f}, compare "
              f"{job['compare_s'] * 1000:.0f}) over {job['summary_rows']} summary rows, "
              f"{job['rows_seen']:,} rows seen, peak {job['peak_rss_mib']:.0f} MiB"
              f"{scan}")  # fmt: skip
    return points


def main() -> None:
    options = parse_options()
    began = time.perf_counter()
    scratch = Scratch()
    try:
        with tempfile.TemporaryDirectory(prefix="mlkeel-bench-scale-") as workdir:
            print("(a) prediction log, COPY into one PostgreSQL database from N replicas")
            rates = insert_rates(scratch.create("copy"), options)
            print("(b) daily monitoring job in PostgreSQL as logged rows grow")
            points = monitoring(scratch, options, Path(workdir))
    finally:
        scratch.drop()
    growth = points[-1]["job"]["job_s"] / points[0]["job"]["job_s"]
    print(f"  job time at {points[-1]['rows']:,} / at {points[0]['rows']:,} rows: {growth:.2f}x "
          f"for {points[-1]['rows'] / points[0]['rows']:.0f}x the rows")  # fmt: skip
    total = time.perf_counter() - began
    results = {"options": options.__dict__, "cores": os.cpu_count(), "insert": rates,
               "monitoring": points, "job_growth": growth, "total_s": total,
               "load_average_after": os.getloadavg()}  # fmt: skip
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"scale-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"total {total:.0f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
          f"cores; results in {path}")  # fmt: skip


if __name__ == "__main__":
    main()
