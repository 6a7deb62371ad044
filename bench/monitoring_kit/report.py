"""Plain-text tables of a run and the issue's targets with PASS/FAIL."""

from __future__ import annotations

from dataclasses import dataclass

from drift_data import CATEGORICAL, DRIFTED, NUMERIC

from monitoring_kit.figures import MIB, Aggregation, Baseline, JobPoint

ORDER = [*NUMERIC, *CATEGORICAL]
TIME_FACTOR = 50  # the daily job takes at most 1/50 of Evidently's time
MEMORY_FACTOR = 5  # and 1/5 of its peak memory
FLAT_TIME = 2.0  # "flat": from the smallest to the largest size, time grows < 2x
FLAT_MEMORY = 1.2  # and peak memory < 1.2x, while rows grow 100x
AGGREGATION_LIMIT = 0.10


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    goal: str
    passed: bool | None  # None: not measured


def print_main(point: JobPoint, sql: Baseline, evidently: Baseline) -> None:
    print(f"\n== Daily drift job vs baselines at {point.rows:,} logged rows")
    print(f"  {'':34s} {'compute s':>10s} {'process s':>10s} {'peak RSS MiB':>13s}  notes")
    answer = point.answer
    print(
        f"  {'mlkeel daily job (summaries)':34s} {point.job_s:10.3f} {point.wall_s:10.2f} "
        f"{point.peak_mib:13.0f}  {answer['summary_rows']} hourly rows; read "
        f"{answer['read_s'] * 1e3:.0f} ms, merge {answer['merge_s'] * 1e3:.0f} ms, compare "
        f"{answer['compare_s'] * 1e3:.0f} ms (median of {len(point.runs)} runs)"
    )
    for baseline, note in (
        (sql, "json_extract count/avg/min/max + category counts; no histogram, no verdict"),
        (evidently, "DataDriftPreset, DataFrames in memory (Parquet load not counted)"),
    ):
        if baseline.run is None:
            print(f"  {baseline.name:34s} not run: {baseline.error}")
            continue
        load_peak = baseline.run.answer.get("load_peak_rss_bytes")
        if load_peak:
            note += f"; peak while loading Parquet {load_peak / MIB:.0f} MiB (count restarted)"
        print(
            f"  {baseline.name:34s} {baseline.job_s:10.3f} {baseline.run.wall_s:10.2f} "
            f"{baseline.peak_mib:13.0f}  {note}"
        )
    print("  compute s: inside the process, from its data source to the answer (imports and")
    print("  data loading excluded); process s: the whole child process as the parent timed it.")


def print_curve(points: list[JobPoint]) -> None:
    print("\n== The daily job's cost against traffic (each a median of fresh-process runs)")
    print(
        f"  {'rows':>12s} {'summaries from':24s} {'fill s':>8s} {'hourly rows':>11s} "
        f"{'compute s':>10s} {'process s':>10s} {'peak MiB':>9s}  verdict"
    )
    for point in points:
        flagged = set(point.answer["flagged"])
        verdict = "exact" if flagged == DRIFTED else _diff(flagged)
        print(
            f"  {point.rows:>12,} {point.source:24s} {point.fill_s:8.1f} "
            f"{point.answer['summary_rows']:>11d} {point.job_s:10.3f} {point.wall_s:10.2f} "
            f"{point.peak_mib:9.0f}  {verdict}"
        )


def print_verdicts(point: JobPoint, evidently: Baseline) -> None:
    mlkeel = set(point.answer["flagged"])
    others = None if evidently.run is None else set(evidently.run.answer["flagged"])
    print(f"\n== Verdicts at {point.rows:,} rows (truth: {len(DRIFTED)} drifted of 25)")
    print(f"  {'feature':8s} {'truth':>6s} {'mlkeel':>7s} {'score':>7s} {'evidently':>10s} "
          f"{'score':>7s}  evidently method")  # fmt: skip
    columns = {} if evidently.run is None else evidently.run.answer["columns"]
    for name in ORDER:
        theirs = columns.get(name)
        print(
            f"  {name:8s} {_mark(name in DRIFTED):>6s} {_mark(name in mlkeel):>7s} "
            f"{point.answer['scores'][name]:7.3f} "
            f"{'-' if others is None else _mark(name in others):>10s} "
            f"{'' if theirs is None else format(theirs['score'], '7.3f'):>7s}  "
            f"{'' if theirs is None else theirs['method']}"
        )
    print(f"  mlkeel: {_diff(mlkeel)}; prediction drift: {point.answer['prediction_drifted']}")
    if others is not None:
        print(f"  evidently: {_diff(others)}")


