"""Serving benchmark (issue 3): mlkeel's server against a plain FastAPI app, `mlflow models serve`
and BentoML (with and without adaptive batching), side by side in one run.

    uv run python bench/serving.py [--seconds 12] [--rounds 3] [--quick] [--variants plain,...]

Two models registered in a temporary mlkeel project (sklearn's bundled breast_cancer data, 30
numeric features): ``lr``, a scaled logistic regression (overhead-bound), and ``rf``, a 100-tree
random forest (model-bound). Per model, every server is started in turn (each one starting
alone: start-to-ready is measured then), as its own process group on a free 127.0.0.1 port, and
they stay up together, idle but for the one under load. Each cell is then loaded with ``wrk``:
a short warm-up per server, then ``--rounds`` rounds that load each server for
``--seconds / --rounds`` in turn (the order reversed every other round), so a burst of foreign
load on this shared machine hits every server alike; a cell reports the median of its rounds.
Peak RSS is each server's over its whole life. Each cell also reports the server's CPU and the
CPU used by processes outside the benchmark. mlkeel starts before `mlflow models serve`, which
writes a ``registered_model_meta`` file into the model's artifact folder, after which mlkeel's
digest check refuses the model. The in-process ``predict_proba`` rate on 1,000-row batches
gives the physical limit; the same after decoding the JSON body and validating it (mlkeel's
own validator) gives the most any server taking JSON rows can reach, before HTTP and the log.

Prints a table per cell, the servers' start and memory, the issue's targets with PASS/FAIL,
and the versions; writes everything to bench/results/serving-<timestamp>.json. Needs ``wrk``
(``apt-get install -y wrk``). About 10 minutes at the defaults; ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from serving_kit import cpu, report, targets
from serving_kit.processes import RunningServer, free_port, running
from serving_kit.project import BenchProject, RegisteredModel, build_project
from serving_kit.results import Cell, CellResult, InProcess, RunResults, ServerResult
from serving_kit.servers import VARIANTS, Context, Recipe, recipe
from serving_kit.wrk import LoadFigures, run_wrk, write_script, wrk_binary

RESULTS_DIR = Path(__file__).resolve().parent / "results"
READY_TIMEOUT_S = 120.0
PACKAGES = ("mlflow", "fastapi", "uvicorn", "starlette", "scikit-learn", "numpy", "pandas")
PACKAGES_OPTIONAL = ("uvloop", "httptools")

T = targets
LR_CELLS = (T.LR_1ROW_C8, T.LR_100ROW_C8)
RF_ALL = (T.RF_1ROW_C1, T.RF_1ROW_C64, T.RF_100ROW_C8, T.RF_1000ROW_C4)
RF_SINGLE = (T.RF_1ROW_C1, T.RF_1ROW_C64)
CELLS = (*LR_CELLS, *RF_ALL)


@dataclass(frozen=True)
class Run:
    """One server process and the cells loaded into it, in order."""

    variant: str
    model: str
    cells: tuple[Cell, ...]


FULL_PLAN = (  # mlflow after mlkeel: `mlflow models serve` writes into the artifact folder
    Run("plain", "lr", LR_CELLS),
    Run("mlkeel", "lr", LR_CELLS),
    Run("mlkeel+log", "lr", LR_CELLS),
    Run("mlkeel+strict", "lr", (T.LR_1ROW_C8,)),
    Run("mlflow", "lr", LR_CELLS),
    Run("plain", "rf", RF_ALL),
    Run("mlkeel", "rf", RF_ALL),
    Run("mlkeel+log", "rf", RF_ALL),
    Run("mlkeel+batch", "rf", RF_SINGLE),
    Run("mlkeel+batch+log", "rf", RF_ALL),
    Run("mlflow", "rf", RF_SINGLE),
    Run("bentoml", "rf", RF_SINGLE),
    Run("bentoml+batch", "rf", RF_SINGLE),
)
QUICK_PLAN = (
    Run("plain", "lr", (T.LR_1ROW_C8,)),
    Run("mlkeel+log", "lr", (T.LR_1ROW_C8,)),
    Run("mlflow", "lr", (T.LR_1ROW_C8,)),
    Run("plain", "rf", (T.RF_1ROW_C1, T.RF_1ROW_C64, T.RF_1000ROW_C4)),
    Run("mlkeel+batch+log", "rf", (T.RF_1ROW_C1, T.RF_1ROW_C64, T.RF_1000ROW_C4)),
    Run("bentoml+batch", "rf", (T.RF_1ROW_C64,)),
)


# ---- the servers of one model, their cells ------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def say(self, text: str) -> None:
        elapsed = int(time.perf_counter() - self.start)
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}", flush=True)


@dataclass
class Live:
    """A started server of the group, with what it answers and what was measured of it."""

    run: Run
    model: RegisteredModel
    plan: Recipe
    server: RunningServer
    result: ServerResult


def run_group(
    runs: Sequence[Run],
    project: BenchProject,
    scratch: Path,
    args: argparse.Namespace,
    clock: Clock,
) -> list[ServerResult]:
    """Start every server of one model in turn, then load the cells round-robin; stop all."""
    results = []
    logged_before = count_logged(project.database_path)
    with contextlib.ExitStack() as stack:
        group: list[Live] = []
        for run in runs:
            started = start_server(run, project, scratch, stack, clock)
            results.append(started.result if isinstance(started, Live) else started)
            if isinstance(started, Live):
                group.append(started)
        cells = list(dict.fromkeys(cell for live in group for cell in live.run.cells))
        for cell in cells:
            load_cell(cell, [live for live in group if cell in live.run.cells], scratch, args)
            for live in group:
                if cell in live.run.cells:
                    _say_cell(clock, live.run, live.result.cells[-1])
        for live in group:
            live.result.peak_rss_bytes = live.server.peak_rss_bytes or None
    logged = count_logged(project.database_path) - logged_before
    for result in results:
        if VARIANTS[result.variant].log:
            result.log_rows = logged  # the group's log servers share the project's database
    return results


def start_server(
    run: Run, project: BenchProject, scratch: Path, stack: contextlib.ExitStack, clock: Clock
) -> Live | ServerResult:
    """Start `run`'s server (stopped when `stack` closes) and check one answer."""
    variant, model = VARIANTS[run.variant], project.models[run.model]
    result = ServerResult(variant.key, model.name)
    plan = recipe(variant, model, Context(project, scratch, free_port()))
    try:
        server = stack.enter_context(running(plan.launch, READY_TIMEOUT_S))
        result.ready_s, result.ready_cpu_s = server.ready_s, server.ready_cpu_s
        clock.say(f"{run.variant}/{run.model}: ready after {server.ready_s:.2f} s")
        check_answers(server.url + plan.predict_path, plan.body(model.rows[:3]), 3)
    except Exception as exc:  # recorded and reported; the next server still runs
        result.error = f"{type(exc).__name__}: {exc}"
        clock.say(f"{run.variant}/{run.model} FAILED: {result.error}")
        return result
    return Live(run, model, plan, server, result)


