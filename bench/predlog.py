"""Prediction-log benchmark: sustained insert rate, bytes per record, writer memory, and
serving throughput with the log on vs off, all in one run.

    uv run python bench/predlog.py [--records 200000] [--memory-records 1000000]
                                   [--id-rows 300000]

PostgreSQL: the machine's server at 127.0.0.1:5432 (a scratch database is created and
dropped). Records carry 25 features (20 numeric, 5 categorical) like the issue's figures.
The rate test's request ids are sequential; the id test grows a SQLite log with one-row
requests whose ids are random (uuid4) or the server's time-ordered ones (UUIDv7).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from mlkeel.db import make_engine, upgrade
from mlkeel.prediction_log.record import PredictionRecord
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.prediction_log.spool import Spool
from mlkeel.prediction_log.writer import PredictionLogWriter
from mlkeel.serving.schemas import new_request_id

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def make_records(count: int, seed: int = 0) -> list[PredictionRecord]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    categories = ["alpha", "beta", "gamma", "delta"]
    tag = uuid.uuid4().hex[:8]
    return [
        PredictionRecord(
            now,
            "bench",
            1,
            "champion",
            f"{tag}-{i}",
            0,
            {
                **{f"x{j}": rng.random() for j in range(20)},
                **{f"c{j}": categories[rng.randrange(4)] for j in range(5)},
            },
            rng.randrange(2),
            {"0": 0.3, "1": 0.7},
            1.5,
        )  # fmt: skip
        for i in range(count)
    ]


def insert_rate(url: str, records: list[PredictionRecord], spool_dir: Path) -> float:
    engine = make_engine(url)
    upgrade(engine)
    # The previous run's dirty pages (another backend's ~100 MB) would otherwise be written
    # back by the kernel during this run, slowing its commits' fsyncs: flush them first.
    os.sync()
    writer = PredictionLogWriter(PredictionRepository(engine), Spool(spool_dir), batch_size=1000)
    writer.start()
    started = time.perf_counter()
    for start in range(0, len(records), 10):
        writer.submit(records[start : start + 10])
    writer.stop(timeout=600)
    seconds = time.perf_counter() - started
    stats = writer.stats
    assert stats.written + stats.replayed == len(records), stats
    if stats.spooled:  # the database fell behind the burst (see the writer's SPILL_SECONDS)
        print(f"  ({stats.spooled:,} of {len(records):,} records went through the spool)")
    engine.dispose()
    return len(records) / seconds


def bytes_per_record(url: str, rows: int) -> float:
    engine = make_engine(url)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            size = connection.exec_driver_sql(
                "SELECT pg_total_relation_size('mlkeel_predictions')"
            ).scalar_one()
        else:
            pages = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
            size = pages * connection.exec_driver_sql("PRAGMA page_size").scalar_one()
    engine.dispose()
    return float(size) / rows


def writer_memory(url: str, total: int, spool_dir: Path) -> list[tuple[int, float]]:
    """RSS (MiB) after every 10% of `total` records pushed through one writer."""
    engine = make_engine(url)
    upgrade(engine)
    writer = PredictionLogWriter(PredictionRepository(engine), Spool(spool_dir))
    writer.start()
    chunk = make_records(10_000)
    samples = []
    for done in range(0, total, 10_000):
        fresh = [
            PredictionRecord(r.time, r.model, r.version, r.variant, f"{done}-{r.request_id}",
                             r.row, r.features, r.prediction, r.probabilities, r.latency_ms)
            for r in chunk
        ]  # fmt: skip
        for start in range(0, len(fresh), 10):
            writer.submit(fresh[start : start + 10])
        writer.flush(timeout=600)
        if (done + 10_000) % (total // 10) == 0:
            samples.append((done + 10_000, rss_mib()))
    writer.stop()
    engine.dispose()
    return samples


def id_order(url: str, rows: int) -> tuple[float, float]:
    """ms per 1,000-record batch of one-row requests, at the start and once `rows` are in."""
    engine = make_engine(url)
    upgrade(engine)
    repository = PredictionRepository(engine)
    make_id = (lambda: uuid.uuid4().hex) if "uuid4" in url else new_request_id
    template = make_records(1000)
    times = []
    for _ in range(rows // 1000):
        batch = [
            PredictionRecord(r.time, r.model, r.version, r.variant, make_id(), 0, r.features,
                             r.prediction, r.probabilities, r.latency_ms)
            for r in template
        ]  # fmt: skip
        started = time.perf_counter()
        repository.insert(batch)
        times.append((time.perf_counter() - started) * 1000)
    engine.dispose()
    return statistics.median(times[:50]), statistics.median(times[-50:])


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--memory-records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--id-rows", type=int, default=300_000)
    args = parser.parse_args()
    name = f"mlkeel_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    postgres = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch)
            # First, before the rate test's record lists inflate this process.
            memory = writer_memory(f"sqlite:///{root / 'memory.db'}", args.memory_records,
                                   root / "spool")  # fmt: skip
            print(
                "writer RSS over records: "
                + ", ".join(f"{count // 1000}k={mib:.0f} MiB" for count, mib in memory)
            )
            rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
            for index in range(args.rounds):
                sqlite = f"sqlite:///{root / f'log{index}.db'}"
                for backend, url in (("sqlite", sqlite), ("postgresql", postgres)):
                    batch = make_records(args.records, seed=index)
                    rates[backend].append(insert_rate(url, batch, root / "spool"))
            for backend, values in rates.items():
                print(
                    f"insert rate {backend:10s}: median {statistics.median(values):,.0f} rows/s "
                    f"(runs: {', '.join(f'{v:,.0f}' for v in values)})"
                )
            first_sqlite = f"sqlite:///{root / 'log0.db'}"
            stored = args.records * args.rounds
            print(f"bytes/record sqlite    : {bytes_per_record(first_sqlite, args.records):,.0f}")
            print(f"bytes/record postgresql: {bytes_per_record(postgres, stored):,.0f}")
            for kind in ("uuid4", "uuid7", "uuid4", "uuid7"):  # alternated: same machine load
                first, last = id_order(f"sqlite:///{root / f'ids-{kind}-{time.time_ns()}.db'}",
                                       args.id_rows)  # fmt: skip
                print(
                    f"one-row requests, {kind} ids: {first:.2f} ms per 1,000 records at first, "
                    f"{last:.2f} ms with {args.id_rows:,} in the log"
                )
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
