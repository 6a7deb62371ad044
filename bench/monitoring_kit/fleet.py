"""A fleet of log-writer replicas filling one database: in this process, or in parallel."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mlkeel.db import make_engine, upgrade
from mlkeel.monitoring.profile import BaselineProfile
from monitoring_kit.traffic import WriterCost, WriterSpec, run_writer


@dataclass(frozen=True)
class Fleet:
    rows: int
    writers: int
    seed: int


@dataclass
class Filled:
    """What filling a database cost, all replicas together."""

    url: str
    rows: int
    wall_s: float
    cost: WriterCost
    parquet: list[Path]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def fill(
    path: Path,
    fleet: Fleet,
    profile: BaselineProfile,
    *,
    raw: bool,
    parquet_dir: Path | None = None,
) -> Filled:
    """Create the database at `path` and run every replica into it.

    With `raw`, replicas also insert their records through the repository; they run one
    after the other so no insert waits for another replica's lock (the per-batch fold and
    insert times stay clean). Without it, only summaries are stored and replicas run in
    parallel processes, one per core, like replicas on their own machines.
    """
    url = sqlite_url(path)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    specs = [
        WriterSpec(url, fleet.rows, fleet.writers, index, fleet.seed, raw,
                   None if parquet_dir is None else parquet_dir / f"current-{index}.parquet")
        for index in range(fleet.writers)
    ]  # fmt: skip
    started = time.perf_counter()
    costs = _sequential(specs, profile) if raw else _parallel(specs, profile)
    total = WriterCost()
    for cost in costs:
        total.add(cost)
    parquet = [spec.parquet for spec in specs if spec.parquet is not None]
    return Filled(url, total.rows, time.perf_counter() - started, total, parquet)


def _sequential(specs: list[WriterSpec], profile: BaselineProfile) -> list[WriterCost]:
    return [run_writer(spec, profile) for spec in specs]


def _parallel(specs: list[WriterSpec], profile: BaselineProfile) -> list[WriterCost]:
    workers = max(1, min(len(specs), os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_writer, spec, profile) for spec in specs]
        return [future.result() for future in futures]
