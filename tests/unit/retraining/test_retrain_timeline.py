"""Served periods and rollback targets derived from deployment events."""

from __future__ import annotations

from mlkeel.history import DeploymentEvent, rollback_target, served_periods


def event(
    action: str, version: int, previous: int | None, ts: float, alias: str = "champion"
) -> DeploymentEvent:
    return DeploymentEvent("m", action, version, "alice", previous, alias=alias, ts=ts)  # type: ignore[arg-type]


def test_served_periods_open_and_close_with_each_champion_move() -> None:
    events = [event("promoted", 1, None, 10), event("awaiting_approval", 2, 1, 15),
              event("approved", 2, 1, 20), event("rolled_back", 1, 2, 30)]  # fmt: skip
    periods = [(p.version, p.since, p.until) for p in served_periods(events)]
    assert periods == [(1, 10, 20), (2, 20, 30), (1, 30, None)]


def test_canary_events_do_not_change_the_champion_timeline() -> None:
    events = [event("promoted", 1, None, 10), event("promoted", 2, 1, 20, alias="canary")]
    assert [(p.version, p.until) for p in served_periods(events)] == [(1, None)]


def test_rollback_goes_to_the_previous_champion() -> None:
    events = [event("promoted", 1, None, 10), event("promoted", 2, 1, 20)]
    assert rollback_target(events, 2) == 1


def test_rolling_back_twice_walks_back_not_forward() -> None:
    events = [event("promoted", 1, None, 10), event("promoted", 2, 1, 20),
              event("promoted", 3, 2, 30), event("rolled_back", 2, 3, 40)]  # fmt: skip
    assert rollback_target(events, 2) == 1


def test_a_version_promoted_again_after_a_rollback_is_a_target_again() -> None:
    events = [event("promoted", 1, None, 10), event("promoted", 2, 1, 20),
              event("rolled_back", 1, 2, 30), event("promoted", 2, 1, 40),
              event("promoted", 3, 2, 50)]  # fmt: skip
    assert rollback_target(events, 3) == 2


def test_no_target_without_an_earlier_champion() -> None:
    assert rollback_target([event("promoted", 1, None, 10)], 1) is None
    assert rollback_target([], 4) is None
