"""Evidently's DataDriftPreset on Parquet files, run alone from its own environment.

    uv run --no-project --with "evidently==0.7.23" --with "pandas<3" --with pyarrow \
        python bench/monitoring_kit/evidently_run.py --reference REF.parquet \
        --current CURRENT_DIR

Reads the reference and the current sample (a directory of Parquet parts) into pandas
(object columns are categorical, numeric ones numerical), then restarts the peak-RSS count
(VmHWM), so the reported peak is the report's with the DataFrames and imports resident, not
the transient of Parquet decoding (reported apart, as ``load_peak_rss_bytes``). Runs
``Report([DataDriftPreset()])`` and reads each column's ``ValueDrift``: method, score and
threshold. A column drifts as Evidently decides it: a p-value at or under its threshold, a
distance at or over it. Prints one JSON object with the load and report times, the flagged
columns and the peaks. Imports nothing from mlkeel.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from peak import peak_rss_bytes, reset_peak, rss_bytes

STARTED = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, type=Path)
    parser.add_argument("--current", required=True, type=Path)
    args = parser.parse_args()

    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    imported = time.perf_counter()
    reference = pd.read_parquet(args.reference)
    current = pd.read_parquet(args.current)
    gc.collect()
    load_peak, resident, reset = peak_rss_bytes(), rss_bytes(), reset_peak()
    loaded = time.perf_counter()
    numeric = [str(c) for c in reference.columns if pd.api.types.is_numeric_dtype(reference[c])]
    categorical = [str(c) for c in reference.columns if str(c) not in numeric]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    columns = column_verdicts(snapshot.dict())
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": imported - STARTED,
                "load_s": loaded - imported,
                "job_s": done - loaded,
                "reference_rows": len(reference),
                "rows": len(current),
                "columns": columns,
                "flagged": sorted(name for name, v in columns.items() if v["drifted"]),
                "versions": {p: metadata.version(p) for p in ("evidently", "pandas", "numpy")},
                "peak_rss_bytes": peak_rss_bytes(),
                "peak_reset_after_load": reset,
                "load_peak_rss_bytes": load_peak,
                "rss_after_load_bytes": resident,
            }
        )
    )


def column_verdicts(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per column: method, score, threshold and Evidently's verdict, from its ValueDrift."""
    found: dict[str, dict[str, Any]] = {}
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if not str(config.get("type", "")).endswith(":ValueDrift"):
            continue
        method, threshold, score = config["method"], config["threshold"], metric["value"]
        p_value = "p_value" in method
        found[config["column"]] = {
            "method": method,
            "score": score,
            "threshold": threshold,
            "drifted": bool(score <= threshold if p_value else score >= threshold),
        }
    return found


if __name__ == "__main__":
    main()
