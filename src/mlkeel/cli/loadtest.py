"""``mlkeel loadtest``: real HTTP load on a model server, with latency percentiles."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mlkeel.cli.console import console, err_console
from mlkeel.errors import ConfigError, MlkeelError

if TYPE_CHECKING:
    from mlkeel.loadtest import LoadResult, Progress, Row

    Load = Callable[[Callable[[Progress], None] | None], LoadResult]

RATE_WINDOW_S = 1.0
MAX_DURATION_S = 3600
MAX_CONCURRENCY = 1024
MAX_TIMEOUT_S = 300


def register(app: typer.Typer) -> None:
    app.command("loadtest")(loadtest)


def loadtest(
    url: Annotated[str, typer.Option(help="Server base URL, e.g. http://127.0.0.1:8000.")],
    model: Annotated[str, typer.Option(help="Model name, as in /v1/models/NAME/predict.")],
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once (1..1024).")] = 8,
    duration: Annotated[float, typer.Option(help="Seconds to run (0 < S <= 3600).")] = 10.0,
    batch: Annotated[int, typer.Option(help="Rows per request (>= 1).")] = 1,
    rows: Annotated[
        Path | None,
        typer.Option(help="CSV or Parquet file of rows to send (default: the model's schema)."),
    ] = None,
    max_requests: Annotated[
        int | None,
        typer.Option("--requests", "--max-requests", help="Stop after this many requests."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Per-request timeout, seconds (0..300].")] = 10.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the figures, as JSON.")] = (
        False
    ),
) -> None:
    """Send predict requests for DURATION seconds and report throughput and latency."""
    from mlkeel.loadtest import run_load

    url = url.rstrip("/")
    _check_bounds(url, concurrency, duration, batch, max_requests, timeout)
    sample = _rows_to_send(url, model, rows, timeout)

    def load(on_progress: Callable[[Progress], None] | None) -> LoadResult:
        return asyncio.run(
            run_load(
                url,
                model,
                sample,
                concurrency=concurrency,
                duration_s=duration,
                batch=batch,
                max_requests=max_requests,
                on_progress=on_progress,
                timeout_s=timeout,
            )
        )

    if as_json:
        result = load(None)
        console.print_json(json.dumps(result.to_dict()))
    else:
        result = _with_progress(load, duration, f"{url} model {model}")
        console.print(_table(result, f"{url} · {model}"))
    if result.all_failed:
        raise MlkeelError(f"every request to {url} failed: {_failures(result)}")


def _check_bounds(
    url: str,
    concurrency: int,
    duration: float,
    batch: int,
    max_requests: int | None,
    timeout: float,
) -> None:
    """Every run is bounded: reject values outside the documented ranges, naming them."""
    problems = []
    if not url.startswith(("http://", "https://")):
        problems.append(f"--url {url!r} is not an http:// or https:// URL")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        problems.append(f"--concurrency {concurrency} is outside 1..{MAX_CONCURRENCY}")
    if not 0 < duration <= MAX_DURATION_S:
        problems.append(f"--duration {duration:g} is outside 0 < S <= {MAX_DURATION_S}")
    if batch < 1:
        problems.append(f"--batch {batch} must be at least 1")
    if max_requests is not None and max_requests < 1:
        problems.append(f"--requests {max_requests} must be at least 1")
    if not 0 < timeout <= MAX_TIMEOUT_S:
        problems.append(f"--timeout {timeout:g} is outside 0 < S <= {MAX_TIMEOUT_S}")
    if problems:
        raise ConfigError("; ".join(problems))


def _rows_to_send(url: str, model: str, rows: Path | None, timeout: float) -> list[Row]:
    """Rows from --rows (restricted to the schema's features), else the server's schema."""
    from mlkeel.loadtest import fetch_schema, read_rows, rows_from_schema

    schema = fetch_schema(url, model, timeout_s=timeout)
    if rows is not None:
        columns = [str(f["name"]) for f in schema.get("features") or []] if schema else None
        return read_rows(rows, columns or None)
    if schema is None:
        raise MlkeelError(
            f"the server at {url} returned no input schema for {model!r}; "
            "pass rows to send with --rows FILE"
        )
    return rows_from_schema(schema)


def _with_progress(load: Load, duration: float, label: str) -> LoadResult:
    """Run `load` under a live bar over the duration: requests done and the current rate."""
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Bar(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=duration, status="starting")
        window: deque[tuple[float, int]] = deque([(0.0, 0)])

        def update(progress: Progress) -> None:
            window.append((progress.elapsed_s, progress.requests))
            while len(window) > 2 and progress.elapsed_s - window[1][0] >= RATE_WINDOW_S:
                window.popleft()
            (t0, n0), (t1, n1) = window[0], window[-1]
            rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
            errors = f" · [red]{progress.errors:,} errors[/]" if progress.errors else ""
            status = f"{progress.requests:,} requests · {rate:,.0f} req/s{errors}"
            bar.update(task, completed=min(progress.elapsed_s, duration), status=status)

        return load(update)


def _table(result: LoadResult, title: str) -> Table:
    table = Table("figure", "value", title=title, show_header=False)
    ms = {
        "p50": result.latency_p50_ms,
        "p95": result.latency_p95_ms,
        "p99": result.latency_p99_ms,
        "max": result.latency_max_ms,
    }
    figures = {
        "concurrency · batch": f"{result.concurrency} · {result.batch}",
        "duration": f"{result.duration_s:.2f} s",
        "requests": f"{result.requests:,}",
        "rows": f"{result.rows:,}",
        "throughput": f"{result.req_per_s:,.1f} req/s · {result.rows_per_s:,.1f} rows/s",
        **{f"latency {k}": "-" if v is None else f"{v:.2f} ms" for k, v in ms.items()},
        "status codes": ", ".join(f"{c}: {n:,}" for c, n in result.status_counts.items()) or "-",
        "errors": f"[red]{result.errors:,}[/]" if result.errors else "0",
    }
    if result.error_kinds:
        figures["transport errors"] = ", ".join(
            f"{kind}: {n:,}" for kind, n in result.error_kinds.items()
        )
    for name, value in figures.items():
        table.add_row(name, value)
    return table


def _failures(result: LoadResult) -> str:
    if not result.requests:
        return "no request completed"
    parts = [f"{n:,} × {kind}" for kind, n in result.error_kinds.items()]
    parts += [f"{n:,} × HTTP {c}" for c, n in result.status_counts.items() if not 200 <= c < 300]
    return ", ".join(parts)
