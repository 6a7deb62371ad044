"""Helpers for the scheduling tests: a runner whose jobs are stand-ins, a wait loop."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from mlkeel.db import make_engine, upgrade
from mlkeel.scheduling import runner as runner_module
from mlkeel.scheduling.cron import parse_cron
from mlkeel.scheduling.jobs import JobContext, JobResult, JobSpec
from mlkeel.scheduling.leader import LeaderLock
from mlkeel.scheduling.runner import JobRunner
from mlkeel.scheduling.runs import JobRun, JobRunStore
from mlkeel.settings import SchedulesConfig, Settings


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not true within {timeout} s: {condition}")


class FakeJobs:
    """Stands in for the adapters: counts calls, sleeps or fails as told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.seconds = 0.0
        self.fail = False
        self.release = threading.Event()
        self.release.set()

    def __call__(self, spec: JobSpec, context: JobContext, trigger: str) -> JobResult:
        self.calls.append((spec.id, trigger))
        self.release.wait(30)
        if self.seconds:
            time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError("boom")
        return JobResult("ok", {"job": spec.id})


def spec(kind: str = "monitor", model: str | None = "m", cron: str = "* * * * * *") -> JobSpec:
    return JobSpec(kind, model, parse_cron(cron))  # type: ignore[arg-type]


def make_runner(
    settings: Settings, engine: Engine, lock: LeaderLock, specs: list[JobSpec],
    runner: str = "test", **config: Any,
) -> JobRunner:  # fmt: skip
    schedules = SchedulesConfig(**{"leader_poll": 0.2, "stop_timeout": 2.0, **config})
    context = JobContext(settings, None, engine)  # type: ignore[arg-type]
    return JobRunner(specs, context, JobRunStore(engine), lock, schedules, runner)


def runs(engine: Engine, **filters: Any) -> list[JobRun]:
    return JobRunStore(engine).recent(1000, **filters)


@pytest.fixture(name="fake_jobs")
def fake_jobs_fixture(monkeypatch: pytest.MonkeyPatch) -> FakeJobs:
    jobs = FakeJobs()
    monkeypatch.setattr(runner_module, "run_spec", jobs)
    return jobs


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlkeel.db'}"


@pytest.fixture(name="engine")
def engine_fixture(database_url: str) -> Iterator[Engine]:
    """A migrated operational database, SQLite and PostgreSQL."""
    made = make_engine(database_url)
    yield made
    made.dispose()


@pytest.fixture(name="sqlite_engine")
def sqlite_engine_fixture(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(sqlite_url(tmp_path))
    upgrade(made)
    yield made
    made.dispose()
