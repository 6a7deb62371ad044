"""The soak's verdicts (the issue's bars: RSS growth under 10%, zero errors; plus every answer
logged), its table, and its JSON document."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from soak_kit.samples import Sample

RSS_GROWTH_LIMIT_PCT = 10.0
RATE_TOLERANCE = 0.02  # achieved within 2% of the target counts as holding the rate


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None  # None: informational
    detail: str


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def header() -> str:
    return (
        f"{'t s':>6} {'rss MB':>8} {'anon MB':>8} {'answered':>9} {'err':>4} "
        f"{'req/s':>7} {'target':>7} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'p99c ms':>8} {'max ms':>7} {'late':>5} "
        f"{'queue':>6} {'dropped':>7} {'srv cpu':>7} {'cli cpu':>7} {'load':>5}"
    )


def row(s: Sample) -> str:
    return (
        f"{s.t_s:>6.0f} {s.rss_mb:>8.1f} {s.anon_mb:>8.1f} {s.ok:>9d} {s.errors:>4d} "
        f"{s.achieved_rps:>7.1f} "
        f"{s.target_rps:>7.1f} {fmt(s.p50_ms):>7} {fmt(s.p99_ms):>7} "
        f"{fmt(s.p99_corrected_ms):>8} {fmt(s.max_ms):>7} {s.late_sends:>5d} "
        f"{fmt(s.queue_depth, '.0f'):>6} {fmt(s.dropped, '.0f'):>7} "
        f"{fmt(s.server_cpu_pct, '.0f'):>6}% {fmt(s.client_cpu_pct, '.0f'):>6}% "
        f"{s.load_average:>5.1f}"
    )


def slope_mb_per_min(samples: Sequence[Sample], values: Sequence[float]) -> float | None:
    """Least-squares slope over the run: a leak shows as a steady positive slope."""
    if len(samples) < 3:
        return None
    t = np.array([s.t_s for s in samples]) / 60.0
    return float(np.polyfit(t, np.asarray(values), 1)[0])


def p99_creep(samples: Sequence[Sample]) -> tuple[float, float] | None:
    """Median p99 of the first and of the last third of the intervals that have latencies."""
    p99s = [s.p99_ms for s in samples if s.p99_ms is not None]
    if len(p99s) < 3:
        return None
    third = max(1, len(p99s) // 3)
    return statistics.median(p99s[:third]), statistics.median(p99s[-third:])


def checks(run: dict[str, Any], samples: Sequence[Sample]) -> list[Check]:
    start, end = samples[0].rss_mb, samples[-1].rss_mb
    growth = (end - start) / start * 100.0
    slope = slope_mb_per_min(samples, [s.rss_mb for s in samples])
    anon_start, anon_end = samples[0].anon_mb, samples[-1].anon_mb
    anon_growth = (anon_end - anon_start) / anon_start * 100.0
    anon_slope = slope_mb_per_min(samples, [s.anon_mb for s in samples])
    soak_errors = sum(s.errors for s in samples)
    target, achieved = run["target_rps"], run["soak_achieved_rps"]
    logged, answered = run["records_logged"], run["answered_total"]
    creep = p99_creep(samples)
    dropped = samples[-1].dropped
    graceful = run["server_stopped_gracefully"]
    found = [
        Check(
            "RSS growth < 10%",
            growth < RSS_GROWTH_LIMIT_PCT,
            f"{start:.1f} MB -> {end:.1f} MB ({growth:+.1f}%); trend {fmt(slope, '+.2f')} MB/min",
        ),
        Check(
            "anonymous RSS growth < 10%",
            anon_growth < RSS_GROWTH_LIMIT_PCT,
            f"{anon_start:.1f} MB -> {anon_end:.1f} MB ({anon_growth:+.1f}%); "
            f"trend {fmt(anon_slope, '+.2f')} MB/min",
        ),
        Check(
            "errors = 0 (soak)",
            soak_errors == 0,
            f"{soak_errors} ({run['soak_error_kinds'] or 'none'}); "
            f"max-finding phase: {run['max_errors']}",
        ),
        Check(
            "rate held",
            abs(achieved - target) <= RATE_TOLERANCE * target,
            f"achieved {achieved:.1f} req/s vs target {target:.1f} "
            f"({(achieved / target - 1) * 100:+.2f}%); {run['late_sends']} sends > 10 ms late, "
            f"{run['unsent']} due slots unsent at the end",
        ),
        Check(
            "every answer logged",
            logged is not None and logged == answered and bool(graceful),
            f"{logged} records in mlkeel_predictions vs {answered} answered "
            f"(server stopped {'gracefully' if graceful else 'NOT gracefully'}, "
            f"exit {run['server_exit_code']}, {run['spool_bytes_left']} spool bytes left)",
        ),
        Check("prediction log dropped = 0", dropped == 0, f"dropped counter {fmt(dropped, '.0f')}"),
    ]
    if creep is not None:
        first, last = creep
        found.append(
            Check(
                "p99 creep (info)",
                None,
                f"median p99 first third {first:.1f} ms, last third {last:.1f} ms "
                f"(x{last / first:.2f})",
            )
        )
    return found


def print_checks(found: Sequence[Check]) -> None:
    for check in found:
        verdict = {True: "PASS", False: "FAIL", None: "info"}[check.passed]
        print(f"  {verdict:4}  {check.name:28} {check.detail}")


def write_json(
    path: Path, run: dict[str, Any], samples: Sequence[Sample], found: list[Check]
) -> Path:
    document = {
        **run,
        "samples": [s.to_dict() for s in samples],
        "p99_ms_series": [s.p99_ms for s in samples],
        "rss_mb_series": [round(s.rss_mb, 2) for s in samples],
        "anon_mb_series": [round(s.anon_mb, 2) for s in samples],
        "checks": [asdict(check) for check in found],
    }
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(document, indent=1))
    return path
