"""Variant choice: a stable hash, the routing key's precedence, the in-process failure window."""

from __future__ import annotations

import numpy as np

from mlkeel.serving.routing import FailureWindow, bucket, routing_key
from mlkeel.serving.validation import Rows
from mlkeel.settings import RolloutConfig


def rows(values: list[float]) -> Rows:
    return Rows(len(values), [values], None, None, {})


def test_bucket_is_stable_and_known() -> None:
    # Pinned: changing the hash would move sticky keys to another variant across a deploy.
    assert [round(bucket(k), 6) for k in ("user-1", "a", "b")] == [60.419241, 25.379361, 51.737612]
    assert 0 <= bucket("") < 100


def test_buckets_are_uniform_enough_for_a_two_point_share() -> None:
    points = np.array([bucket(f"key-{i}") for i in range(20_000)])
    for percent in (1, 5, 10, 50):
        assert abs((points < percent).mean() * 100 - percent) < 1.0


def test_routing_key_prefers_the_header_then_the_feature_then_the_request_id() -> None:
    by_feature = RolloutConfig(routing_feature="customer")
    headers = {"X-Routing-Key": "alice"}

    assert routing_key(RolloutConfig(), headers, rows([7.0]), ["customer"], "r1") == "alice"
    assert routing_key(by_feature, {}, rows([7.0]), ["customer"], "r1") == "7.0"
    assert routing_key(by_feature, {}, rows([]), ["customer"], "r1") == "r1"
    assert routing_key(RolloutConfig(), {}, rows([7.0]), ["customer"], "r1") == "r1"


def test_failure_window_trips_once_failures_exceed_the_rate_over_the_window() -> None:
    window = FailureWindow(size=100, max_rate=0.02)
    outcomes = [window.record(failed=i % 20 == 0) for i in range(100)]  # 5 % failing

    assert outcomes.count(True) == 1
    assert window.tripped
    assert "3 of its last" in (window.reason or "")
    assert window.record(failed=True) is False  # tripped once; stays tripped


def test_failure_window_tolerates_failures_at_the_limit() -> None:
    window = FailureWindow(size=100, max_rate=0.02)
    for i in range(1000):
        window.record(failed=i % 50 == 0)  # 2 %: exactly the limit, never over it

    assert not window.tripped
