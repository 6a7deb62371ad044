"""Drift verdicts on generated data with known truth, and the cost of folding summaries.

    uv run python bench/drift_data.py [--sizes 10000,100000,1000000] [--seeds 3]
                                      [--reference 50000] [--no-exact] [--no-fold-bench]

25 features (20 numeric of several shapes, 5 categorical). The current sample shifts x0-x3 in
mean (+0.5 std), x4-x5 in scale (x1.5 around the mean), x6 in both, re-weights c0 and adds
an unseen category to c1; everything else is drawn from the reference's distribution. The
profile is built from the reference; the current sample goes through ``SummaryFolder`` as
real ``PredictionRecord``s in writer-sized batches of 1,000 (built 10,000 at a time so memory
stays flat at 1M), then ``compare`` judges the merged summary. Also shown: ``compare_exact``
on the raw samples, and how plain KS / chi-square p < 0.05 does on the clean columns.

The fold benchmark folds 1,000-record batches and inserts the same batches into a SQLite
prediction log (WAL, the writer's ``executemany``) and, when a server answers on
127.0.0.1:5432, a PostgreSQL one (``COPY``), alternating, and reports the ratios, beside
the cost of merely gathering each request's objects and arrays (the floor of any fold).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter, itemgetter
from pathlib import Path

import numpy as np
import pandas as pd

from mlkeel.monitoring.drift import DriftResult, compare, compare_exact
from mlkeel.monitoring.profile import build_profile
from mlkeel.monitoring.stats import chi2_test, ks_test
from mlkeel.monitoring.summaries import Summary, SummaryFolder
from mlkeel.prediction_log.record import (
    UNLISTED,
    ColumnLayout,
    FeatureColumns,
    LoggedRequest,
    PredictionRecord,
)
from mlkeel.settings import DriftConfig

NUMERIC = [f"x{i}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
MEAN_SHIFTED = {"x0", "x1", "x2", "x3", "x6"}
SCALED = {"x4", "x5", "x6"}
REWEIGHTED = {"c0", "c1"}
DRIFTED = MEAN_SHIFTED | SCALED | REWEIGHTED
LEVELS = ["red", "green", "blue", "amber"]
WEIGHTS = [0.4, 0.3, 0.2, 0.1]
BATCH = 1000
LEVEL_CODES = {level: code for code, level in enumerate(sorted(LEVELS))}  # the schema's order
# The layout every request shares (serving's validator keeps one per model version).
LAYOUT = ColumnLayout(tuple(NUMERIC), tuple(CATEGORICAL), (tuple(sorted(LEVELS)),) * 5)
CHUNK = 10_000
POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START = datetime(2025, 1, 1, tzinfo=UTC)

Draw = Callable[[np.random.Generator, int], np.ndarray]

# Several shapes: symmetric, skewed, bounded, heavy-tailed and integer-valued (ties).
SHAPES: dict[str, tuple[Draw, float, float]] = {  # name -> (draw, mean, std)
    "normal": (lambda g, n: g.normal(10.0, 2.0, n), 10.0, 2.0),
    "lognormal": (lambda g, n: g.lognormal(0.0, 0.5, n), np.exp(0.125), 0.6039),
    "uniform": (lambda g, n: g.uniform(-1.0, 1.0, n), 0.0, 1 / np.sqrt(3)),
    "exponential": (lambda g, n: g.exponential(3.0, n), 3.0, 3.0),
    "student": (lambda g, n: g.standard_t(5, n), 0.0, np.sqrt(5 / 3)),
    "poisson": (lambda g, n: g.poisson(4.0, n).astype(np.float64), 4.0, 2.0),
}
SHAPE_OF = {name: list(SHAPES)[i % len(SHAPES)] for i, name in enumerate(NUMERIC)}


def sample(rng: np.random.Generator, rows: int, drifted: bool) -> pd.DataFrame:
    columns: dict[str, np.ndarray] = {}
    for name in NUMERIC:
        draw, mean, std = SHAPES[SHAPE_OF[name]]
        values = draw(rng, rows)
        if drifted and name in SCALED:
            values = mean + 1.5 * (values - mean)
        if drifted and name in MEAN_SHIFTED:
            values = values + 0.5 * std
        columns[name] = values
    for name in CATEGORICAL:
        levels, weights = LEVELS, WEIGHTS
        if drifted and name == "c0":
            weights = [0.2, 0.2, 0.3, 0.3]
        if drifted and name == "c1":
            levels, weights = [*LEVELS, "violet"], [0.3, 0.25, 0.2, 0.1, 0.15]
        columns[name] = rng.choice(np.array(levels, dtype=object), size=rows, p=weights)
    return pd.DataFrame(columns)


def predict(frame: pd.DataFrame) -> np.ndarray:
    """A stand-in model: a logistic score of a few features (shifts in x0/x4 move it)."""
    z = 0.3 * (frame["x0"] - 10.0) / 2.0 + 0.5 * frame["x4"] - 0.2 * frame["x7"]
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def records(frame: pd.DataFrame, start: int, latency: np.ndarray) -> list[PredictionRecord]:
    scores = predict(frame).tolist()
    rows = frame.to_dict(orient="records")
    moment = START + timedelta(minutes=30)
    tag = uuid.uuid4().hex[:8]
    return [
        PredictionRecord(
            moment, "bench", 1, "champion", f"{tag}-{start + i}", 0, row, score, None, lat
        )
        for i, (row, score, lat) in enumerate(zip(rows, scores, latency.tolist(), strict=True))
    ]


def requests(frame: pd.DataFrame, start: int, latency: np.ndarray) -> list[LoggedRequest]:
    return served(frame, records(frame, start, latency))


def served(frame: pd.DataFrame, logged: list[PredictionRecord]) -> list[LoggedRequest]:
    """Each record of `frame`'s rows as a single-row request with its features column-wise, as
    serving's validator hands them to the log (``Validator.feature_columns``: a 1 x 20 float
    block and a 1 x 5 block of category codes of its own; ``like_serving`` checks it)."""
    numbers = frame[NUMERIC].to_numpy(dtype=np.float64)
    codes = np.column_stack(
        [frame[name].map(LEVEL_CODES).fillna(UNLISTED).to_numpy(np.int64) for name in CATEGORICAL]
    )
    return [
        LoggedRequest(
            [record],
            FeatureColumns(LAYOUT, numbers[i : i + 1].copy(), codes[i : i + 1].copy()),
        )
        for i, record in enumerate(logged)
    ]


def like_serving(reference: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Check that ``served`` builds what serving's validator builds from the same rows."""
    from mlkeel.schema import infer_schema
    from mlkeel.serving.validation import Validator

    schema = infer_schema(reference, pd.Series(predict(reference)), "regression")
    validator = Validator(schema, max_rows=1)
    for request in served(frame.head(50), records(frame.head(50), 0, np.ones(50))):
        (record,) = request.records
        expected = validator.feature_columns(validator.records([record.features], "instances"))
        got = request.columns
        assert got is not None
        assert got.layout == expected.layout, "the bench's layout differs from serving's"
        assert np.array_equal(got.numbers, expected.numbers)
        assert np.array_equal(got.codes, expected.codes)


