"""The canary analysis (mlkeel.rollout.analyse): seeded evidence, exact verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from mlkeel.rollout import CanaryState, Evidence, VariantStats, analyse, duration_seconds
from mlkeel.settings import RolloutConfig

CONFIG = RolloutConfig(min_requests=200, duration="30m")
STATE = CanaryState("m", 2, 1, 10.0, started=1000.0, until=1000.0 + 1800)


def evidence(canary: dict[str, Any] | None = None, divergence: float = 0.01,
             champion: dict[str, Any] | None = None) -> Evidence:  # fmt: skip
    base = {"version": 2, "requests": 500, "errors": 0, "latency_p95_ms": 10.0}
    return Evidence(
        1000.0,
        3000.0,
        VariantStats(**{**base, "version": 1, "requests": 4500, **(champion or {})}),
        VariantStats(**{**base, **(canary or {})}),
        divergence,
        "classification",
    )


def test_no_verdict_before_the_minimum_sample() -> None:
    verdict = analyse(STATE, evidence({"requests": 150, "errors": 40}), CONFIG, now=5000)

    assert verdict.decision == "wait"
    assert "190 canary requests so far" in verdict.reasons[0]


def test_error_rate_over_the_limit_rolls_back_before_the_window_ends() -> None:
    verdict = analyse(STATE, evidence({"requests": 475, "errors": 25}), CONFIG, now=1100)

    assert verdict.decision == "rollback"
    assert verdict.reasons == ["error rate 5.00% (25 of 500) > 2.00%"]


def test_a_canary_much_slower_at_p95_rolls_back_at_once() -> None:
    verdict = analyse(STATE, evidence({"latency_p95_ms": 40.0}), CONFIG, now=1100)

    assert verdict.decision == "rollback"
    assert "4.00x the champion's 10.0 ms" in verdict.reasons[0]


def test_a_ratio_over_the_limit_within_the_floor_is_not_a_rollback() -> None:
    fast = evidence({"latency_p95_ms": 0.9}, champion={"latency_p95_ms": 0.3})

    assert analyse(STATE, fast, CONFIG, now=1100).decision == "wait"


def test_tripped_on_a_server_rolls_back_whatever_the_sample() -> None:
    state = CanaryState("m", 2, 1, 10.0, 1000.0, 2800.0, tripped="3 of its last 60 failed")

    verdict = analyse(state, evidence({"requests": 60}), CONFIG, now=1100)

    assert verdict.decision == "rollback"
    assert "3 of its last 60 failed" in verdict.reasons[0]


def test_healthy_canary_waits_for_its_window_then_promotes() -> None:
    waiting = analyse(STATE, evidence(), CONFIG, now=1000 + 600)
    promoted = analyse(STATE, evidence(), CONFIG, now=1000 + 1800)

    assert (waiting.decision, waiting.reasons) == ("wait", ["window ends in 20 min"])
    assert promoted.decision == "promote"
    assert promoted.to_dict()["evidence"]["canary"]["error_rate"] == 0.0


@pytest.mark.parametrize(
    ("canary", "divergence", "reason"),
    [
        ({}, 0.3, "prediction divergence 0.300"),
        ({"accuracy": 0.90, "labelled": 100}, 0.01, "accuracy 0.900 < champion's 0.950"),
    ],
)
def test_divergence_or_lost_accuracy_blocks_promotion_and_rolls_back_at_the_end(
    canary: dict[str, Any], divergence: float, reason: str
) -> None:
    champion = {"accuracy": 0.95, "labelled": 400}
    during = analyse(STATE, evidence(canary, divergence, champion), CONFIG, now=1100)
    after = analyse(STATE, evidence(canary, divergence, champion), CONFIG, now=2800)

    assert during.decision == "wait"
    assert reason in during.reasons[1]
    assert after.decision == "rollback"
    assert reason in after.reasons[0]


def test_unknown_error_counts_do_not_block_a_verdict() -> None:
    verdict = analyse(STATE, evidence({"errors": None}), CONFIG, now=2800)

    assert verdict.decision == "promote"


def test_durations() -> None:
    assert [duration_seconds(t) for t in ("45s", "30m", "2h", "1.5d")] == [45, 1800, 7200, 129600]
    with pytest.raises(Exception, match="number and a unit"):
        duration_seconds("soon")
