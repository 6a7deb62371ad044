"""Monitoring benchmark (issue 5): mlkeel's daily drift job against Evidently's DataDriftPreset
and a SQL GROUP BY over the raw log, on the same logged predictions, side by side in one run.

    uv run python bench/monitoring.py [--rows 1000000] [--curve 100000,1000000,10000000]
                                      [--writers 4] [--reference 50000] [--job-runs 3]
                                      [--skip-evidently] [--quick] [--keep]

Traffic: ``bench/drift_data.py``'s generator (25 features: 20 numeric, 5 categorical; x0-x6 and
c0-c1 drifted, the rest clean) over 24 hours, written by ``--writers`` log-writer replicas in
1,000-record batches: each batch is inserted into a real SQLite prediction log through
``PredictionRepository.insert`` and folded by the replica's ``SummaryFolder``, whose hourly
summaries are saved through ``SummaryStore`` under the replica's writer id. The baseline is
``build_profile`` on a separate reference sample. Nothing is registered in MLflow.

The daily job (``monitoring_kit/daily_job.py``) is ``monitor()``'s drift path with the public
pieces: ``SummaryStore.window`` → ``Summary.from_payload`` + ``merge`` → ``compare``, the profile
read from JSON instead of the registry. It runs ``--job-runs`` times in fresh processes at
``--rows`` and at every ``--curve`` size; sizes other than ``--rows`` get summaries only (the
replicas fold, in parallel processes, without inserting raw records: the job never reads them).
Peak memory is each child's VmHWM. Evidently 0.7.23 runs from its own uv environment on the
same rows exchanged as Parquet; the SQL baseline aggregates the raw log with json_extract.

Prints the tables and the issue's targets with PASS/FAIL; writes
bench/results/monitoring-<timestamp>.json. About 6-8 minutes at the defaults on 2 cores;
``--quick`` (100,000 rows, curve 10,000 and 100,000, one job run) is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from drift_data import CATEGORICAL, NUMERIC
from monitoring_kit import report
from monitoring_kit.children import (
    ChildFailed,
    ChildRun,
    evidently_command,
    python_command,
    run_child,
)
from monitoring_kit.figures import Aggregation, Baseline, JobPoint
from monitoring_kit.fleet import Filled, Fleet, fill
from monitoring_kit.traffic import reference, window

from mlkeel.monitoring.profile import BaselineProfile

RESULTS_DIR = Path(__file__).resolve().parent / "results"
JOB_TIMEOUT_S = 300.0
BASELINE_TIMEOUT_S = 1200.0
PACKAGES = ("numpy", "scipy", "pandas", "sqlalchemy", "pyarrow")


@dataclass(frozen=True)
class Options:
    rows: int
    curve: list[int]
    writers: int
    reference_rows: int
    job_runs: int
    seed: int
    evidently: bool
    keep: bool


@dataclass(frozen=True)
class Workspace:
    directory: Path
    profile: Path
    reference: Path
    current: Path  # Parquet parts of the current rows, one per replica (for Evidently)


def parse_options() -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--curve", default="100000,1000000,10000000")
    parser.add_argument("--writers", type=int, default=4, help="log-writer replicas")
    parser.add_argument("--reference", type=int, default=50_000, help="training sample rows")
    parser.add_argument("--job-runs", type=int, default=3, help="fresh-process runs per size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--quick", action="store_true", help="100k rows, small curve, one run")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    args = parser.parse_args()
    rows, curve, runs = (
        args.rows,
        sorted(int(size) for size in args.curve.split(",")),
        args.job_runs,
    )
    if args.quick:
        rows, curve, runs = 100_000, [10_000, 100_000], 1
    return Options(rows, curve, args.writers, args.reference, runs, args.seed,
                   not args.skip_evidently, args.keep)  # fmt: skip


def prepare(directory: Path, options: Options) -> tuple[Workspace, BaselineProfile]:
    frame, profile = reference(options.seed, options.reference_rows)
    workspace = Workspace(directory, directory / "profile.json", directory / "reference.parquet",
                          directory / "current")  # fmt: skip
    workspace.current.mkdir()
    workspace.profile.write_text(json.dumps(profile.to_dict()))
    frame.to_parquet(workspace.reference, index=False)
    return workspace, profile


def job_command(filled: Filled, workspace: Workspace) -> list[str]:
    since, until = window()
    return python_command(
        "daily_job.py", "--db", filled.url, "--profile", str(workspace.profile),
        "--since", str(since), "--until", str(until),
    )  # fmt: skip


def job_point(filled: Filled, workspace: Workspace, source: str, runs: int) -> JobPoint:
    since, until = window()
    command = job_command(filled, workspace)
    point = JobPoint(filled.rows, source, filled.wall_s)
    for _ in range(runs):
        point.runs.append(run_child(command, JOB_TIMEOUT_S))
    return point


def with_mlflow(filled: Filled, workspace: Workspace) -> ChildRun | None:
    """One more job run with mlflow imported first: the real CLI process's memory floor."""
    command = [*job_command(filled, workspace), "--with-mlflow"]
    try:
        return run_child(command, JOB_TIMEOUT_S)
    except ChildFailed as exc:
        print(f"  (job with mlflow imported failed: {exc})")
        return None