def chunks(rng: np.random.Generator, total: int) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    for start in range(0, total, CHUNK):
        rows = min(CHUNK, total - start)
        yield sample(rng, rows, drifted=True), rng.lognormal(1.0, 0.7, rows)


@dataclass
class Run:
    size: int
    seed: int
    flagged: set[str]
    exact_flagged: set[str] | None
    plain_false: int
    fold_s: float
    compare_s: float
    rows: int


def run(size: int, seed: int, reference_rows: int, exact: bool) -> tuple[Run, DriftResult]:
    rng = np.random.default_rng(seed)
    reference = sample(rng, reference_rows, drifted=False)
    profile = build_profile(reference, predict(reference))
    folder = SummaryFolder(lambda model, version: profile)
    fold_s = 0.0
    kept: list[pd.DataFrame] = []
    for index, (frame, latency) in enumerate(chunks(rng, size)):
        batch = requests(frame, index * CHUNK, latency)
        started = time.perf_counter()
        for at in range(0, len(batch), BATCH):
            folder.fold_requests(batch[at : at + BATCH])
        fold_s += time.perf_counter() - started
        if exact:
            kept.append(frame)
    started = time.perf_counter()
    summary = merged(folder)
    result = compare(profile, summary, DriftConfig())
    compare_s = time.perf_counter() - started
    flagged = {v.name for v in result.features if v.drifted}
    exact_flagged = None
    plain_false = 0
    if exact:
        current = pd.concat(kept, ignore_index=True)
        exact_result = compare_exact(reference, current, None, None, DriftConfig())
        exact_flagged = {v.name for v in exact_result.features if v.drifted}
        plain_false = plain_false_alarms(reference, current)
    outcome = Run(size, seed, flagged, exact_flagged, plain_false, fold_s, compare_s, summary.rows)
    return outcome, result


