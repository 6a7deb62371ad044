"""Plain-text tables of a run: per cell, per server, the in-process limits, the targets."""

from __future__ import annotations

from collections.abc import Sequence

from serving_kit.results import Cell, RunResults
from serving_kit.targets import Target

BASELINE = "plain"
FOREIGN_LIMIT_PCT = 15.0


def print_cells(results: RunResults, cells: Sequence[Cell]) -> None:
    print("\nPer cell; srv CPU: the server's process tree and other: processes outside the")
    print("benchmark, each in % of one core (2 cores in all) during the measured load.")
    for cell in cells:
        rows = [(s.variant, r) for s in results.servers for r in s.cells if r.cell == cell]
        if not rows:
            continue
        base = results.figures(BASELINE, cell)
        print(f"\n== {cell.key}  ({cell.rows} row(s)/request, {cell.concurrency} connection(s))")
        print(
            f"  {'server':18s} {'req/s':>9s} {'rows/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} "
            f"{'errors':>7s} {'x plain':>8s} {'srv CPU':>8s} {'other':>6s}"
        )
        for variant, result in rows:
            f = result.figures
            if f is None:
                print(f"  {variant:18s} failed: {result.error}")
                continue
            ratio = f"{f.req_per_s / base.req_per_s:7.2f}x" if base and base.req_per_s else "-"
            load = (
                f"{result.cpu.server_pct:7.0f}% {result.cpu.foreign_pct:5.0f}%"
                if result.cpu
                else ""
            )
            print(
                f"  {variant:18s} {f.req_per_s:9,.0f} {f.rows_per_s:10,.0f} {f.p50_ms:8.1f} "
                f"{f.p99_ms:8.1f} {f.errors:7d} {ratio:>8s} {load}"
            )


def print_foreign_load(results: RunResults) -> None:
    """Warn about cells measured while processes outside the benchmark used the CPU."""
    noisy = [
        f"{s.variant} {r.cell.key} ({r.cpu.foreign_pct:.0f}%)"
        for s in results.servers
        for r in s.cells
        if r.cpu and r.cpu.foreign_pct > FOREIGN_LIMIT_PCT
    ]
    if noisy:
        print(
            f"\nWARNING: {len(noisy)} cell(s) ran while other processes used more than "
            f"{FOREIGN_LIMIT_PCT:.0f}% of a core; their figures are low: " + "; ".join(noisy)
        )


def print_servers(results: RunResults) -> None:
    print("\n== servers: start to ready (spawn until the readiness endpoint answers 200), ")
    print("   peak RSS (sum over the process tree, sampled every 0.25 s), prediction-log rows")
    print(f"  {'server':18s} {'model':5s} {'ready s':>8s} {'peak MiB':>9s} {'log rows':>9s}")
    for s in results.servers:
        ready = f"{s.ready_s:8.2f}" if s.ready_s is not None else f"{'-':>8s}"
        rss = f"{s.peak_rss_mib:9.0f}" if s.peak_rss_mib is not None else f"{'-':>9s}"
        logged = f"{s.log_rows:9,d}" if s.log_rows is not None else f"{'-':>9s}"
        note = f"  FAILED: {s.error.splitlines()[0]}" if s.error else ""
        print(f"  {s.variant:18s} {s.model:5s} {ready} {rss} {logged}{note}")


def print_in_process(results: RunResults) -> None:
    print("\n== in process, no HTTP (the physical limit)")
    for p in results.in_process.values():
        print(
            f"  {p.model}: predict_proba {p.proba_rows_per_s:,.0f} rows/s in 1,000-row batches; "
            f"predict + predict_proba {p.predict_and_proba_rows_per_s:,.0f} rows/s; "
            f"one row {p.single_row_proba_ms:.2f} ms"
        )


def print_targets(targets: Sequence[Target], log_note: str) -> None:
    print(f"\n== targets (issue 3){log_note}")
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t.passed]
        measured = f"{t.measured:.2f}" if t.measured is not None else "-"
        print(f"  {verdict}  {t.name:70s} {measured:>6s} (goal {t.goal}; {t.detail})")


def print_versions(versions: dict[str, str]) -> None:
    print("\n== versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
