"""Rollout benchmark (issue 7): what a shadow costs the champion, how exact the canary share is.

    uv run python bench/rollout.py [--seconds 10] [--rounds 3] [--quick]

A temporary breast_cancer project (the scaffold's logistic regression) with two versions:
v1 the champion, v2 the shadow, then the canary. ``mlkeel serve`` runs as its own process
(prediction log on, the default SQLite), loaded by ``wrk`` (``--concurrency`` keep-alive
connections, 8 by default; single-row requests). Shadow off and shadow on alternate for
``--rounds`` rounds of ``--seconds`` each; the champion's p99 with the shadow is compared
with the p99 without (median over rounds); each phase starts once the server reports its
shadow (loading the shadow version is a one-off cost) and after a 2 s warm-up. Then a 10 %
canary gets 10,000 requests with distinct routing keys (8 client threads) and the measured
share is compared with 10 %, and 1,000 keys are re-sent to check that each lands on the same
variant. Target: shadow adds < 10 % to p99; share within +-2 points. Writes
bench/results/rollout-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from serving_kit.processes import Launch, free_port, running
from serving_kit.wrk import run_wrk, write_script

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODEL = "breast_cancer"
PREDICT = f"/v1/models/{MODEL}/predict"


def build(root: Path) -> tuple[Any, list[dict[str, Any]]]:
    from mlkeel.cli.compose import registry_for
    from mlkeel.db import make_engine, upgrade
    from mlkeel.history import HistoryRepository
    from mlkeel.rollout import Rollout
    from mlkeel.scaffold import init_project
    from mlkeel.settings import load_settings
    from mlkeel.training import to_candidate, train_model

    init_project(root, "breast_cancer")
    settings = load_settings(root, environ={})
    registry = registry_for(settings)
    trained = train_model(settings, settings.model(MODEL))
    first = registry.register(to_candidate(trained)).version
    registry.set_alias(MODEL, "champion", first)
    registry.register(to_candidate(trained))
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    frame = trained.dataset.frame.drop(columns=["target"])
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return Rollout(registry, HistoryRepository(engine)), rows


def wait_for_shadow(url: str, version: int | None, timeout: float = 60.0) -> None:
    """Return once the server reports `version` as its shadow (None: no shadow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/v1/models/{MODEL}").json().get("shadow_version") == version:
            return
        time.sleep(0.1)
    raise SystemExit(f"the server did not report shadow version {version} within {timeout:g} s")


def shadow_counts(url: str) -> tuple[float, float]:
    text = httpx.get(f"{url}/metrics").text
    done = sum(
        float(v)
        for v in re.findall(r'mlkeel_predictions_total\{[^}]*variant="shadow"[^}]*\} (\S+)', text)
    )
    dropped = sum(float(v) for v in re.findall(r"mlkeel_shadow_dropped_total\{[^}]*\} (\S+)", text))
    return done, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="wrk connections")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 s, 1 round")
    args = parser.parse_args()
    seconds, rounds = (2.0, 1) if args.quick else (args.seconds, args.rounds)

    with tempfile.TemporaryDirectory(prefix="mlkeel-rollout-bench-") as scratch:
        root = Path(scratch) / "project"
        rollout, rows = build(root)
        port = free_port()
        launch = Launch(
            argv=[str(Path(sys.executable).with_name("mlkeel")), "serve", "--project", str(root),
                  "--port", str(port)],
            env={"MLKEEL_SERVING__RELOAD_SECONDS": "0.5", "PATH": "/usr/bin:/bin"},
            cwd=root, port=port, ready_path="/ready", log_file=Path(scratch) / "server.log",
        )  # fmt: skip
        bodies = [json.dumps({"instances": [row]}).encode() for row in rows]
        script = write_script(Path(scratch), "predict", PREDICT, bodies)
        phases: list[dict[str, Any]] = []
        with running(launch, 120) as server:
            url = server.url
            run_wrk(url, script, concurrency=8, seconds=2, rows=1)  # warm-up
            for _ in range(rounds):
                for shadow in (False, True):
                    if shadow:
                        rollout.start_shadow(MODEL, 2, "benchmark")
                    # Loading the shadow version is a one-off start cost, not what a shadow adds
                    # to each request: measure once the server has it, after a warm-up.
                    wait_for_shadow(url, 2 if shadow else None)
                    run_wrk(url, script, concurrency=args.concurrency, seconds=2, rows=1)
                    before = shadow_counts(url)
                    figures = run_wrk(
                        url, script, concurrency=args.concurrency, seconds=seconds, rows=1
                    )
                    time.sleep(0.5)
                    after = shadow_counts(url)
                    if shadow:
                        rollout.abort(MODEL, "benchmark")
                    phases.append({
                        "shadow": shadow, **figures.to_dict(),
                        "shadow_predicted": after[0] - before[0],
                        "shadow_dropped": after[1] - before[1],
                    })  # fmt: skip
                    print(
                        f"shadow {'on ' if shadow else 'off'}: {figures.req_per_s:7.0f} req/s, "
                        f"p50 {figures.p50_ms:.2f} ms, p99 {figures.p99_ms:.2f} ms, "
                        f"errors {figures.errors}, shadow predicted "
                        f"{after[0] - before[0]:.0f}, dropped {after[1] - before[1]:.0f}"
                    )
            canary = canary_share(rollout, url, rows)

    off = statistics.median(p["p99_ms"] for p in phases if not p["shadow"])
    on = statistics.median(p["p99_ms"] for p in phases if p["shadow"])
    added = (on - off) / off * 100
    failed = sum(p["errors"] for p in phases if p["shadow"])
    summary = {
        "p99_ms_without_shadow": off,
        "p99_ms_with_shadow": on,
        "p99_added_percent": added,
        "failed_requests_with_shadow": failed,
        **canary,
    }
    print(
        f"\nchampion p99: {off:.2f} ms without shadow, {on:.2f} ms with: {added:+.1f}% "
        f"[{'PASS' if added < 10 else 'FAIL'} < 10%]; failed requests with shadow: {failed}"
    )
    print(f"canary share: {canary['canary_share_percent']:.2f}% of {canary['requests']} for 10% "
          f"[{'PASS' if abs(canary['canary_share_percent'] - 10) <= 2 else 'FAIL'} ±2 points]; "
          f"sticky: {canary['sticky']}; non-200: {canary['non_200']}")  # fmt: skip
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = RESULTS_DIR / f"rollout-{stamp}.json"
    out.write_text(json.dumps({"summary": summary, "phases": phases, "seconds": seconds,
                               "rounds": rounds}, indent=2))  # fmt: skip
    print(f"written to {out}")


def canary_share(rollout: Any, url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from mlkeel.settings import RolloutConfig

    rollout.start_canary(MODEL, 2, RolloutConfig(), percent=10, duration="1h")
    time.sleep(1.5)
    keys = [f"user-{i}" for i in range(10_000)]
    with httpx.Client(base_url=url, timeout=30) as client:

        def send(i: int) -> tuple[str, int]:
            response = client.post(
                PREDICT, json={"instances": [rows[i % len(rows)]]},
                headers={"X-Routing-Key": keys[i]},
            )  # fmt: skip
            return response.headers.get("X-Model-Variant", "?"), response.status_code

        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(send, range(len(keys))))
            again = list(pool.map(send, range(1000)))
    rollout.abort(MODEL, "benchmark")
    share = sum(variant == "canary" for variant, _ in first) / len(first) * 100
    return {
        "requests": len(first),
        "canary_share_percent": share,
        "sticky": all(a[0] == b[0] for a, b in zip(first[:1000], again, strict=True)),
        "non_200": sum(status != 200 for _, status in first + again),
    }


if __name__ == "__main__":
    main()
