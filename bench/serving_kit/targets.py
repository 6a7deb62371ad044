"""The issues' performance targets (issue 3, "Performance"; issue 4's log cost), each a ratio
measured in one run.

mlkeel is judged in its production configuration, the prediction log ON (``+log``); when the
log had no effect in this checkout (no rows stored), the figures are log-OFF and say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from serving_kit.results import Cell, RunResults
from serving_kit.wrk import LoadFigures

READY_LIMIT_S = 3.0
RSS_LIMIT = 1.5

LR_1ROW_C8 = Cell("lr", 1, 8)
LR_100ROW_C8 = Cell("lr", 100, 8)
RF_1ROW_C1 = Cell("rf", 1, 1)
RF_1ROW_C64 = Cell("rf", 1, 64)
RF_100ROW_C8 = Cell("rf", 100, 8)
RF_1000ROW_C4 = Cell("rf", 1000, 4)


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    measured: float | None  # the ratio, or seconds for start-to-ready
    passed: bool | None  # None: not measured in this run
    detail: str


def evaluate(results: RunResults) -> list[Target]:
    return [
        _rate("overhead-bound 1-row c8: mlkeel+log vs plain", results, "mlkeel+log", "plain",
              LR_1ROW_C8, 1.0),
        _rate("overhead-bound 1-row c8: mlkeel+log vs mlflow", results, "mlkeel+log", "mlflow",
              LR_1ROW_C8, 2.0),
        _rate("model-bound 1-row c64: mlkeel+batch+log vs bentoml+batch", results,
              "mlkeel+batch+log", "bentoml+batch", RF_1ROW_C64, 2.0),
        _p99("model-bound 1-row c64: p99 mlkeel+batch+log < bentoml+batch", results,
             "mlkeel+batch+log", "bentoml+batch", RF_1ROW_C64),
        _rate("model-bound 1-row c1: mlkeel+batch+log vs plain", results, "mlkeel+batch+log",
              "plain", RF_1ROW_C1, 0.95),
        _rate("overhead-bound 100-row c8: mlkeel+log vs plain", results, "mlkeel+log", "plain",
              LR_100ROW_C8, 1.0),
        _rate("model-bound 100-row c8: mlkeel+log vs plain", results, "mlkeel+log", "plain",
              RF_100ROW_C8, 1.0),
        _physical("model-bound 1000-row c4: mlkeel+log vs in-process predict_proba", results,
                  "mlkeel+log"),
        _physical("model-bound 1000-row c4: mlkeel+batch+log vs in-process predict_proba",
                  results, "mlkeel+batch+log"),
        # Issue 4: what the prediction log costs a server, batched and strict.
        _rate("prediction log ON vs OFF, overhead-bound 1-row c8", results, "mlkeel+log",
              "mlkeel", LR_1ROW_C8, 0.95),
        _cost("strict durability vs batch, overhead-bound 1-row c8", results, "mlkeel+strict",
              "mlkeel+log", LR_1ROW_C8),
        _ready(results),
        _rss("lr", results),
        _rss("rf", results),
    ]  # fmt: skip


def _verdict(ratio: float | None, ok: Callable[[float], bool]) -> bool | None:
    return None if ratio is None else ok(ratio)


def _pair(
    results: RunResults, ours: str, theirs: str, cell: Cell
) -> tuple[LoadFigures | None, LoadFigures | None]:
    return results.figures(ours, cell), results.figures(theirs, cell)


def _rate(
    name: str, results: RunResults, ours: str, theirs: str, cell: Cell, goal: float
) -> Target:
    mine, base = _pair(results, ours, theirs, cell)
    ratio = mine.req_per_s / base.req_per_s if mine and base and base.req_per_s else None
    detail = f"{mine.req_per_s:,.0f} vs {base.req_per_s:,.0f} req/s" if mine and base else "not run"
    efficiency = _cpu_ratio(results, ours, theirs, cell)
    if efficiency is not None:
        detail += f"; per server CPU ms: {efficiency:.2f}x"
    return Target(name, f">= {goal:.2f}x", ratio, _verdict(ratio, lambda r: r >= goal), detail)


def _cost(name: str, results: RunResults, ours: str, theirs: str, cell: Cell) -> Target:
    """A measured price with no goal in the issue: the ratio is reported, never judged."""
    target = _rate(name, results, ours, theirs, cell, 0.0)
    return Target(name, "reported", target.measured, None, target.detail)


def _cpu_ratio(results: RunResults, ours: str, theirs: str, cell: Cell) -> float | None:
    """Their server CPU per request over ours: the throughput ratio a machine with no other
    load would show for CPU-bound cells."""
    mine, base = results.cell_result(ours, cell), results.cell_result(theirs, cell)
    mine_ms = mine.cpu_ms_per_request if mine else None
    base_ms = base.cpu_ms_per_request if base else None
    return base_ms / mine_ms if mine_ms and base_ms else None


def _p99(name: str, results: RunResults, ours: str, theirs: str, cell: Cell) -> Target:
    mine, base = _pair(results, ours, theirs, cell)
    ratio = mine.p99_ms / base.p99_ms if mine and base and base.p99_ms else None
    detail = f"{mine.p99_ms:.1f} vs {base.p99_ms:.1f} ms" if mine and base else "not run"
    return Target(name, "< 1.00x", ratio, _verdict(ratio, lambda r: r < 1.0), detail)


def _physical(name: str, results: RunResults, ours: str) -> Target:
    mine = results.figures(ours, RF_1000ROW_C4)
    limit = results.in_process.get("rf")
    ratio = mine.rows_per_s / limit.proba_rows_per_s if mine and limit else None
    detail = (
        f"{mine.rows_per_s:,.0f} vs {limit.proba_rows_per_s:,.0f} rows/s; decoding and "
        f"validation alone cap it at "
        f"{limit.decode_check_proba_rows_per_s / limit.proba_rows_per_s:.2f}x"
        if mine and limit
        else "not run"
    )
    return Target(name, ">= 0.70x", ratio, _verdict(ratio, lambda r: r >= 0.7), detail)


def _ready(results: RunResults) -> Target:
    times = [
        (s.variant, s.model, s.ready_s)
        for s in results.servers
        if s.variant.startswith("mlkeel") and s.ready_s is not None
    ]
    worst = max((t for _, _, t in times), default=None)
    detail = ", ".join(f"{v}/{m} {t:.2f}s" for v, m, t in times) or "not run"
    return Target(
        "start to ready (registry-loaded model), worst mlkeel server",
        f"<= {READY_LIMIT_S:.1f} s",
        worst,
        _verdict(worst, lambda t: t <= READY_LIMIT_S),
        detail,
    )


def _rss(model: str, results: RunResults) -> Target:
    plain = results.server("plain", model)
    ours = [
        s
        for s in results.servers
        if s.model == model and s.variant.startswith("mlkeel") and s.peak_rss_bytes
    ]
    worst = max(ours, key=lambda s: s.peak_rss_bytes or 0, default=None)
    ratio = None
    detail = "not run"
    if plain and plain.peak_rss_bytes and worst and worst.peak_rss_bytes:
        ratio = worst.peak_rss_bytes / plain.peak_rss_bytes
        detail = f"{worst.variant} {worst.peak_rss_mib:.0f} vs plain {plain.peak_rss_mib:.0f} MiB"
    return Target(
        f"peak RSS {model}, worst mlkeel server vs plain",
        f"<= {RSS_LIMIT:.2f}x",
        ratio,
        _verdict(ratio, lambda r: r <= RSS_LIMIT),
        detail,
    )
