"""Stopping ``mlkeel up`` during a retrain: the pipeline ends at its next step boundary, the
job run says interrupted, the audit trail says where it stopped, production is untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from scheduling_support import wait_for

from mlkeel.cli import main
from mlkeel.cli.compose import registry_for
from mlkeel.db import make_engine, upgrade
from mlkeel.history import HistoryRepository, locks
from mlkeel.scheduling.jobs import JobContext, JobSpec
from mlkeel.scheduling.leader import leader_lock
from mlkeel.scheduling.runner import JobRunner
from mlkeel.scheduling.runs import JobRunStore
from mlkeel.settings import SchedulesConfig, load_settings

SLOW_TRAIN = """

import time as _time

_train = train


def train(data, params):
    _time.sleep(3)
    return _train(data, params)
"""


@pytest.mark.slow
def test_stop_during_a_retrain_interrupts_it_at_a_step_boundary(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for args in (["train", "-p", str(project)], ["promote", "breast_cancer", "1", "-p",
                                                 str(project)]):  # fmt: skip
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert not exited.value.code
    with (project / "train.py").open("a", encoding="utf-8") as code:
        code.write(SLOW_TRAIN)
    settings = load_settings(project, environ={})
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    registry = registry_for(settings)
    spec = JobSpec("retrain", "breast_cancer", None)
    runner = JobRunner([], JobContext(settings, registry, engine), JobRunStore(engine),
                       leader_lock(engine, "interrupt test"),
                       SchedulesConfig(leader_poll=0.2, stop_timeout=20))  # fmt: skip
    runner.start()
    try:
        wait_for(lambda: runner.leader)
        runner.run_now(spec, "manual", "schedule")
        wait_for(lambda: JobRunStore(engine).recent(outcome="running"), timeout=30)
        wait_for(lambda: _step_started(engine, "train"), timeout=30)

        assert runner.stop() == []  # it ended by itself within stop_timeout
    finally:
        runner.stop()

    (run,) = JobRunStore(engine).recent()
    assert (run.job, run.trigger, run.outcome) == ("retrain:breast_cancer", "manual",
                                                   "interrupted")  # fmt: skip
    assert "before step 'evaluate'" in (run.error or "")
    (pipeline,) = HistoryRepository(engine).runs("breast_cancer")
    assert (pipeline.outcome, pipeline.failed_step) == ("failed", "evaluate")
    assert registry.resolve("breast_cancer", "champion").version == 1
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(locks)).scalar() == 0
    engine.dispose()


def _step_started(engine: sa.Engine, step: str) -> bool:
    runs = HistoryRepository(engine).runs("breast_cancer")
    return bool(runs) and any(s.name == "data" and s.status == "ok" for s in runs[0].steps)