def _say_cell(clock: Clock, run: Run, result: CellResult) -> None:
    f = result.figures
    figures = (
        f"{f.req_per_s:,.0f} req/s, p99 {f.p99_ms:.1f} ms, {f.errors} errors"
        if f
        else f"failed: {result.error}"
    )
    clock.say(f"  {run.variant} {result.cell.key}: {figures}")


def load_cell(cell: Cell, group: list[Live], scratch: Path, args: argparse.Namespace) -> None:
    """A warm-up per server, then `args.rounds` rounds over the servers; each server's
    CellResult holds the medians of its rounds."""
    load = {"concurrency": cell.concurrency, "rows": cell.rows}
    scripts = {}
    rounds: dict[int, list[tuple[LoadFigures, cpu.CpuShare]]] = {id(live): [] for live in group}
    errors: dict[int, str] = {}
    for live in group:
        tag = f"{live.run.variant}-{live.run.model}-{cell.rows}"  # one script per server
        bodies = make_bodies(live.plan, live.model, cell.rows)
        scripts[id(live)] = write_script(scratch, tag, live.plan.predict_path, bodies)
    for round_index in range(-1, args.rounds):  # round -1: the warm-up
        order = group if round_index % 2 == 0 else group[::-1]
        for live in order:
            if id(live) in errors:
                continue
            try:
                script = scripts[id(live)]
                if round_index < 0:
                    run_wrk(live.server.url, script, seconds=args.warmup, **load)
                    continue
                before = cpu.snapshot(live.server.process.pid)
                figures = run_wrk(live.server.url, script, seconds=args.slice, **load)
                share = cpu.share(before, cpu.snapshot(live.server.process.pid))
                rounds[id(live)].append((figures, share))
            except Exception as exc:
                errors[id(live)] = f"{type(exc).__name__}: {exc}"
    for live in group:
        if id(live) in errors:
            live.result.cells.append(CellResult(cell, error=errors[id(live)]))
        else:
            figures, share = _medians(rounds[id(live)])
            live.result.cells.append(CellResult(cell, figures, cpu=share))


