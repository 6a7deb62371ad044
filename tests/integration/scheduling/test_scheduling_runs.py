"""The job-run record on SQLite and PostgreSQL: written as runs start and end, read newest
first, pruned by age; the public form has ISO times."""

from __future__ import annotations

import time

from scheduling_support import engine_fixture  # noqa: F401 - a fixture
from sqlalchemy.engine import Engine

from mlkeel.scheduling.runs import JobRunStore, job_runs


def test_a_run_is_recorded_when_it_starts_and_when_it_ends(engine: Engine) -> None:
    store = JobRunStore(engine)

    run_id = store.start("monitor:m", "monitor", "m", "schedule", 1_800_000_000.0, "host pid 1")
    (running,) = store.recent()
    store.finish(run_id, "ok", {"rows": 3})
    (done,) = store.recent()

    assert (running.outcome, running.ended) == ("running", None)
    assert done.outcome == "ok"
    assert done.summary == {"v": 1, "rows": 3}
    public = done.to_dict()
    assert public["scheduled"] == "2027-01-15T08:00:00.000+00:00"
    assert public["seconds"] is not None
    assert public["seconds"] >= 0
    assert set(public) >= {"job", "kind", "model", "trigger", "started", "ended", "outcome",
                           "summary", "error", "runner"}  # fmt: skip


def test_recent_filters_and_orders_newest_first(engine: Engine) -> None:
    store = JobRunStore(engine)
    for job, model in (("monitor:a", "a"), ("canary:a", "a"), ("monitor:b", "b")):
        store.finish(store.start(job, job.split(":")[0], model, "schedule", None, "r"), "ok")
    store.skipped("retention", "retention", None, "schedule", None, "r", "missed")

    assert [r.job for r in store.recent()] == ["retention", "monitor:b", "canary:a", "monitor:a"]
    assert [r.job for r in store.recent(model="a")] == ["canary:a", "monitor:a"]
    assert [r.job for r in store.recent(kind="monitor", limit=1)] == ["monitor:b"]
    assert [r.error for r in store.recent(outcome="skipped")] == ["missed"]


def test_interrupt_running_and_last_started(engine: Engine) -> None:
    store = JobRunStore(engine)
    mine = store.start("retrain:a", "retrain", "a", "schedule", None, "me")
    other = store.start("retrain:b", "retrain", "b", "alert", None, "other")

    assert store.interrupt_running("stopped", runner="me") == 1
    assert {r.id: r.outcome for r in store.recent()} == {mine: "interrupted", other: "running"}
    assert store.last_started("retrain:a") is not None
    assert store.last_started("retrain:b") is None  # alert runs do not anchor catch-up


def test_prune_deletes_finished_runs_older_than_the_retention(engine: Engine) -> None:
    store = JobRunStore(engine)
    old = store.start("monitor:a", "monitor", "a", "schedule", None, "r")
    store.finish(old, "ok")
    still = store.start("retrain:a", "retrain", "a", "schedule", None, "r")
    with engine.begin() as connection:
        connection.execute(job_runs.update().values(started=time.time() - 10 * 86400))
    store.finish(store.start("monitor:a", "monitor", "a", "schedule", None, "r"), "ok")

    assert store.prune(time.time() - 86400) == 1
    assert old not in {r.id for r in store.recent()}
    assert still in {r.id for r in store.recent()}
