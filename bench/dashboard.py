"""Dashboard page renders with 1,000,000 logged predictions: each page's server-side render
time, median of several, over what a week of that traffic leaves in the database.

    uv run python bench/dashboard.py [--rows 1000000] [--days 7] [--rounds 7] [--keep DIR]

The data is made through the real paths: the breast_cancer example (30 numeric features)
trained and registered, one week of predictions folded into hourly summaries by the log
writer's ``SummaryFolder`` and saved by ``SummaryStore``, the raw rows inserted by
``PredictionRepository`` (the pages must not read them, but they are there, as in
production), the last two days drifted, and the monitor run on every 6-hour window (stored
reports and alerts). Pages are rendered by calling ``dashboard.pages`` as the routes do; the
first render of each page (imports, MLflow client, baseline download, parsing each hour's
summary once) is reported apart; CPU time is reported beside wall time, which other load on
the machine inflates.
Writes bench/results/dashboard-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
MODEL = "breast_cancer"
HOUR = 3600


def build(root: Path, rows: int, days: int) -> dict[str, Any]:
    import pandas as pd

    from mlkeel.cli.compose import registry_for
    from mlkeel.db import make_engine, upgrade
    from mlkeel.history import DeploymentEvent, HistoryRepository
    from mlkeel.monitoring.pipeline import monitor
    from mlkeel.monitoring.profile import BaselineProfile
    from mlkeel.monitoring.summaries import SummaryFolder
    from mlkeel.monitoring.summary_store import SummaryStore
    from mlkeel.prediction_log.record import PredictionRecord
    from mlkeel.prediction_log.repository import PredictionRepository
    from mlkeel.scaffold import init_project
    from mlkeel.settings import load_settings
    from mlkeel.training import to_candidate, train_model

    started = time.perf_counter()
    init_project(root, MODEL)
    settings = load_settings(root, environ={})
    registry = registry_for(settings)
    trained = train_model(settings, settings.model())
    version = registry.register(to_candidate(trained)).version
    registry.set_alias(MODEL, "champion", version)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    HistoryRepository(engine).record(DeploymentEvent(MODEL, "promoted", version, "bench"))

    baseline = BaselineProfile.from_dict(registry.profile(MODEL, version))
    folder = SummaryFolder(lambda model, v: baseline)
    store = SummaryStore(engine)
    repository = PredictionRepository(engine)
    frame = pd.read_csv(root / "data" / f"{MODEL}.csv").drop(columns=["target"])
    names = list(frame.columns)
    source = frame.to_numpy(dtype=np.float64)
    model = trained.model
    rng = np.random.default_rng(7)
    hours = days * 24
    end = (int(time.time()) // HOUR) * HOUR
    first = end - hours * HOUR
    per_hour = rows // hours
    for index in range(hours):
        hour = first + index * HOUR
        count = per_hour + (1 if index < rows - per_hour * hours else 0)
        picked = source[rng.integers(0, len(source), count)]
        noisy = picked * rng.normal(1.0, 0.02, picked.shape)
        if index >= hours - 48:  # the last two days drift
            noisy[:, :3] *= 1.3
        predictions = model.predict(pd.DataFrame(noisy, columns=names)).tolist()
        latency = rng.lognormal(1.2, 0.5, count)
        moments = hour + np.sort(rng.uniform(0, HOUR, count))
        records = [
            PredictionRecord(
                datetime.fromtimestamp(float(moments[i]), UTC), MODEL, version, "champion",
                f"{hour}-{i // 4}", i % 4, dict(zip(names, noisy[i].tolist(), strict=True)),
                predictions[i], None, float(latency[i]),
            )
            for i in range(count)
        ]  # fmt: skip
        folder.fold(records)
        folder.count_error(MODEL, version, "champion", hour + 1, max(count // 400, 1))
        for start in range(0, count, 10_000):
            repository.insert(records[start : start + 10_000])
        store.save("bench", {k: s.to_payload() for k, s in folder.take_dirty().items()})
        folder.evict(hour)
    made = time.perf_counter() - started

    started = time.perf_counter()
    window = timedelta(hours=6)
    moment = datetime.fromtimestamp(first, UTC)
    reports = 0
    while moment < datetime.fromtimestamp(end, UTC):
        monitor(settings, registry, engine, MODEL, moment, moment + window, sinks=[])
        moment += window
        reports += 1
    monitored = time.perf_counter() - started
    engine.dispose()
    return {"build_seconds": round(made, 1), "monitor_seconds": round(monitored, 1)}


def describe(root: Path) -> dict[str, Any]:
    """What the database holds."""
    from mlkeel.db import make_engine
    from mlkeel.settings import load_settings

    settings = load_settings(root, environ={})
    engine = make_engine(settings.resolved_database_url)
    counts = {}
    with engine.connect() as connection:
        for table in ("predictions", "summaries", "monitoring_reports", "alerts"):
            sql = f"SELECT count(*) FROM mlkeel_{table}"  # noqa: S608 - our own table names
            counts[f"{table}_rows"] = connection.exec_driver_sql(sql).scalar()
    engine.dispose()
    database = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
    return {**counts, "database_mib": round(database.stat().st_size / 2**20, 1)}


def measure(root: Path, rounds: int) -> dict[str, Any]:
    from mlkeel.cli.compose import registry_for
    from mlkeel.dashboard import pages
    from mlkeel.dashboard.queries import Reader
    from mlkeel.db import make_engine
    from mlkeel.settings import load_settings

    settings = load_settings(root, environ={})
    engine = make_engine(settings.resolved_database_url)
    reader = Reader(settings, registry_for(settings), engine)
    cases: dict[str, Callable[[], str]] = {
        "overview": lambda: pages.overview(reader),
        "model": lambda: pages.model(reader, MODEL),
        "monitoring 1d": lambda: pages.monitoring(reader, MODEL, "1d"),
        "monitoring 7d": lambda: pages.monitoring(reader, MODEL, "7d"),
        "monitoring 30d": lambda: pages.monitoring(reader, MODEL, "30d"),
        "alerts": lambda: pages.alerts(reader, None, "all"),
        "jobs": lambda: pages.jobs(reader),
        "report file 7d": lambda: pages.monitoring_report(reader, MODEL, "7d"),
    }
    results: dict[str, Any] = {}
    for name, render in cases.items():
        started = time.perf_counter()
        html = render()
        first = time.perf_counter() - started
        times, cpu = [], []
        for _ in range(rounds):
            started, used = time.perf_counter(), time.process_time()
            render()
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
        results[name] = {
            "median_ms": round(statistics.median(times) * 1000, 1),
            "cpu_median_ms": round(statistics.median(cpu) * 1000, 1),
            "max_ms": round(max(times) * 1000, 1),
            "first_ms": round(first * 1000, 1),
            "html_kib": round(len(html.encode()) / 1024, 1),
        }
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--keep", type=Path, help="build the project here and keep it (reused if it exists)"
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mlkeel-bench-dashboard-"))
    root = args.keep or scratch / "project"
    try:
        reuse = args.keep is not None and (args.keep / "mlkeel.toml").is_file()
        data = {"reused": True} if reuse else build(root, args.rows, args.days)
        data.update(describe(root))
        print(f"data: {json.dumps(data)}")
        pages = measure(root, args.rounds)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{'page':<16}{'median ms':>10}{'cpu ms':>8}{'max ms':>9}{'first ms':>10}{'KiB':>8}")
    for name, row in pages.items():
        print(f"{name:<16}{row['median_ms']:>10}{row['cpu_median_ms']:>8}{row['max_ms']:>9}"
              f"{row['first_ms']:>10}{row['html_kib']:>8}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"dashboard-{stamp}.json"
    document = {"rows": args.rows, "days": args.days, "rounds": args.rounds, "data": data,
                "pages": pages, "id": uuid.uuid4().hex[:8]}  # fmt: skip
    out.write_text(json.dumps(document, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