def print_aggregation(aggregation: Aggregation) -> None:
    cost = aggregation.cost
    print(f"\n== Writer aggregation, {cost.batches:,} batches of <= 1,000 records")
    print(
        f"  fold {aggregation.per_batch_us(cost.fold_s):,.0f} µs/batch "
        f"({cost.rows / cost.fold_s:,.0f} records/s); insert (repository, SQLite WAL) "
        f"{aggregation.per_batch_us(cost.insert_s):,.0f} µs/batch "
        f"({cost.rows / cost.insert_s:,.0f} records/s); save (to_payload + upsert) "
        f"{cost.save_s:.2f} s in all"
    )
    print(
        f"  fold / insert = {aggregation.fold_ratio:.1%}; (fold + save) / insert = "
        f"{aggregation.fold_and_save_ratio:.1%}"
    )


def targets(
    point: JobPoint, curve: list[JobPoint], evidently: Baseline, aggregation: Aggregation
) -> list[Target]:
    found = [*_against_evidently(point, evidently), *_flat(curve)]
    found.append(
        Target(
            "writer aggregation cost",
            f"fold/insert {aggregation.fold_ratio:.1%}",
            f"<= {AGGREGATION_LIMIT:.0%} of insert time",
            aggregation.fold_ratio <= AGGREGATION_LIMIT,
        )
    )
    return found


def print_targets(found: list[Target]) -> None:
    print("\n== Targets (issue 5, Performance)")
    for target in found:
        status = "n/a" if target.passed is None else ("PASS" if target.passed else "FAIL")
        print(f"  {status:4s}  {target.name:34s} {target.measured:38s} target {target.goal}")


def _against_evidently(point: JobPoint, evidently: Baseline) -> list[Target]:
    mlkeel = set(point.answer["flagged"])
    exact = Target("mlkeel verdicts vs truth", _diff(mlkeel), "exactly the 9 drifted",
                   mlkeel == DRIFTED)  # fmt: skip
    if evidently.run is None or evidently.job_s is None or evidently.peak_mib is None:
        return [
            Target("job time vs Evidently", f"{point.job_s:.3f} s", "<= 1/50", None),
            Target("job peak RSS vs Evidently", f"{point.peak_mib:.0f} MiB", "<= 1/5", None),
            exact,
        ]
    others = set(evidently.run.answer["flagged"])
    share = evidently.job_s / point.job_s
    wrong_mlkeel, wrong_theirs = len(mlkeel ^ DRIFTED), len(others ^ DRIFTED)
    return [
        Target(
            "job time vs Evidently",
            f"{point.job_s:.3f} vs {evidently.job_s:.1f} s (1/{share:,.0f})",
            f"<= 1/{TIME_FACTOR}",
            point.job_s * TIME_FACTOR <= evidently.job_s,
        ),
        Target(
            "job peak RSS vs Evidently",
            f"{point.peak_mib:.0f} vs {evidently.peak_mib:.0f} MiB "
            f"(1/{evidently.peak_mib / point.peak_mib:.1f})",
            f"<= 1/{MEMORY_FACTOR}",
            point.peak_mib * MEMORY_FACTOR <= evidently.peak_mib,
        ),
        exact,
        Target(
            "verdicts same or better than Evid.",
            f"wrong: mlkeel {wrong_mlkeel}, evidently {wrong_theirs}",
            "mlkeel wrong <= evidently wrong",
            wrong_mlkeel <= wrong_theirs,
        ),
    ]


def _flat(curve: list[JobPoint]) -> list[Target]:
    if len(curve) < 2:
        return [Target("flat from smallest to largest", "one size only", "two sizes", None)]
    small, large = curve[0], curve[-1]
    growth = f"rows x{large.rows / small.rows:,.0f}"
    time_ratio, memory_ratio = large.job_s / small.job_s, large.peak_mib / small.peak_mib
    return [
        Target(
            "job time flat over traffic",
            f"x{time_ratio:.2f} ({growth})",
            f"< x{FLAT_TIME:g} from {small.rows:,} to {large.rows:,}",
            time_ratio < FLAT_TIME,
        ),
        Target(
            "job peak RSS flat over traffic",
            f"x{memory_ratio:.2f} ({growth})",
            f"< x{FLAT_MEMORY:g} from {small.rows:,} to {large.rows:,}",
            memory_ratio < FLAT_MEMORY,
        ),
    ]


def truth() -> list[str]:
    return [name for name in ORDER if name in DRIFTED]


def _diff(flagged: set[str]) -> str:
    missed = sorted(DRIFTED - flagged, key=ORDER.index)
    extra = sorted(flagged - DRIFTED, key=lambda name: ORDER.index(name) if name in ORDER else 99)
    if not missed and not extra:
        return "exactly the drifted features"
    parts = [
        f"missed {', '.join(missed)}" if missed else "",
        f"false {', '.join(extra)}" if extra else "",
    ]
    return "; ".join(part for part in parts if part)


def _mark(value: bool) -> str:
    return "yes" if value else "."