def _medians(
    samples: list[tuple[LoadFigures, cpu.CpuShare]],
) -> tuple[LoadFigures, cpu.CpuShare]:
    """Per figure, the median over the rounds (counts summed: every request happened)."""
    loads = [figures for figures, _ in samples]
    shares = [share for _, share in samples]

    def mid(values: Sequence[float]) -> float:
        return float(statistics.median(values))

    kinds: dict[str, int] = {}
    for figures in loads:
        for kind, count in figures.error_kinds.items():
            kinds[kind] = kinds.get(kind, 0) + count
    figures = LoadFigures(
        requests=sum(f.requests for f in loads),
        ok_requests=sum(f.ok_requests for f in loads),
        duration_s=sum(f.duration_s for f in loads),
        req_per_s=mid([f.req_per_s for f in loads]),
        rows_per_s=mid([f.rows_per_s for f in loads]),
        p50_ms=mid([f.p50_ms for f in loads]),
        p90_ms=mid([f.p90_ms for f in loads]),
        p99_ms=mid([f.p99_ms for f in loads]),
        max_ms=max(f.max_ms for f in loads),
        errors=sum(f.errors for f in loads),
        error_kinds=kinds,
    )
    share = cpu.CpuShare(
        mid([s.server_pct for s in shares]),
        mid([s.client_pct for s in shares]),
        mid([s.foreign_pct for s in shares]),
    )
    return figures, share


