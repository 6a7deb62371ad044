"""Plain-text tables of a run: per cell, per server, the in-process limits, the targets."""

from __future__ import annotations

from collections.abc import Sequence

from serving_kit.results import Cell, CellResult, RunResults
from serving_kit.targets import Target

BASELINE = "plain"
FOREIGN_LIMIT_PCT = 15.0


def print_cells(results: RunResults, cells: Sequence[Cell]) -> None:
    print("\nPer cell. srv CPU: the server's process tree, in % of one core (2 cores in all);")
    print("ms/req: server CPU milliseconds per request (robust to a busy machine); other: CPU")
    print("used by processes outside this benchmark during the measured load, % of one core.")
    for cell in cells:
        rows = [(s.variant, r) for s in results.servers for r in s.cells if r.cell == cell]
        if not rows:
            continue
        base = results.figures(BASELINE, cell)
        print(f"\n== {cell.key}  ({cell.rows} row(s)/request, {cell.concurrency} connection(s))")
        print(
            f"  {'server':18s} {'req/s':>9s} {'rows/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} "
            f"{'errors':>7s} {'x plain':>8s} {'srv CPU':>8s} {'ms/req':>7s} {'other':>6s}"
        )
        for variant, result in rows:
            f = result.figures
            if f is None:
                print(f"  {variant:18s} failed: {result.error}")
                continue
            ratio = f"{f.req_per_s / base.req_per_s:7.2f}x" if base and base.req_per_s else "-"
            load = _cpu_columns(result)
            print(
                f"  {variant:18s} {f.req_per_s:9,.0f} {f.rows_per_s:10,.0f} {f.p50_ms:8.1f} "
                f"{f.p99_ms:8.1f} {f.errors:7d} {ratio:>8s} {load}"
            )


def _cpu_columns(result: CellResult) -> str:
    """Server CPU (% of a core), its CPU milliseconds per request, and foreign CPU."""
    cpu, per_request = result.cpu, result.cpu_ms_per_request
    if cpu is None or per_request is None:
        return ""
    return f"{cpu.server_pct:7.0f}% {per_request:7.2f} {cpu.foreign_pct:5.0f}%"


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
    print("\n== servers: start to ready (spawn until the readiness endpoint answers 200) and the")
    print("   CPU seconds that took, peak RSS (sum over the process tree, sampled every 0.25 s),")
    print("   rows the prediction log stored")
    print(
        f"  {'server':18s} {'model':5s} {'ready s':>8s} {'CPU s':>6s} {'peak MiB':>9s} "
        f"{'log rows':>9s}"
    )
    for s in results.servers:
        ready = _number(s.ready_s, 8, 2)
        cpu = _number(s.ready_cpu_s, 6, 2)
        rss = _number(s.peak_rss_mib, 9, 0)
        logged = f"{s.log_rows:9,d}" if s.log_rows is not None else f"{'-':>9s}"
        note = f"  FAILED: {s.error.splitlines()[0][:200]}" if s.error else ""
        print(f"  {s.variant:18s} {s.model:5s} {ready} {cpu} {rss} {logged}{note}")


def _number(value: float | None, width: int, decimals: int) -> str:
    return f"{value:{width}.{decimals}f}" if value is not None else f"{'-':>{width}s}"


def print_in_process(results: RunResults) -> None:
    print("\n== in process, no HTTP (the physical limit)")
    for p in results.in_process.values():
        print(
            f"  {p.model}: predict_proba {p.proba_rows_per_s:,.0f} rows/s in 1,000-row batches; "
            f"decoded from JSON, validated and predicted {p.decode_check_proba_rows_per_s:,.0f} "
            f"rows/s ({p.decode_check_proba_rows_per_s / p.proba_rows_per_s:.2f}x: the most a "
            "server can reach before HTTP and the log); "
            f"one row {p.single_row_proba_ms:.2f} ms"
        )


def print_targets(targets: Sequence[Target], log_note: str) -> None:
    print(f"\n== targets (issues 3 and 4){log_note}")
    for t in targets:
        verdict = {True: "PASS", False: "FAIL", None: "n/a "}[t.passed]
        if t.passed is None and t.measured is not None:
            verdict = "cost"
        measured = f"{t.measured:.2f}" if t.measured is not None else "-"
        print(f"  {verdict}  {t.name:70s} {measured:>6s} (goal {t.goal}; {t.detail})")


def print_versions(versions: dict[str, str]) -> None:
    print("\n== versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
