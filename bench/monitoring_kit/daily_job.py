"""The daily monitoring job, run alone in a fresh process: summaries → merge → compare.

    python bench/monitoring_kit/daily_job.py --db URL --profile PROFILE.json
                                             --since EPOCH --until EPOCH [--with-mlflow]

What ``mlkeel.monitoring.pipeline.monitor`` does for drift, with the public pieces and
without the MLflow registry: read the window's hourly rows (``SummaryStore.window``), rebuild
and merge them per version (``Summary.from_payload`` + ``merge``, as ``_merged_summaries``),
and judge the merged summary against the baseline profile (``compare``). The profile comes
from a JSON file instead of the registry's artifact. Left out: labelled performance (no
labels here), alert rules, the stored report; each is O(features), not O(rows). The
``scipy.stats`` import that ``compare`` makes lazily is done with the imports, so ``job_s`` is
the work; the process's peak RSS includes every import either way.
``--with-mlflow`` also imports mlflow first, as the real ``mlkeel monitor`` process does.
Prints one JSON object: timings, rows, the flagged features, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from peak import peak_rss_bytes

STARTED = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--profile", required=True, type=Path)
    parser.add_argument("--model", default="bench")
    parser.add_argument("--since", required=True, type=float)
    parser.add_argument("--until", required=True, type=float)
    parser.add_argument("--with-mlflow", action="store_true")
    args = parser.parse_args()
    if args.with_mlflow:
        import mlflow  # noqa: F401  # the real job's process has the registry client loaded
    import scipy.stats  # noqa: F401  # compare imports it lazily (~0.4 s): counted as import

    import mlkeel.monitoring.pipeline  # noqa: F401  # what the real job imports

    imported = time.perf_counter()
    result = run_job(args.db, args.profile, args.model, args.since, args.until)
    result["import_s"] = imported - STARTED
    result["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(result))


def run_job(url: str, profile_path: Path, model: str, since: float, until: float) -> dict[str, Any]:
    from mlkeel.db import make_engine
    from mlkeel.monitoring.drift import compare
    from mlkeel.monitoring.profile import BaselineProfile
    from mlkeel.monitoring.summaries import Summary
    from mlkeel.monitoring.summary_store import SummaryStore
    from mlkeel.settings import DriftConfig

    started = time.perf_counter()
    engine = make_engine(url)
    stored = list(SummaryStore(engine).window(model, since, until, "champion"))
    read = time.perf_counter()
    merged: dict[int, Summary] = {}
    for (_, version, _, _), payload in stored:
        summary = Summary.from_payload(payload)
        if version in merged:
            merged[version].merge(summary)
        else:
            merged[version] = summary
    merged_at = time.perf_counter()
    profile = BaselineProfile.from_dict(json.loads(profile_path.read_text()))
    version, summary = max(merged.items(), key=lambda item: item[1].rows)
    drift = compare(profile, summary, DriftConfig())
    done = time.perf_counter()
    engine.dispose()
    return {
        "job_s": done - started,
        "read_s": read - started,
        "merge_s": merged_at - read,
        "compare_s": done - merged_at,
        "summary_rows": len(stored),
        "version": version,
        "rows": summary.rows,
        "flagged": sorted(v.name for v in drift.features if v.drifted),
        "prediction_drifted": bool(drift.prediction and drift.prediction.drifted),
        "drift_share": drift.drift_share,
        "scores": {v.name: v.score for v in drift.features},
    }


if __name__ == "__main__":
    main()
