"""Logged predictions with known truth, folded and stored the way production does it.

The data is ``bench/drift_data.py``'s: 25 features (20 numeric of six shapes, 5 categorical),
x0-x6 shifted in mean and/or scale, c0 re-weighted, c1 given an unseen category, the rest
drawn like the reference. Each row is a single-row request with its features column-wise, as
serving hands it to the log; rows are spread evenly over ``HOURS`` hours and cut into
1,000-record batches (the writer's batch size); batch ``b`` goes to replica ``b % writers``,
each replica with its own ``SummaryFolder`` and writer id, saving its dirty hours every
``SAVE_EVERY`` records through ``SummaryStore`` (as the writer does every few seconds).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from drift_data import BATCH, predict, sample, served

from mlkeel.db import make_engine
from mlkeel.monitoring.profile import BaselineProfile, build_profile
from mlkeel.monitoring.summaries import SummaryFolder
from mlkeel.monitoring.summary_store import SummaryStore
from mlkeel.prediction_log.record import LoggedRequest, PredictionRecord
from mlkeel.prediction_log.repository import PredictionRepository

MODEL = "bench"
VERSION = 1
VARIANT = "champion"
HOURS = 24
START = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
CHUNK_BATCHES = 10  # batches generated at once: memory stays flat at any size
SAVE_EVERY = 100_000  # records a replica folds between two saves of its dirty hours


@dataclass(frozen=True)
class WriterSpec:
    """One replica's share of the traffic and where it goes."""

    url: str  # the SQLite database holding the summaries (and the raw log, if `insert`)
    rows: int  # total rows of the whole fleet
    writers: int
    index: int
    seed: int
    insert: bool  # also store the raw records through the repository
    parquet: Path | None  # also write the current rows here (for Evidently)


@dataclass
class WriterCost:
    """Seconds one replica spent on each step, summed over its batches."""

    rows: int = 0
    batches: int = 0
    generate_s: float = 0.0
    fold_s: float = 0.0
    insert_s: float = 0.0
    save_s: float = 0.0  # to_payload + upsert of dirty hours
    parquet_s: float = 0.0

    def add(self, other: WriterCost) -> None:
        for name in ("rows", "batches", "generate_s", "fold_s", "insert_s", "save_s", "parquet_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def reference(seed: int, rows: int) -> tuple[pd.DataFrame, BaselineProfile]:
    """The training sample and its baseline profile (as training captures it)."""
    frame = sample(np.random.default_rng([seed, 10_000]), rows, drifted=False)
    return frame, build_profile(frame, predict(frame))


def window() -> tuple[float, float]:
    """[since, until) of the daily job: the whole day of generated traffic."""
    return START, START + HOURS * 3600


def writer_id(index: int) -> str:
    return f"bench-replica-{index}"


def run_writer(spec: WriterSpec, profile: BaselineProfile) -> WriterCost:
    """Generate, fold (and optionally insert) one replica's batches; save its summaries."""
    engine = make_engine(spec.url)
    folder = SummaryFolder(lambda model, version: profile)
    store = SummaryStore(engine)
    repository = PredictionRepository(engine) if spec.insert else None
    parquet = _ParquetSink(spec.parquet) if spec.parquet else None
    cost = WriterCost()
    unsaved = 0
    try:
        for frame, batches in _chunks(spec, cost):
            if parquet is not None:
                cost.parquet_s += parquet.write(frame)
            for batch in batches:
                # The writer hands the fold its batch's records, which it has for the insert.
                records = [r.records[0] for r in batch]
                cost.fold_s += _timed(folder.fold_requests, batch, records)
                if repository is not None:
                    cost.insert_s += _timed(repository.insert, records)
                cost.rows += len(batch)
                cost.batches += 1
                unsaved += len(batch)
            if unsaved >= SAVE_EVERY:
                cost.save_s += _save(folder, store, spec.index)
                unsaved = 0
        cost.save_s += _save(folder, store, spec.index)
    finally:
        if parquet is not None:
            parquet.close()
        engine.dispose()
    return cost


def _timed(step: Any, *args: Any) -> float:
    started = time.perf_counter()
    step(*args)
    return time.perf_counter() - started


def _save(folder: SummaryFolder, store: SummaryStore, index: int) -> float:
    started = time.perf_counter()
    payloads = {key: summary.to_payload() for key, summary in folder.take_dirty().items()}
    store.save(writer_id(index), payloads)
    return time.perf_counter() - started


def _chunks(
    spec: WriterSpec, cost: WriterCost
) -> Iterator[tuple[pd.DataFrame, list[list[LoggedRequest]]]]:
    """This replica's batches, CHUNK_BATCHES at a time, with the frame they came from."""
    rng = np.random.default_rng([spec.seed, spec.index])
    mine = list(range(spec.index, _batch_count(spec.rows), spec.writers))
    for at in range(0, len(mine), CHUNK_BATCHES):
        started = time.perf_counter()
        globals_ = mine[at : at + CHUNK_BATCHES]
        firsts = [g * BATCH for g in globals_]
        sizes = [min(BATCH, spec.rows - first) for first in firsts]
        frame = sample(rng, sum(sizes), drifted=True)
        latency = rng.lognormal(1.0, 0.7, len(frame))
        requests = served(frame, _records(frame, firsts, sizes, latency, spec))
        cost.generate_s += time.perf_counter() - started
        yield frame, _split(requests, sizes)


def _batch_count(rows: int) -> int:
    return -(-rows // BATCH)


def _records(
    frame: pd.DataFrame,
    firsts: list[int],
    sizes: list[int],
    latency: np.ndarray,
    spec: WriterSpec,
) -> list[PredictionRecord]:
    """PredictionRecords of `frame`, whose rows hold the global rows of each batch in turn."""
    names = [str(name) for name in frame.columns]
    columns = [frame[name].tolist() for name in names]
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    numbers = np.concatenate([np.arange(f, f + n) for f, n in zip(firsts, sizes, strict=True)])
    step = HOURS * 3600 / spec.rows
    times = [datetime.fromtimestamp(START + n * step, UTC) for n in numbers.tolist()]
    scores = predict(frame).tolist()
    tag = f"{spec.seed}-{spec.index}"
    return [
        PredictionRecord(moment, MODEL, VERSION, VARIANT, f"{tag}-{n}", 0, row, score, None, lat)
        for moment, n, row, score, lat in zip(
            times, numbers.tolist(), rows, scores, latency.tolist(), strict=True
        )
    ]


def _split(requests: list[LoggedRequest], sizes: list[int]) -> list[list[LoggedRequest]]:
    bounds = np.cumsum([0, *sizes]).tolist()
    return [requests[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class _ParquetSink:
    """Appends frames to one Parquet file (row groups), so the whole never sits in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: object | None = None

    def write(self, frame: pd.DataFrame) -> float:
        import pyarrow as pa
        import pyarrow.parquet as pq

        started = time.perf_counter()
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table)  # type: ignore[attr-defined]
        return time.perf_counter() - started

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()  # type: ignore[attr-defined]
