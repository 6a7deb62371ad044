"""Load-testing a model server over real HTTP: rows in, request bodies out, latency figures back.

The pieces, in the order the CLI uses them:

- :func:`fetch_schema` asks the server for a model's input schema (features and examples);
- :func:`rows_from_schema` / :func:`read_rows` give the rows to send (examples, synthesised
  rows, or a CSV/Parquet file);
- :func:`make_bodies` pre-serialises the distinct ``{"instances": [...]}`` bodies once, so the
  client spends its CPU sending, not encoding (it usually shares the machine with the server);
- :func:`run_load` drives N workers on one keep-alive ``httpx.AsyncClient`` until the deadline
  or a request budget, and returns a :class:`LoadResult`.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from mlkeel.errors import DataError, MlkeelError

Row = dict[str, Any]

SYNTHETIC_ROWS = 256
MAX_BODIES = 1024
ERROR_BACKOFF_S = 0.01  # after a transport error, so a refused connection is not a busy loop
PROGRESS_INTERVAL_S = 0.1
FILE_SUFFIXES = (".csv", ".parquet", ".pq")
JSON_HEADERS = {"content-type": "application/json"}


def model_path(model: str) -> str:
    """The model's resource path, its name percent-encoded."""
    return f"/v1/models/{quote(model, safe='')}"


# --------------------------------------------------------------------------- rows and bodies