def merged(folder: SummaryFolder) -> Summary:
    """What the monitor does: payloads as stored, rebuilt and merged."""
    total: Summary | None = None
    for state in folder.take_dirty().values():
        part = Summary.from_payload(state.to_payload())
        if total is None:
            total = part
        else:
            total.merge(part)
    if total is None:
        raise RuntimeError("nothing was folded")
    return total


def plain_false_alarms(reference: pd.DataFrame, current: pd.DataFrame) -> int:
    """Clean columns that plain KS (numeric) or chi-square (categorical) p < 0.05 flags."""
    flagged = 0
    for name in NUMERIC:
        if name not in DRIFTED:
            flagged += ks_test(reference[name], current[name])[1] < 0.05
    for name in CATEGORICAL:
        if name not in DRIFTED:
            ref = reference[name].value_counts().reindex(LEVELS, fill_value=0)
            cur = current[name].value_counts().reindex(LEVELS, fill_value=0)
            flagged += chi2_test(ref.to_numpy(), cur.to_numpy())[1] < 0.05
    return int(flagged)


def fold_bench(reference: pd.DataFrame, batches: int = 40) -> None:
    """Fold vs insert of the same 1,000-record batches, alternating (same machine load): into
    SQLite, and into PostgreSQL (COPY) when a server answers on 127.0.0.1:5432."""
    from mlkeel.db import make_engine, upgrade
    from mlkeel.prediction_log.repository import PredictionRepository

    profile = build_profile(reference, predict(reference))
    rng = np.random.default_rng(99)
    frames = [sample(rng, BATCH, drifted=True) for _ in range(batches)]
    like_serving(reference, frames[0])
    logged = [requests(frame, 0, rng.lognormal(1.0, 0.7, BATCH)) for frame in frames]
    prepared = [[request.records[0] for request in batch] for batch in logged]
    folder = SummaryFolder(lambda model, version: profile)
    with tempfile.TemporaryDirectory() as directory, postgres_database() as postgres:
        urls = {"SQLite": f"sqlite:///{Path(directory) / 'bench.db'}"}
        if postgres is not None:
            urls["PostgreSQL"] = postgres
        repositories = {}
        for backend, url in urls.items():
            engine = make_engine(url)
            upgrade(engine)
            repositories[backend] = PredictionRepository(engine)
        folder.fold_requests(logged[0])  # warm-up: plans, imports
        insert_s = dict.fromkeys(urls, 0.0)
        fold_s = gather_s = 0.0
        for batch, requested in zip(prepared[1:], logged[1:], strict=True):
            for backend, repository in repositories.items():
                started = time.perf_counter()
                repository.insert(batch)
                insert_s[backend] += time.perf_counter() - started
            started = time.perf_counter()
            folder.fold_requests(requested, batch)  # the writer hands over its records too
            fold_s += time.perf_counter() - started
            started = time.perf_counter()
            gather(requested, batch)
            gather_s += time.perf_counter() - started
        started = time.perf_counter()
        payloads = {key: s.to_payload() for key, s in folder.take_dirty().items()}
        payload_s = time.perf_counter() - started
        for repository in repositories.values():
            repository.engine.dispose()
        writer_rate = writer_throughput(prepared, Path(directory))
    n = (len(prepared) - 1) * BATCH
    print(
        f"fold: {fold_s / n * 1e6 * BATCH:,.0f} µs per 1,000 records ({n / fold_s:,.0f} records/s)"
        f"; to_payload of the hour's summary: {payload_s * 1e3:.2f} ms "
        f"({len(str(payloads)) // 1024} KiB as text)"
    )
    print(
        f"  gathering the requests' objects and arrays alone: {gather_s / n * 1e6 * BATCH:,.0f} "
        "µs per 1,000 (measured after the fold, so warmer than the fold found them)"
    )
    for backend, seconds in insert_s.items():
        print(
            f"  {backend} insert: {seconds / n * 1e6 * BATCH:,.0f} µs per 1,000 "
            f"({n / seconds:,.0f} records/s); fold/insert = {fold_s / seconds:.1%} "
            f"(gathering alone: {gather_s / seconds:.1%})"
        )
    if postgres is None:
        print("  PostgreSQL: no server on 127.0.0.1:5432, not measured")
    print(
        f"writer (queue, thread, SQLite) end to end: {writer_rate:,.0f} records/s; folding "
        f"would add {writer_rate * fold_s / n:.1%} to its time"
    )


