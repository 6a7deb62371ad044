"""The alert store on SQLite and PostgreSQL: dedup, cooldown, resolve, delivery, listing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlkeel.db import make_engine, upgrade
from mlkeel.monitoring.alert_store import AlertStore, Delivery
from mlkeel.monitoring.alerts import Alert, AlertCandidate
from mlkeel.monitoring.tables import alerts

MODEL = "breast_cancer"
T0 = datetime(2026, 1, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
DRIFT = AlertCandidate(
    "feature_drift",
    "mean_radius",
    "breast_cancer: feature mean_radius drifted (wasserstein 0.31 > 0.10)",
    {"score": 0.31, "threshold": 0.1},
    retrain=True,
)
ERRORS = AlertCandidate(
    "error_rate", "error_rate", "breast_cancer: error rate 9.0% > 5.0%", {"error_rate": 0.09}
)


class Recorder:
    """A sink that keeps what it was sent; ``up`` False makes it fail like a dead receiver."""

    def __init__(self, name: str = "recorder", up: bool = True) -> None:
        self.name = name
        self.up = up
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> bool:
        self.sent.append(alert)
        return self.up

    @property
    def seen(self) -> list[tuple[str, str, str]]:
        return [(a.status, a.rule, a.subject) for a in self.sent]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def store(engine: Engine) -> AlertStore:
    return AlertStore(engine)


def test_a_new_condition_opens_one_alert_and_notifies(store: AlertStore) -> None:
    sink = Recorder()

    outcome = store.process(MODEL, [DRIFT], {"feature_drift"}, [sink], HOUR, T0)

    (alert,) = store.list()
    assert outcome.opened == [alert]
    assert outcome.retrain is True
    assert (alert.model, alert.rule, alert.subject, alert.status) == (
        MODEL, "feature_drift", "mean_radius", "open",
    )  # fmt: skip
    assert alert.message == DRIFT.message
    assert alert.evidence == {"score": 0.31, "threshold": 0.1}
    assert alert.opened_at == alert.last_seen_at == alert.notified_at == T0.timestamp()
    assert sink.seen == [("open", "feature_drift", "mean_radius")]
    assert sink.sent[0].notified_at is None  # the sink saw a first notice


def test_the_same_condition_twice_is_one_alert_and_one_notification(store: AlertStore) -> None:
    sink = Recorder()
    later = AlertCandidate(DRIFT.rule, DRIFT.subject, "newer message", {"score": 0.4})

    store.process(MODEL, [DRIFT], {"feature_drift"}, [sink], HOUR, T0)
    outcome = store.process(MODEL, [later], {"feature_drift"}, [sink], HOUR, T0 + HOUR / 6)

    (alert,) = store.list()
    assert len(sink.sent) == 1
    assert outcome.opened == outcome.renotified == []
    assert outcome.ongoing == [alert]
    assert outcome.retrain is False
    assert alert.last_seen_at > alert.opened_at == alert.notified_at
    assert (alert.message, alert.evidence) == ("newer message", {"score": 0.4})


def test_a_still_firing_alert_is_notified_again_only_after_the_cooldown(
    store: AlertStore,
) -> None:
    sink = Recorder()
    moments = [T0, T0 + 30 * timedelta(minutes=1), T0 + HOUR - timedelta(seconds=1), T0 + HOUR,
               T0 + HOUR + timedelta(minutes=59), T0 + 2 * HOUR]  # fmt: skip

    outcomes = [store.process(MODEL, [DRIFT], {"feature_drift"}, [sink], HOUR, m) for m in moments]

    assert [bool(o.opened or o.renotified) for o in outcomes] == [
        True, False, False, True, False, True,
    ]  # fmt: skip
    assert [a.notified_at for a in sink.sent] == [None, T0.timestamp(), (T0 + HOUR).timestamp()]
    (alert,) = store.list()
    assert alert.notified_at == (T0 + 2 * HOUR).timestamp()
    assert alert.opened_at == T0.timestamp()


def test_a_cleared_condition_resolves_and_notifies(store: AlertStore) -> None:
    sink = Recorder()
    store.process(MODEL, [DRIFT, ERRORS], {"feature_drift", "error_rate"}, [sink], HOUR, T0)

    outcome = store.process(
        MODEL, [ERRORS], {"feature_drift", "error_rate"}, [sink], HOUR, T0 + HOUR / 2
    )

    assert [(a.rule, a.status) for a in outcome.resolved] == [("feature_drift", "resolved")]
    assert outcome.ongoing[0].rule == "error_rate"
    assert sink.seen[-1] == ("resolved", "feature_drift", "mean_radius")
    by_rule = {a.rule: a for a in store.list()}
    assert by_rule["feature_drift"].status == "resolved"
    assert by_rule["feature_drift"].resolved_at == (T0 + HOUR / 2).timestamp()
    assert by_rule["error_rate"].status == "open"
    assert [a.rule for a in store.list(open_only=True)] == ["error_rate"]


def test_a_rule_without_a_verdict_resolves_nothing(store: AlertStore) -> None:
    sink = Recorder()
    store.process(MODEL, [DRIFT], {"feature_drift"}, [sink], HOUR, T0)

    outcome = store.process(MODEL, [], set(), [sink], HOUR, T0 + HOUR)

    assert outcome.resolved == []
    assert [a.status for a in store.list()] == ["open"]
    assert len(sink.sent) == 1


def test_a_condition_that_returns_after_resolving_opens_a_new_alert(store: AlertStore) -> None:
    sink = Recorder()
    store.process(MODEL, [DRIFT], {"feature_drift"}, [sink], HOUR, T0)
    store.process(MODEL, [], {"feature_drift"}, [sink], HOUR, T0 + HOUR)

    outcome = store.process(MODEL, [DRIFT], {"feature_drift"}, [sink], HOUR, T0 + 2 * HOUR)

    assert len(outcome.opened) == 1
    assert [a.status for a in store.list()] == ["open", "resolved"]  # newest first
    assert sink.seen == [
        ("open", "feature_drift", "mean_radius"),
        ("resolved", "feature_drift", "mean_radius"),
        ("open", "feature_drift", "mean_radius"),
    ]


def test_models_and_subjects_are_separate_alerts(store: AlertStore) -> None:
    other = AlertCandidate("feature_drift", "mean_texture", "texture drifted", {})
    store.process(MODEL, [DRIFT, other], {"feature_drift"}, [], HOUR, T0)
    store.process("iris", [DRIFT], {"feature_drift"}, [], HOUR, T0)

    store.process("iris", [], {"feature_drift"}, [], HOUR, T0 + HOUR)

    assert len(store.list(MODEL, open_only=True)) == 2
    assert [a.status for a in store.list("iris")] == ["resolved"]
    assert len(store.list()) == 3
    assert len(store.list(limit=1)) == 1


def test_a_notice_no_sink_took_is_retried_by_the_next_run(store: AlertStore) -> None:
    down = Recorder("webhook", up=False)

    first = store.process(MODEL, [DRIFT], {"feature_drift"}, [down], HOUR, T0)
    down.up = True
    second = store.process(MODEL, [DRIFT], {"feature_drift"}, [down], HOUR, T0 + HOUR / 60)

    alert_id = first.opened[0].id
    assert first.failed == [Delivery("webhook", alert_id)]
    assert first.opened[0].notified_at is None
    assert [a.id for a in second.renotified] == [alert_id]
    assert second.failed == []
    assert store.list()[0].notified_at == (T0 + HOUR / 60).timestamp()


def test_a_partial_delivery_failure_is_reported_and_counts_as_notified(
    store: AlertStore,
) -> None:
    log, down = Recorder("log"), Recorder("webhook", up=False)

    outcome = store.process(MODEL, [DRIFT], {"feature_drift"}, [log, down], HOUR, T0)
    again = store.process(MODEL, [DRIFT], {"feature_drift"}, [log, down], HOUR, T0 + HOUR / 2)

    assert [f.sink for f in outcome.failed] == ["webhook"]
    assert outcome.opened[0].notified_at == T0.timestamp()
    assert again.ongoing
    assert not again.renotified


def test_evidence_round_trips_as_json(store: AlertStore, engine: Engine) -> None:
    evidence = {"window": {"start": "2026-01-01"}, "drifted": ["a", "b"], "p": None, "n": 3}
    store.process(MODEL, [AlertCandidate("dataset_drift", "dataset", "m", evidence)],
                  {"dataset_drift"}, [], HOUR, T0)  # fmt: skip

    with engine.connect() as connection:
        stored = connection.execute(sa.select(alerts.c.evidence)).scalar_one()
    assert stored == evidence


def test_overlapping_runs_open_one_alert(database_url: str) -> None:
    engines = [make_engine(database_url) for _ in range(4)]
    barrier = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def run(engine: Engine) -> None:
        try:
            barrier.wait(10)
            AlertStore(engine).process(MODEL, [DRIFT], {"feature_drift"}, [], HOUR, T0)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        for engine in engines:
            engine.dispose()
    assert errors == []
    check = make_engine(database_url)
    try:
        assert len(AlertStore(check).list(open_only=True)) == 1
    finally:
        check.dispose()