def curve(
    options: Options, workspace: Workspace, profile: BaselineProfile, main: JobPoint
) -> list[JobPoint]:
    points = []
    for rows in options.curve:
        if rows == options.rows:
            points.append(main)
            continue
        path = workspace.directory / f"summaries-{rows}.db"
        print(f"  folding {rows:,} rows into summaries only ({options.writers} replicas) ...")
        filled = fill(path, Fleet(rows, options.writers, options.seed + 1), profile, raw=False)
        points.append(job_point(filled, workspace, "folded only", options.job_runs))
        print(f"    fill {filled.wall_s:.1f} s; job {points[-1].job_s:.3f} s, "
              f"{points[-1].peak_mib:.0f} MiB")  # fmt: skip
    return points


def sql_baseline(filled: Filled) -> Baseline:
    since, until = window()
    command = python_command(
        "sql_groupby.py", "--db", filled.url.removeprefix("sqlite:///"), "--since", str(since),
        "--until", str(until), "--numeric", ",".join(NUMERIC),
        "--categorical", ",".join(CATEGORICAL),
    )  # fmt: skip
    return _baseline("SQL GROUP BY (SQLite json_extract)", command)


def evidently_baseline(filled: Filled, workspace: Workspace, enabled: bool) -> Baseline:
    name = "Evidently 0.7.23 DataDriftPreset"
    if not enabled:
        return Baseline(name, error="skipped (--skip-evidently)")
    if shutil.which("uv") is None:
        return Baseline(name, error="uv is not on PATH")
    command = evidently_command("evidently_run.py", "--reference", str(workspace.reference),
                                "--current", str(workspace.current))  # fmt: skip
    return _baseline(name, command)


def _baseline(name: str, command: list[str]) -> Baseline:
    print(f"  running {name} ...")
    try:
        run = run_child(command, BASELINE_TIMEOUT_S)
    except ChildFailed as exc:
        print(f"    failed: {exc}")
        return Baseline(name, error=str(exc))
    print(f"    {run.answer['job_s']:.1f} s, {run.answer['peak_rss_bytes'] / 2**20:.0f} MiB")
    return Baseline(name, run=run)


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "sqlite": sqlite3.sqlite_version,
        "packages": {name: _version(name) for name in ("mlkeel", *PACKAGES)},
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def main() -> None:
    options = parse_options()
    began, load_before = time.perf_counter(), os.getloadavg()
    scratch = Path(tempfile.mkdtemp(prefix="mlkeel-bench-monitoring-"))
    try:
        results = measure(options, scratch)
    finally:
        if options.keep:
            print(f"\nscratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    results["load_average"] = {"before": load_before, "after": os.getloadavg()}
    results["total_s"] = time.perf_counter() - began
    path = write_results(results)
    after = os.getloadavg()[0]
    print(f"\nload average (1 min) before/after: {load_before[0]:.1f} / {after:.1f} on "
          f"{os.cpu_count()} cores (the machine is shared)")  # fmt: skip
    print(f"total {results['total_s']:.0f} s; results in {path}")


def measure(options: Options, scratch: Path) -> dict[str, Any]:
    print(f"reference {options.reference_rows:,} rows; traffic {options.rows:,} rows over 24 h "
          f"by {options.writers} replicas; truth: {', '.join(report.truth())} drifted")  # fmt: skip
    workspace, profile = prepare(scratch, options)
    print(f"  logging {options.rows:,} rows: insert raw + fold + save summaries ...")
    main_fill = fill(scratch / "log.db", Fleet(options.rows, options.writers, options.seed),
                     profile, raw=True, parquet_dir=workspace.current)  # fmt: skip
    print(f"    {main_fill.wall_s:.1f} s")
    main = job_point(main_fill, workspace, "raw log + folded", options.job_runs)
    mlflow_run = with_mlflow(main_fill, workspace)
    points = curve(options, workspace, profile, main)
    sql = sql_baseline(main_fill)
    evidently = evidently_baseline(main_fill, workspace, options.evidently)
    aggregation = Aggregation(main_fill.cost)
    report.print_main(main, sql, evidently)
    if mlflow_run is not None:
        print(f"  the same job with mlflow imported first (the real `mlkeel monitor` process): "
              f"peak RSS {mlflow_run.answer['peak_rss_bytes'] / 2**20:.0f} MiB, process "
              f"{mlflow_run.wall_s:.2f} s")  # fmt: skip
    report.print_curve(points)
    report.print_verdicts(main, evidently)
    report.print_aggregation(aggregation)
    found = report.targets(main, points, evidently, aggregation)
    report.print_targets(found)
    return {
        "options": options.__dict__,
        "environment": environment(),
        "truth": report.truth(),
        "main": main.to_dict(),
        "main_fill": {"wall_s": main_fill.wall_s, **Aggregation(main_fill.cost).to_dict()},
        "job_with_mlflow": None if mlflow_run is None else {
            "peak_rss_mib": mlflow_run.answer["peak_rss_bytes"] / 2**20,
            "process_wall_s": mlflow_run.wall_s, "job_s": mlflow_run.answer["job_s"]},
        "curve": [point.to_dict() for point in points],
        "sql_groupby": sql.to_dict(),
        "evidently": evidently.to_dict(),
        "targets": [target.__dict__ for target in found],
    }  # fmt: skip


def write_results(results: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"monitoring-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    return path


if __name__ == "__main__":
    main()