def fetch_schema(url: str, model: str, *, timeout_s: float = 10.0) -> dict[str, Any] | None:
    """The model's input schema from ``GET {url}/v1/models/{model}``; None if it has none.

    Raises MlkeelError when the server cannot be reached, has no such model (404), or answers
    with anything but a JSON object.
    """
    address = url.rstrip("/") + model_path(model)
    try:
        response = httpx.get(address, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise MlkeelError(
            f"cannot reach {address}: {type(exc).__name__}: {exc or 'no detail'}; "
            "check --url and that the server is running"
        ) from None
    if response.status_code == 404:
        raise MlkeelError(
            f"the server at {url} has no model {model!r} (GET {address} returned 404); "
            "check --model against the models it serves"
        )
    if not response.is_success:
        raise MlkeelError(
            f"GET {address} returned HTTP {response.status_code}: {response.text[:200]!r}"
        )
    try:
        body = response.json()
    except ValueError:
        raise MlkeelError(f"GET {address} did not return JSON: {response.text[:200]!r}") from None
    if not isinstance(body, dict):
        raise MlkeelError(f"GET {address} returned {type(body).__name__}, expected an object")
    schema = body.get("input_schema")
    return schema if isinstance(schema, dict) else None


def rows_from_schema(
    schema: dict[str, Any], *, count: int = SYNTHETIC_ROWS, seed: int = 0
) -> list[Row]:
    """The schema's example rows if it has any, else `count` rows synthesised from its features."""
    examples = [dict(row) for row in schema.get("examples") or [] if isinstance(row, dict)]
    if examples:
        return examples
    features = schema.get("features") or []
    if not features:
        raise DataError(
            "the model's schema has neither examples nor features to build rows from; "
            "pass rows with --rows FILE"
        )
    return synthesise_rows(features, count=count, seed=seed)


def synthesise_rows(features: Sequence[dict[str, Any]], *, count: int, seed: int = 0) -> list[Row]:
    """`count` rows that respect each feature's range or categories; the same seed, the same rows.

    Numeric features are drawn uniformly between their minimum and maximum (integers for
    ``dtype == "int"``); categorical features cycle through their categories.
    """
    rng = np.random.default_rng(seed)
    columns = {str(spec["name"]): _synthesise_column(spec, count, rng) for spec in features}
    return [{name: values[i] for name, values in columns.items()} for i in range(count)]


def _synthesise_column(spec: dict[str, Any], count: int, rng: np.random.Generator) -> list[Any]:
    name, dtype = str(spec["name"]), spec.get("dtype")
    if spec.get("kind") == "numeric":
        low = _finite(spec.get("minimum"), 0.0)
        high = max(low, _finite(spec.get("maximum"), low + 1.0))
        if dtype == "int":
            low_int, high_int = math.ceil(low), max(math.ceil(low), math.floor(high))
            return [int(v) for v in rng.integers(low_int, high_int, size=count, endpoint=True)]
        return [float(v) for v in rng.uniform(low, high, size=count)]
    categories: list[Any] = list(spec.get("categories") or [])
    if dtype == "bool":
        categories = [str(c) == "True" for c in categories] or [False, True]
    elif not categories:
        categories = [f"{name}-{i}" for i in range(10)]
    return [categories[i % len(categories)] for i in range(count)]


def _finite(value: Any, default: float) -> float:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return default


def read_rows(path: Path, columns: Sequence[str] | None = None) -> list[Row]:
    """The rows of a CSV or Parquet file, restricted to `columns` when given; NaN becomes null."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]  # no pandas-stubs here

    if not path.is_file():
        raise DataError(f"rows file {path} does not exist; pass a CSV or Parquet file to --rows")
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(f"rows file {path} has suffix {suffix!r}; supported: {FILE_SUFFIXES}")
    try:
        data = path.read_bytes()
        frame = (
            pd.read_csv(io.BytesIO(data)) if suffix == ".csv" else pd.read_parquet(io.BytesIO(data))
        )
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read rows file {path}: {exc}") from None
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"rows file {path} lacks the model's feature column(s) {missing}; "
                f"it has {list(frame.columns)}"
            )
        frame = frame[list(columns)]
    if frame.empty:
        raise DataError(f"rows file {path} has no rows")
    rows: list[Row] = json.loads(frame.to_json(orient="records", date_format="iso"))
    return rows


def make_bodies(rows: Sequence[Row], batch: int, *, limit: int = MAX_BODIES) -> list[bytes]:
    """The distinct ``{"instances": [...]}`` bodies of `batch` consecutive rows, cycling the rows.

    Batches start at row 0, batch, 2*batch, ... (modulo the row count) until the starts repeat,
    so every row is sent equally often; at most `limit` bodies are kept.
    """
    if not rows:
        raise DataError("no rows to send")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    n = len(rows)
    distinct = min(n // math.gcd(n, batch), limit)
    bodies = []
    for i in range(distinct):
        start = i * batch
        instances = [rows[(start + j) % n] for j in range(batch)]
        bodies.append(json.dumps({"instances": instances}, separators=(",", ":")).encode())
    return bodies


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Progress:
    """A snapshot for progress displays, taken every ~0.1 s during a run."""

    requests: int
    errors: int
    elapsed_s: float


@dataclass(frozen=True)
class LoadResult:
    """The figures of one load run. Latencies cover every request that got an HTTP response."""

    requests: int
    rows: int
    errors: int
    status_counts: dict[int, int]
    error_kinds: dict[str, int]
    duration_s: float
    req_per_s: float
    rows_per_s: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    concurrency: int
    batch: int

    @property
    def all_failed(self) -> bool:
        return self.errors >= self.requests

    @classmethod
    def summarise(
        cls,
        latencies_s: Sequence[float],
        status_counts: dict[int, int],
        error_kinds: dict[str, int],
        *,
        duration_s: float,
        concurrency: int,
        batch: int,
    ) -> LoadResult:
        """Percentiles (numpy, linear interpolation) and rates from the raw measurements."""
        requests = sum(status_counts.values()) + sum(error_kinds.values())
        failed_status = sum(n for code, n in status_counts.items() if not 200 <= code < 300)
        p50 = p95 = p99 = top = None
        if len(latencies_s):
            ms = np.asarray(latencies_s, dtype=float) * 1000.0
            p50, p95, p99 = (float(v) for v in np.percentile(ms, [50, 95, 99]))
            top = float(ms.max())
        per_s = 1.0 / duration_s if duration_s > 0 else 0.0
        return cls(
            requests=requests,
            rows=requests * batch,
            errors=failed_status + sum(error_kinds.values()),
            status_counts=dict(sorted(status_counts.items())),
            error_kinds=dict(sorted(error_kinds.items())),
            duration_s=duration_s,
            req_per_s=requests * per_s,
            rows_per_s=requests * batch * per_s,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
            latency_max_ms=top,
            concurrency=concurrency,
            batch=batch,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: status codes become string keys."""
        return {
            "requests": self.requests,
            "rows": self.rows,
            "errors": self.errors,
            "status_counts": {str(code): n for code, n in self.status_counts.items()},
            "error_kinds": dict(self.error_kinds),
            "duration_s": self.duration_s,
            "req_per_s": self.req_per_s,
            "rows_per_s": self.rows_per_s,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p95_ms": self.latency_p95_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "latency_max_ms": self.latency_max_ms,
            "concurrency": self.concurrency,
            "batch": self.batch,
        }


# --------------------------------------------------------------------------- the run


@dataclass
class _Tally:
    """Shared by the workers of one run; they all live on one event loop, so no locks."""

    issued: int = 0
    latencies_s: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> int:
        return sum(self.statuses.values()) + sum(self.error_kinds.values())

    @property
    def errors(self) -> int:
        failed = sum(n for code, n in self.statuses.items() if not 200 <= code < 300)
        return failed + sum(self.error_kinds.values())


async def _worker(
    client: httpx.AsyncClient,
    path: str,
    bodies: Sequence[bytes],
    tally: _Tally,
    deadline: float,
    max_requests: int | None,
) -> None:
    clock = time.perf_counter
    while clock() < deadline and (max_requests is None or tally.issued < max_requests):
        body = bodies[tally.issued % len(bodies)]
        tally.issued += 1
        started = clock()
        try:
            response = await client.post(path, content=body, headers=JSON_HEADERS)
        except httpx.HTTPError as exc:
            tally.error_kinds[type(exc).__name__] += 1
            await asyncio.sleep(ERROR_BACKOFF_S)
            continue
        tally.latencies_s.append(clock() - started)
        tally.statuses[response.status_code] += 1


async def _report(tally: _Tally, started: float, on_progress: Callable[[Progress], None]) -> None:
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL_S)
        on_progress(Progress(tally.done, tally.errors, time.perf_counter() - started))


