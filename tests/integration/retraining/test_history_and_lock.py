"""The history tables and the retrain lock on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlkeel.db import make_engine
from mlkeel.errors import LockedError
from mlkeel.history import (
    DeploymentEvent,
    HistoryRepository,
    PipelineRun,
    StepRecord,
    locks,
)
from mlkeel.retraining.lock import DatabaseLock


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_events_round_trip_oldest_first(engine: Engine) -> None:
    history = HistoryRepository(engine)
    first = history.record(DeploymentEvent("m", "promoted", 1, "alice", metrics={"auc": 0.9}))
    history.record(
        DeploymentEvent("m", "promoted", 2, "bob", previous=1, reason="weekly",
                        trigger="schedule", run_id="r1", gate={"passed": True, "checks": []})
    )  # fmt: skip
    history.record(DeploymentEvent("other", "promoted", 7, "carol"))

    events = history.events("m")

    assert [(e.version, e.actor) for e in events] == [(1, "alice"), (2, "bob")]
    assert events[0] == first
    assert events[0].metrics == {"auc": 0.9}
    assert events[1].to_dict()["gate"] == {"passed": True, "checks": []}
    assert events[1].to_dict()["at"].endswith("+00:00")
    assert [e.version for e in history.events("m", limit=1)] == [2]


def test_recording_rolls_back_when_the_alias_move_fails(engine: Engine) -> None:
    history = HistoryRepository(engine)
    with (
        pytest.raises(RuntimeError, match="registry down"),
        history.recording(DeploymentEvent("m", "promoted", 3, "alice")),
    ):
        raise RuntimeError("registry down")
    assert history.events("m") == []


def test_pending_approval_ends_when_the_version_is_deployed(engine: Engine) -> None:
    history = HistoryRepository(engine)
    history.record(DeploymentEvent("m", "awaiting_approval", 2, "ci", previous=1))
    history.record(DeploymentEvent("m", "awaiting_approval", 3, "ci", previous=1))
    history.record(DeploymentEvent("m", "approved", 2, "alice", previous=1))
    assert [e.version for e in history.pending_approval("m")] == [3]


def test_runs_are_saved_step_by_step_and_abandoned_when_dead(engine: Engine) -> None:
    history = HistoryRepository(engine)
    run = PipelineRun("abc", "m", "drift", "alice", started=time.time(), reason="psi 0.4")
    history.start_run(run)
    step = StepRecord("data", "ok", 0.5, "569 rows")
    history.save_run(PipelineRun(**{**run.__dict__, "steps": (step,), "parent_version": 1}))

    stored = history.run("abc")
    assert stored is not None
    assert stored.steps == [step]
    assert stored.parent_version == 1
    assert stored.outcome == "running"

    assert history.abandon_running("m", "abandoned: lock expired") == 1
    abandoned = history.runs("m")[0]
    assert abandoned.outcome == "failed"
    assert abandoned.error == "abandoned: lock expired"
    assert abandoned.ended is not None


def test_second_holder_is_refused_with_who_and_since(engine: Engine) -> None:
    first = DatabaseLock(engine, "retrain:m", "alice@host pid 1", "a retrain of 'm'")
    second = DatabaseLock(engine, "retrain:m", "bob@host pid 2", "a retrain of 'm'")
    with first:
        with pytest.raises(LockedError) as refused:
            second.acquire()
        message = str(refused.value)
        assert "a retrain of 'm' already running since" in message
        assert "started by alice@host pid 1" in message
        DatabaseLock(engine, "retrain:other", "bob", "x").acquire()  # other names are free
    with second:  # released on exit: the next one gets it
        pass


def test_an_expired_lock_is_taken_over(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            locks.insert().values(name="retrain:m", token="dead", holder="crashed pid 9",
                                  acquired=time.time() - 600, expires=time.time() - 1)
        )  # fmt: skip
    lock = DatabaseLock(engine, "retrain:m", "alice", "a retrain of 'm'")
    lock.acquire()
    with engine.connect() as connection:
        holder = connection.execute(sa.select(locks.c.holder)).scalar_one()
    assert holder == "alice"
    lock.release()


def test_holder_renews_its_lock_while_working(engine: Engine) -> None:
    lock = DatabaseLock(engine, "retrain:m", "alice", "a retrain of 'm'", ttl=0.4)
    with lock:
        time.sleep(1.0)  # well past the first expiry: renewals keep it
        with pytest.raises(LockedError):
            DatabaseLock(engine, "retrain:m", "bob", "a retrain of 'm'").acquire()
        lock.ensure_held()


def test_only_one_of_many_racing_acquirers_wins(engine: Engine) -> None:
    winners: list[str] = []
    refused: list[str] = []
    start = threading.Barrier(6)

    def contend(who: str) -> None:
        start.wait()
        try:
            DatabaseLock(engine, "retrain:m", who, "a retrain of 'm'").acquire()
            winners.append(who)
        except LockedError:
            refused.append(who)

    threads = [threading.Thread(target=contend, args=(f"p{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert len(refused) == 5