def gather(requests: list[LoggedRequest], records: list[PredictionRecord]) -> object:
    """What any fold in the writer must do before it computes anything: read each request's
    columns and first record (time, latency), each record's prediction, and put the
    requests' numbers and codes in one place. Done at C speed, as the fold does it; its cost
    is the floor of folding single-row requests object by object."""
    blocks = list(map(attrgetter("columns"), requests))
    firsts = list(map(itemgetter(0), map(attrgetter("records"), requests)))
    latency = list(map(attrgetter("latency_ms"), firsts))
    times = list(map(attrgetter("time"), firsts))
    numbers = b"".join(map(attrgetter("numbers"), blocks))
    codes = b"".join(map(attrgetter("codes"), blocks))
    predictions = list(map(attrgetter("prediction"), records))
    return numbers, codes, latency, min(times), max(times), predictions


@contextlib.contextmanager
def postgres_database() -> Iterator[str | None]:
    """A scratch database on the local PostgreSQL server (dropped after), or None without one."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"mlkeel_fold_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError:
        admin.dispose()
        yield None
        return
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def writer_throughput(batches: list[list[PredictionRecord]], directory: Path) -> float:
    """Records/s through ``PredictionLogWriter`` into SQLite, submitted 10 at a time."""
    from mlkeel.db import make_engine, upgrade
    from mlkeel.prediction_log.repository import PredictionRepository
    from mlkeel.prediction_log.spool import Spool
    from mlkeel.prediction_log.writer import PredictionLogWriter

    engine = make_engine(f"sqlite:///{directory / 'writer.db'}")
    upgrade(engine)
    writer = PredictionLogWriter(
        PredictionRepository(engine), Spool(directory / "spool"), batch_size=BATCH
    )
    records = [record for batch in batches for record in batch]
    writer.start()
    started = time.perf_counter()
    for at in range(0, len(records), 10):
        writer.submit(records[at : at + 10])
    writer.stop(timeout=600)
    seconds = time.perf_counter() - started
    engine.dispose()
    return len(records) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reference", type=int, default=50_000)
    parser.add_argument("--no-exact", action="store_true", help="skip the raw-sample verdicts")
    parser.add_argument("--no-fold-bench", action="store_true")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if not args.no_fold_bench:
        rng = np.random.default_rng(0)
        reference = sample(rng, args.reference, drifted=False)
        fold_bench(reference)
    expected = sorted(DRIFTED, key=_order)
    print(f"expected drifted ({len(expected)} of 25): {', '.join(expected)}")
    print(
        f"{'rows':>9} {'seed':>4} {'flagged':>7} {'correct':>7} {'exact ok':>8} "
        f"{'plain KS/chi2 false':>19} {'fold s':>7} {'rec/s':>9} {'compare ms':>10}  wrong"
    )
    failures = 0
    for size in sizes:
        for seed in range(args.seeds):
            outcome, _ = run(size, seed, args.reference, not args.no_exact)
            correct = outcome.flagged == DRIFTED
            exact_ok = (
                "-" if outcome.exact_flagged is None else str(outcome.exact_flagged == DRIFTED)
            )
            wrong = sorted(outcome.flagged ^ DRIFTED, key=_order)
            failures += not correct
            print(
                f"{size:>9,} {seed:>4} {len(outcome.flagged):>7} {correct!s:>7} {exact_ok:>8} "
                f"{outcome.plain_false if outcome.exact_flagged is not None else '-':>19} "
                f"{outcome.fold_s:>7.2f} {outcome.rows / outcome.fold_s:>9,.0f} "
                f"{outcome.compare_s * 1e3:>10.1f}  {', '.join(wrong) or '-'}"
            )
    print("all verdicts correct" if failures == 0 else f"{failures} runs with wrong verdicts")


def _order(name: str) -> tuple[str, int]:
    return (name[0] == "c" and "z" or "a", int(name[1:]))


if __name__ == "__main__":
    main()
