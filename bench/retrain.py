"""Retraining overhead: what ``mlkeel retrain`` costs beyond the user's ``train()``, side by
side with a plain ``mlkeel train`` (train + register), on the breast_cancer example.

    uv run python bench/retrain.py [--rounds 5] [--scales 1,20] [--cli-rounds 3]

Overhead = wall time − the user's train() time. In-process rounds (imports paid once, as in
a resident scheduler) give the medians and a per-step breakdown from the audit trail; CLI
rounds (fresh processes, imports included) are what a cron job sees. A scale of 20 repeats
the 569 rows 20 times (11,380 rows) to show which steps grow with the data.
Writes bench/results/retrain-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
MLKEEL = Path(sys.executable).with_name("mlkeel")
STEPS = ("data", "train", "evaluate", "register", "gate", "deploy")


def project(parent: Path, scale: int) -> Path:
    """A breast_cancer project whose data is repeated `scale` times, with a champion."""
    import pandas as pd

    from mlkeel.scaffold import init_project

    root = parent / f"scale{scale}"
    init_project(root, "breast_cancer")
    data = root / "data" / "breast_cancer.csv"
    frame = pd.read_csv(data)
    pd.concat([frame] * scale, ignore_index=True).to_csv(data, index=False)
    return root


def in_process(root: Path, rounds: int) -> dict[str, Any]:
    from mlkeel.cli.compose import registry_for
    from mlkeel.db import make_engine, upgrade
    from mlkeel.history import HistoryRepository
    from mlkeel.retraining.deploy import promote
    from mlkeel.retraining.pipeline import retrain
    from mlkeel.settings import load_settings
    from mlkeel.training import to_candidate, train_model

    settings = load_settings(root)
    registry = registry_for(settings)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    history = HistoryRepository(engine)
    first = registry.register(to_candidate(train_model(settings, settings.model()))).version
    promote(settings, registry, history, "breast_cancer", first, actor="bench")

    plain: list[float] = []
    pipeline: list[float] = []
    steps: dict[str, list[float]] = {name: [] for name in STEPS}
    user: list[float] = []
    for index in range(rounds):
        started = time.perf_counter()
        trained = train_model(settings, settings.model())
        registry.register(to_candidate(trained))
        plain.append(time.perf_counter() - started - trained.train_seconds)

        started = time.perf_counter()
        result = retrain(settings, registry, history, actor="bench")
        total = time.perf_counter() - started
        info = registry.version("breast_cancer", result.version or 0)
        train_seconds = float(info.lineage["train_seconds"])
        pipeline.append(total - train_seconds)
        user.append(train_seconds)
        for step in result.run.steps:
            steps[step.name].append(step.seconds)
        print(
            f"  round {index + 1}: plain train overhead {plain[-1]:.3f} s, retrain overhead "
            f"{pipeline[-1]:.3f} s (user train() {train_seconds:.3f} s, {result.outcome})"
        )
    engine.dispose()
    return {
        "plain_train_overhead_s": statistics.median(plain),
        "retrain_overhead_s": statistics.median(pipeline),
        "user_train_s": statistics.median(user),
        "steps_s": {name: statistics.median(found) for name, found in steps.items() if found},
    }


def cli(root: Path, rounds: int) -> dict[str, float]:
    def timed(*args: str) -> float:
        started = time.perf_counter()
        subprocess.run([str(MLKEEL), *args, "-p", str(root)], check=True, capture_output=True)  # noqa: S603
        return time.perf_counter() - started

    train = [timed("train") for _ in range(rounds)]
    retrain = [timed("retrain", "--by", "bench") for _ in range(rounds)]
    return {"train_wall_s": statistics.median(train), "retrain_wall_s": statistics.median(retrain)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cli-rounds", type=int, default=3)
    parser.add_argument("--scales", default="1,20")
    options = parser.parse_args()
    report: dict[str, Any] = {"rounds": options.rounds, "cli_rounds": options.cli_rounds}
    scratch = Path(tempfile.mkdtemp(prefix="mlkeel-bench-retrain-"))
    try:
        for scale in (int(s) for s in options.scales.split(",")):
            root = project(scratch, scale)
            print(f"scale {scale} ({569 * scale} rows), in process:")
            figures = in_process(root, options.rounds)
            if options.cli_rounds:
                print(f"scale {scale}, CLI processes ({options.cli_rounds} rounds each)…")
                figures |= cli(root, options.cli_rounds)
            report[f"scale_{scale}"] = figures
            steps = ", ".join(f"{k} {v:.3f}" for k, v in figures["steps_s"].items())
            print(
                f"scale {scale}: median overhead beyond train(): plain train "
                f"{figures['plain_train_overhead_s']:.3f} s, retrain "
                f"{figures['retrain_overhead_s']:.3f} s (+"
                f"{figures['retrain_overhead_s'] - figures['plain_train_overhead_s']:.3f} s); "
                f"user train() {figures['user_train_s']:.3f} s\n  steps (s): {steps}"
            )
            if "train_wall_s" in figures:
                print(
                    f"  CLI wall: mlkeel train {figures['train_wall_s']:.2f} s, "
                    f"mlkeel retrain {figures['retrain_wall_s']:.2f} s"
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"retrain-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