async def run_load(
    url: str,
    model: str,
    rows: Sequence[Row],
    *,
    concurrency: int,
    duration_s: float,
    batch: int,
    max_requests: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    timeout_s: float = 10.0,
) -> LoadResult:
    """POST `batch` rows per request to ``{url}/v1/models/{model}/predict`` from `concurrency`
    workers until `duration_s` has passed or `max_requests` requests were sent.

    Always bounded: requests still in flight at the deadline get at most `timeout_s` more,
    then are cancelled and left uncounted.
    """
    if concurrency < 1 or batch < 1 or not 0 < duration_s <= 3600:
        raise ValueError(
            f"need concurrency >= 1, batch >= 1 and 0 < duration_s <= 3600; got "
            f"concurrency={concurrency}, batch={batch}, duration_s={duration_s}"
        )
    bodies = make_bodies(rows, batch)
    tally = _Tally()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url.rstrip("/"), limits=limits, timeout=httpx.Timeout(timeout_s)
    ) as client:
        started = time.perf_counter()
        deadline = started + duration_s
        path = model_path(model) + "/predict"
        workers = [
            asyncio.create_task(_worker(client, path, bodies, tally, deadline, max_requests))
            for _ in range(concurrency)
        ]
        reporter = asyncio.create_task(_report(tally, started, on_progress or _ignore))
        try:
            await asyncio.wait(workers, timeout=duration_s + timeout_s)
        finally:  # stragglers past the bound, or the caller cancelled us
            for task in [*workers, reporter]:
                task.cancel()
            await asyncio.gather(*workers, reporter, return_exceptions=True)
        elapsed = time.perf_counter() - started
    for task in workers:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
    if on_progress is not None:
        on_progress(Progress(tally.done, tally.errors, elapsed))
    return LoadResult.summarise(
        tally.latencies_s,
        dict(tally.statuses),
        dict(tally.error_kinds),
        duration_s=elapsed,
        concurrency=concurrency,
        batch=batch,
    )


def _ignore(progress: Progress) -> None:
    """The progress callback when nobody listens."""
