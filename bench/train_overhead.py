"""Training overhead: everything ``mlkeel train`` does besides the user's ``train()``,
against the naive MLflow path (import + store init + start_run + log_model + register),
side by side on the breast_cancer example, each run in a fresh process on a fresh store.

    uv run python bench/train_overhead.py [--rounds 5]

Prints each round and the medians; the goal is mlkeel ≤ 0.5× naive.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

NAIVE = textwrap.dedent(
    """
    import json, sys, time
    started = time.perf_counter()
    import mlflow, mlflow.sklearn
    import pandas as pd
    from sklearn.model_selection import train_test_split
    root = sys.argv[1]
    mlflow.set_tracking_uri(f"sqlite:///{root}/naive.db")
    mlflow.set_experiment("naive")
    frame = pd.read_csv(f"{root}/data/breast_cancer.csv")
    train, test = train_test_split(frame, test_size=0.2, random_state=42)
    sys.path.insert(0, root)
    from train import train as fit
    with mlflow.start_run():
        fit_started = time.perf_counter()
        model = fit(train, {"C": 1.0})
        fit_seconds = time.perf_counter() - fit_started
        mlflow.log_params({"C": 1.0})
        mlflow.log_metric("accuracy", model.score(test.drop(columns="target"), test["target"]))
        mlflow.sklearn.log_model(model, name="model", registered_model_name="breast_cancer")
    print(json.dumps({"total": time.perf_counter() - started, "train": fit_seconds}))
    """
)

MLKEEL = textwrap.dedent(
    """
    import json, sys, time
    started = time.perf_counter()
    from mlkeel.cli.compose import registry_for
    from mlkeel.settings import load_settings
    from mlkeel.training import to_candidate, train_model
    settings = load_settings(__import__("pathlib").Path(sys.argv[1]))
    trained = train_model(settings, settings.model())
    registry_for(settings).register(to_candidate(trained))
    print(json.dumps({"total": time.perf_counter() - started, "train": trained.train_seconds}))
    """
)


def run(script: str, root: Path) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", script, str(root)],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def fresh_project(parent: Path, index: int) -> Path:
    from mlkeel.scaffold import init_project

    root = parent / f"p{index}"
    init_project(root, "breast_cancer")
    return root


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    naive: list[float] = []
    ours: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(rounds):
            # Alternate the order so drift in machine load hits both sides alike.
            pair = [("naive", NAIVE), ("mlkeel", MLKEEL)]
            for name, script in pair if index % 2 == 0 else reversed(pair):
                figures = run(script, fresh_project(Path(scratch), 2 * index + len(name)))
                overhead = figures["total"] - figures["train"]
                (naive if name == "naive" else ours).append(overhead)
                print(
                    f"round {index + 1} {name:6s} overhead {overhead:6.2f} s "
                    f"(total {figures['total']:.2f} s, train {figures['train']:.3f} s)"
                )
    median_naive, median_ours = statistics.median(naive), statistics.median(ours)
    print(
        f"median overhead: naive {median_naive:.2f} s, mlkeel {median_ours:.2f} s, "
        f"ratio {median_ours / median_naive:.2f} (goal <= 0.50)"
    )


if __name__ == "__main__":
    main()
