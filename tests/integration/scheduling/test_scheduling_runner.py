"""The job runner on a real database: schedules run and are recorded, never overlap, missed
runs follow the misfire policy, stopping interrupts cleanly, one leader runs the jobs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from scheduling_support import (  # noqa: F401 - fixtures
    FakeJobs,
    engine_fixture,
    fake_jobs_fixture,
    make_runner,
    runs,
    spec,
    sqlite_engine_fixture,
    wait_for,
)
from sqlalchemy.engine import Engine

from mlkeel.scheduling.leader import leader_lock
from mlkeel.scheduling.runs import JobRunStore, job_runs
from mlkeel.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_dir=tmp_path, project="t")


def test_a_second_level_schedule_runs_and_every_run_is_recorded(
    settings: Settings, engine: Engine, fake_jobs: FakeJobs
) -> None:
    runner = make_runner(settings, engine, leader_lock(engine, "t1"), [spec()]).start()
    try:
        wait_for(lambda: len([r for r in runs(engine) if r.outcome == "ok"]) >= 2)
    finally:
        runner.stop()

    done = [r for r in runs(engine) if r.outcome == "ok"]
    assert {r.job for r in done} == {"monitor:m"}
    assert all(r.trigger == "schedule" and r.ended is not None for r in done)
    assert all(r.scheduled is not None and r.scheduled <= r.started for r in done)
    assert done[0].summary == {"v": 1, "job": "monitor:m"}
    assert not [r for r in runs(engine) if r.outcome == "running"]


def test_a_failing_job_is_recorded_failed_with_its_error(
    settings: Settings, sqlite_engine: Engine, fake_jobs: FakeJobs
) -> None:
    fake_jobs.fail = True
    runner = make_runner(settings, sqlite_engine, leader_lock(sqlite_engine, "t"), [spec()])
    runner.start()
    try:
        failed = wait_for(lambda: runs(sqlite_engine, outcome="failed"))
    finally:
        runner.stop()

    assert failed[0].error == "RuntimeError: boom"


def test_a_job_never_overlaps_itself(
    settings: Settings, sqlite_engine: Engine, fake_jobs: FakeJobs
) -> None:
    fake_jobs.seconds = 2.5
    runner = make_runner(settings, sqlite_engine, leader_lock(sqlite_engine, "t"), [spec()])
    runner.start()
    try:
        skipped = wait_for(lambda: runs(sqlite_engine, outcome="skipped"), timeout=10)
        wait_for(lambda: runs(sqlite_engine, outcome="ok"), timeout=10)
    finally:
        runner.stop(timeout=5)

    assert "still going" in (skipped[0].error or "")
    recorded = sorted(
        (r for r in runs(sqlite_engine) if r.outcome != "skipped"), key=lambda r: r.started
    )
    for earlier, later in zip(recorded, recorded[1:], strict=False):
        assert earlier.ended is not None
        assert earlier.ended <= later.started


def test_stop_lets_a_short_run_end_and_marks_a_long_one_interrupted(
    settings: Settings, sqlite_engine: Engine, fake_jobs: FakeJobs
) -> None:
    fake_jobs.release.clear()  # the job blocks until released
    runner = make_runner(settings, sqlite_engine, leader_lock(sqlite_engine, "t"), [spec()])
    runner.start()
    wait_for(lambda: runs(sqlite_engine, outcome="running"))

    interrupted = runner.stop(timeout=0.5)

    assert len(interrupted) == 1
    (run,) = [r for r in runs(sqlite_engine) if r.id == interrupted[0]]
    assert run.outcome == "interrupted"
    assert run.ended is not None
    assert "schedules.stop_timeout" in (run.error or "")
    assert runner.context.stopping.is_set()
    fake_jobs.release.set()


def _ran_long_ago(engine: Engine, job: str, hours: float) -> None:
    store = JobRunStore(engine)
    run_id = store.start(job, "monitor", "m", "schedule", None, "earlier")
    store.finish(run_id, "ok", {})
    with engine.begin() as connection:
        connection.execute(
            job_runs.update().where(job_runs.c.id == run_id)
            .values(started=time.time() - hours * 3600, ended=time.time() - hours * 3600 + 1)
        )  # fmt: skip


def test_run_once_catches_up_a_run_missed_while_no_scheduler_ran(
    settings: Settings, sqlite_engine: Engine, fake_jobs: FakeJobs
) -> None:
    _ran_long_ago(sqlite_engine, "monitor:m", hours=30)  # the daily 06:00 run was missed
    daily = spec(cron="0 6 * * *")
    runner = make_runner(settings, sqlite_engine, leader_lock(sqlite_engine, "t"), [daily],
                         misfire="run_once")  # fmt: skip
    runner.start()
    try:
        caught_up = wait_for(lambda: [r for r in runs(sqlite_engine, outcome="ok")
                                      if r.runner == "test"])  # fmt: skip
    finally:
        runner.stop()

    assert [(r.job, r.trigger) for r in caught_up] == [("monitor:m", "catch-up")]
    assert fake_jobs.calls == [("monitor:m", "schedule")]


def test_skip_records_the_missed_run_and_does_not_run_it(
    settings: Settings, sqlite_engine: Engine, fake_jobs: FakeJobs
) -> None:
    _ran_long_ago(sqlite_engine, "monitor:m", hours=30)
    daily = spec(cron="0 6 * * *")
    runner = make_runner(settings, sqlite_engine, leader_lock(sqlite_engine, "t"), [daily],
                         misfire="skip")  # fmt: skip
    runner.start()
    try:
        skipped = wait_for(lambda: runs(sqlite_engine, outcome="skipped"))
        time.sleep(0.5)
    finally:
        runner.stop()

    assert "misfire = skip" in (skipped[0].error or "")
    assert fake_jobs.calls == []


def test_a_new_leader_marks_runs_left_running_by_a_dead_one_interrupted(
    settings: Settings, sqlite_engine: Engine, fake_jobs: FakeJobs
) -> None:
    left = JobRunStore(sqlite_engine).start("retrain:m", "retrain", "m", "schedule", None, "dead")
    runner = make_runner(settings, sqlite_engine, leader_lock(sqlite_engine, "t"), [])
    runner.start()
    try:
        wait_for(lambda: runner.leader)
    finally:
        runner.stop()

    (run,) = [r for r in runs(sqlite_engine) if r.id == left]
    assert run.outcome == "interrupted"
    assert "stopped before it ended" in (run.error or "")


def test_only_the_leader_runs_jobs_and_a_standby_takes_over(
    settings: Settings, engine: Engine, fake_jobs: FakeJobs
) -> None:
    name = f"leader test {engine.dialect.name}"
    first = make_runner(settings, engine, leader_lock(engine, name), [spec()], runner="first")
    second = make_runner(settings, engine, leader_lock(engine, name), [spec()], runner="second")
    first.start()
    wait_for(lambda: first.leader)
    second.start()
    try:
        wait_for(lambda: len(runs(engine, outcome="ok")) >= 3)
        assert not second.leader
        assert {r.runner for r in runs(engine)} == {"first"}

        first.stop()
        wait_for(lambda: second.leader, timeout=10)
        wait_for(lambda: any(r.runner == "second" for r in runs(engine, outcome="ok")))
    finally:
        first.stop()
        second.stop()