def make_bodies(plan: Recipe, model: RegisteredModel, rows: int) -> list[bytes]:
    """Distinct bodies of `rows` consecutive data rows (cycling), 4 to 64 of them."""
    count = max(4, min(64, 6400 // rows))
    data = model.rows
    return [
        plan.body([data[(i * rows + j) % len(data)] for j in range(rows)]) for i in range(count)
    ]


def check_answers(url: str, body: bytes, rows: int) -> None:
    """One request before the load: a 200 with one prediction per row, or raise."""
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310  # loopback
        answer = json.loads(response.read())
    predictions = answer if isinstance(answer, list) else answer.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != rows:
        raise RuntimeError(f"unexpected answer to {rows} rows: {json.dumps(answer)[:300]}")


def count_logged(database: Path) -> int:
    """Rows in the prediction log table (0 while it does not exist)."""
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(database, timeout=10) as connection:
            (count,) = connection.execute("SELECT COUNT(*) FROM mlkeel_predictions").fetchone()
    except sqlite3.OperationalError:
        return 0
    return int(count)


# ---- in process --------------------------------------------------------------------------------
def measure_in_process(model: RegisteredModel, seconds: float) -> InProcess:
    import pickle

    import orjson
    import pandas as pd

    from mlkeel.schema import InputSchema
    from mlkeel.serving.validation import Validator

    with model.pickle_path.open("rb") as handle:
        estimator = pickle.load(handle)  # noqa: S301  # our own registered model
    features = list(estimator.feature_names_in_)
    batch = [model.rows[i % len(model.rows)] for i in range(1000)]
    frame = pd.DataFrame(batch, columns=features)
    one = frame.iloc[:1]
    proba = _calls_per_s(lambda: estimator.predict_proba(frame), seconds) * 1000
    # What a server must do for a 1,000-row request before HTTP and the log: decode the
    # body, check it against the schema, predict. Its rate caps the 1,000-row target.
    schema_file = model.pickle_path.parent / "input_schema.json"
    validator = Validator(InputSchema.from_dict(json.loads(schema_file.read_text())), len(batch))
    body = json.dumps({"instances": batch}).encode()

    def decode_check_predict() -> object:
        rows = validator.records(orjson.loads(body)["instances"], "instances")
        return estimator.predict_proba(pd.DataFrame(rows.matrix, columns=features, copy=False))

    served = _calls_per_s(decode_check_predict, seconds) * 1000
    single = []
    for _ in range(50):
        started = time.perf_counter()
        estimator.predict_proba(one)
        single.append((time.perf_counter() - started) * 1000)
    return InProcess(model.name, proba, served, statistics.median(single))


def _calls_per_s(call: Callable[[], object], seconds: float) -> float:
    call()
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        call()
        calls += 1
    return calls / elapsed


# ---- versions, output --------------------------------------------------------------------------
def versions(plan: Sequence[Run]) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in (*PACKAGES, *PACKAGES_OPTIONAL):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    if any(run.variant.startswith("bentoml") for run in plan):
        found["bentoml"] = _bentoml_version()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)  # noqa: S607
    found["wrk"] = (wrk.stdout or wrk.stderr).split()[1] if wrk.stdout or wrk.stderr else "?"
    return found


def _bentoml_version() -> str:
    argv = ["uv", "run", "--frozen", "--with", "bentoml", "python", "-c"]
    code = "import bentoml; print(bentoml.__version__)"
    done = subprocess.run(  # noqa: S603
        [*argv, code], capture_output=True, text=True, timeout=300, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "unavailable"


def log_note(results: RunResults) -> str:
    logged = [s.log_rows for s in results.servers if s.log_rows is not None and not s.error]
    if not logged:
        return ""
    if all(rows > 0 for rows in logged):
        per_model = {s.model: s.log_rows or 0 for s in results.servers if s.log_rows is not None}
        return (
            f" -- prediction log ON ({sum(per_model.values()):,} rows stored by the '+log' servers)"
        )
    return (
        " -- NOTE: the prediction log stored no rows in some '+log' runs: their figures "
        "are log-OFF (the log is not wired into `mlkeel serve` in this checkout)"
    )


def write_json(
    results: RunResults, found: list[targets.Target], meta: dict[str, Any], stamp: str
) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"serving-{stamp}.json"
    document = {
        **meta,
        "in_process": {k: asdict(v) for k, v in results.in_process.items()},
        "servers": [server.to_dict() for server in results.servers],
        "targets": [asdict(target) for target in found],
    }
    path.write_text(json.dumps(document, indent=1))
    return path


# ---- main --------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=None, help="load per cell (default 12)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per cell (default 3)")
    parser.add_argument("--quick", action="store_true", help="3 s per cell, fewer cells")
    parser.add_argument("--variants", default=None, help="only these servers, comma-separated")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (3.0 if args.quick else 12.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.warmup = 1.0 if args.quick else 2.0
    if not 1 <= args.seconds <= 120:
        parser.error("--seconds must be between 1 and 120")
    if not 1 <= args.rounds <= 20 or args.seconds / args.rounds < 1:
        parser.error("--rounds must be between 1 and 20, and leave a round 1 s or more")
    args.slice = args.seconds / args.rounds
    return args


def choose_plan(args: argparse.Namespace) -> tuple[Run, ...]:
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    if args.variants:
        wanted = set(args.variants.split(","))
        unknown = wanted - set(VARIANTS)
        if unknown:
            sys.exit(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
        plan = tuple(run for run in plan if run.variant in wanted)
    return plan


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `running(...)`: servers are stopped


def main() -> None:
    args = parse_args()
    if wrk_binary() is None:
        sys.exit("wrk is not installed: apt-get update && apt-get install -y wrk")
    signal.signal(signal.SIGTERM, _terminate)
    plan = choose_plan(args)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    clock, results = Clock(), RunResults()
    with tempfile.TemporaryDirectory(prefix="mlkeel-servingbench-") as scratch:
        root = Path(scratch)
        project = build_project(root / "project")
        clock.say(
            f"project ready: {', '.join(f'{m.name} v{m.version}' for m in project.models.values())}"
        )
        for model in project.models.values():
            results.in_process[model.name] = measure_in_process(model, min(args.seconds, 3.0))
        clock.say("in-process figures measured")
        for model in dict.fromkeys(run.model for run in plan):
            group = [run for run in plan if run.model == model]
            results.servers.extend(run_group(group, project, root, args, clock))
    found = targets.evaluate(results)
    meta = {"started": stamp, "seconds": args.seconds, "rounds": args.rounds, "quick": args.quick}
    meta["versions"] = versions(plan)
    report.print_cells(results, CELLS)
    report.print_servers(results)
    report.print_in_process(results)
    report.print_targets(found, log_note(results))
    report.print_foreign_load(results)
    report.print_versions(meta["versions"])
    print(f"\nresults: {write_json(results, found, meta, stamp)} ({clock_text(clock)})")


def clock_text(clock: Clock) -> str:
    return f"{time.perf_counter() - clock.start:.0f} s in all"


if __name__ == "__main__":
    main()
