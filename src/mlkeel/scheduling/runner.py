"""The loop that runs the jobs: APScheduler 3 in this process, while it is the leader.

Every ``mlkeel up`` process starts a `JobRunner`; it tries the leader lock every
``schedules.leader_poll`` seconds. The one that takes it schedules every job (a cron trigger
each); the others wait, and take over when the leader dies (the lock is released with it).

Rules, each enforced here:

- A job never overlaps itself: ``max_instances = 1`` per job; a run due while the previous
  one is still going is recorded as skipped.
- Missed runs follow ``schedules.misfire``. Within a process, a run that cannot start within
  `MISFIRE_GRACE` seconds is skipped (``skip``) or started late, once (``run_once``, APScheduler's
  coalescing). Across downtime (no leader), the new leader compares each job's newest
  recorded run with its cron times: if one was missed, ``run_once`` runs the job now (trigger
  ``catch-up``), ``skip`` records one skipped run saying since when.
- Every run is recorded in ``mlkeel_job_runs`` (runs.py) before it starts and when it ends.
- A monitoring run that asks for a retrain (an alert listed in ``alerts.retrain_on``, with
  ``schedules.retrain_on_alert``) makes the model's retrain job run now (trigger ``alert``).
- `stop` lets running jobs end for up to ``schedules.stop_timeout`` seconds (a retrain ends at
  its next step boundary), then records those still going as interrupted. Job threads are
  daemons: nothing keeps the process alive after that.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from mlkeel.errors import JobInterruptedError
from mlkeel.scheduling.jobs import JobContext, JobSpec, RetrainTrigger
from mlkeel.scheduling.jobs import run_job as run_spec
from mlkeel.scheduling.leader import LeaderLock, runner_name
from mlkeel.scheduling.runs import JobRunStore, Outcome, Trigger

if TYPE_CHECKING:
    from mlkeel.settings import SchedulesConfig

MISFIRE_GRACE = 30  # seconds a run may start late under misfire = "skip"
log = logging.getLogger(__name__)
_scheduled = threading.local()  # the cron time the current job thread runs for


class JobRunner:
    """Runs `specs` on a background scheduler while holding `lock`; records every run."""

    def __init__(
        self, specs: list[JobSpec], context: JobContext, store: JobRunStore, lock: LeaderLock,
        config: SchedulesConfig, runner: str | None = None,
    ) -> None:  # fmt: skip
        self.specs = {spec.id: spec for spec in specs}
        self.context = context
        self.store = store
        self.lock = lock
        self.config = config
        self.runner = runner or runner_name()
        self.leader = False
        self._pending: dict[str, tuple[Trigger, RetrainTrigger]] = {}
        self._running: dict[int, str] = {}  # run id -> job id, until its end is recorded
        self._recording = threading.Lock()
        self._stop = threading.Event()
        self._elector: threading.Thread | None = None
        grace = MISFIRE_GRACE if config.misfire == "skip" else None
        self._scheduler = BackgroundScheduler(
            executors={"default": DaemonThreadExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
            timezone=config.timezone,
        )

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> JobRunner:
        self._scheduler.add_listener(self._not_run, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self._scheduler.start()
        self._elector = threading.Thread(target=self._elect, name="mlkeel-leader", daemon=True)
        self._elector.start()
        return self

    def stop(self, timeout: float | None = None) -> list[int]:
        """Stop scheduling, let running jobs end, mark the rest interrupted; return those."""
        timeout = self.config.stop_timeout if timeout is None else timeout
        self.context.stopping.set()
        self._stop.set()
        if self._elector is not None:
            self._elector.join()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._recording:
            interrupted = list(self._running)
            for run_id in interrupted:
                log.warning("job run %s (%s) still going at stop: recorded as interrupted",
                            run_id, self._running.pop(run_id))  # fmt: skip
                self.store.finish(run_id, "interrupted", error=(
                    f"mlkeel up stopped; the run was still going after {timeout:g} s "
                    "(schedules.stop_timeout)"))  # fmt: skip
        if self.leader:
            self.lock.release()
            self.leader = False
        return interrupted

    @property
    def running(self) -> list[str]:
        """The jobs running now."""
        return sorted(set(self._running.values()))

    # ---- leadership ----------------------------------------------------------------------
    def _elect(self) -> None:
        while not self._stop.is_set():
            try:
                self._elect_once()
            except Exception:
                log.exception("leader election failed; trying again")
            self._stop.wait(self.config.leader_poll)

    def _elect_once(self) -> None:
        if self.leader:
            if not self.lock.still_held():
                self._stand_down()
        elif self.lock.try_acquire():
            if self._stop.is_set():
                self.lock.release()
                return
            self._take_over()

    def _take_over(self) -> None:
        self.leader = True
        log.info("leader (%s): running %d job(s)", self.lock.description, len(self.specs))
        stale = self.store.interrupt_running(
            "interrupted: the scheduler running it stopped before it ended"
        )
        if stale:
            log.warning("%d job run(s) of a previous leader recorded as interrupted", stale)
        now = datetime.now(UTC)
        for spec in self.specs.values():
            if spec.cron is None:
                continue
            trigger = self._trigger(spec)
            catch_up = self._missed(spec, trigger, now)
            if catch_up is not None and self.config.misfire == "run_once":
                self._pending[spec.id] = ("catch-up", "schedule")
            elif catch_up is not None:
                self._record_missed(spec, catch_up)
            self._scheduler.add_job(
                self._execute, trigger, args=(spec,), id=spec.id, name=spec.id,
                replace_existing=True,
                **({"next_run_time": now} if spec.id in self._pending else {}),
            )  # fmt: skip

    def _stand_down(self) -> None:
        log.error("lost the leader lock: no longer running jobs (running ones go on)")
        self.leader = False
        self._scheduler.remove_all_jobs()
        self.lock.release()

    def _trigger(self, spec: JobSpec) -> CronTrigger:
        if spec.cron is None:
            raise ValueError(f"{spec.id} has no schedule")
        return CronTrigger(**spec.cron.trigger_fields(), timezone=self.config.timezone)

    def _missed(self, spec: JobSpec, trigger: CronTrigger, now: datetime) -> datetime | None:
        """The first cron time of `spec` after its newest recorded run, if already past."""
        last = self.store.last_started(spec.id)
        if last is None:
            return None  # never ran: nothing was missed, the project just started
        after = datetime.fromtimestamp(last, UTC) + timedelta(milliseconds=1)
        due: datetime | None = trigger.get_next_fire_time(None, after)
        return due if due is not None and due <= now else None

    def _record_missed(self, spec: JobSpec, due: datetime) -> None:
        reason = (f"missed while no scheduler was running (first missed time "
                  f"{due.isoformat()}); misfire = skip")  # fmt: skip
        self.store.skipped(spec.id, spec.kind, spec.model, "schedule", due.timestamp(),
                           self.runner, reason)  # fmt: skip

    # ---- running -------------------------------------------------------------------------
    def run_now(self, spec: JobSpec, trigger: Trigger, retrain: RetrainTrigger) -> None:
        """Make `spec` run as soon as possible (still never overlapping itself)."""
        if not self.leader or self._stop.is_set():
            return
        self.specs.setdefault(spec.id, spec)
        self._pending[spec.id] = (trigger, retrain)
        if self._scheduler.get_job(spec.id) is not None:
            self._scheduler.modify_job(spec.id, next_run_time=datetime.now(UTC))
        else:
            self._scheduler.add_job(self._execute, "date", args=(spec,), id=spec.id,
                                    name=spec.id, replace_existing=True)  # fmt: skip

    def _execute(self, spec: JobSpec) -> None:
        trigger, retrain = self._pending.pop(spec.id, ("schedule", "schedule"))
        scheduled = getattr(_scheduled, "value", None)
        run_id = self.store.start(spec.id, spec.kind, spec.model, trigger, scheduled, self.runner)
        self._running[run_id] = spec.id
        outcome: Outcome = "failed"
        summary: dict[str, Any] | None = None
        error: str | None = None
        try:
            result = run_spec(spec, self.context, retrain)
            outcome, summary, error = result.outcome, result.summary, result.reason
            if result.retrain is not None and spec.model is not None:
                self._retrain_on_alert(spec.model, result.retrain)
        except JobInterruptedError as exc:
            outcome, error = "interrupted", str(exc)
        except Exception as exc:
            log.exception("job %s failed", spec.id)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._recording:  # stop() may have recorded it as interrupted already
                if run_id in self._running:
                    self.store.finish(run_id, outcome, summary, error)
                    del self._running[run_id]

    def _retrain_on_alert(self, model: str, trigger: RetrainTrigger) -> None:
        spec = self.specs.get(f"retrain:{model}") or JobSpec("retrain", model, None)
        log.info("%s: a monitoring alert asks for a retrain (%s)", model, trigger)
        self.run_now(spec, "alert", trigger)

    def _not_run(self, event: JobEvent) -> None:
        """Record a run APScheduler did not start: missed, or its previous run still going."""
        spec = self.specs.get(event.job_id)
        if spec is None:
            return
        trigger, _ = self._pending.pop(event.job_id, ("schedule", "schedule"))
        if event.code == EVENT_JOB_MAX_INSTANCES:
            due = event.scheduled_run_times[-1]
            reason = "the previous run of this job was still going (a job never overlaps itself)"
        else:
            due = event.scheduled_run_time
            reason = f"could not start within {MISFIRE_GRACE} s of its time (misfire = skip)"
        try:
            self.store.skipped(spec.id, spec.kind, spec.model, trigger, due.timestamp(),
                               self.runner, reason)  # fmt: skip
        except Exception:
            log.exception("could not record the skipped run of %s", spec.id)


class DaemonThreadExecutor(BaseExecutor):  # type: ignore[misc]
    """One daemon thread per run: a run still going at exit does not hold the process, and
    the job knows which cron time it runs for."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def work() -> None:
            _scheduled.value = run_times[-1].timestamp() if run_times else None
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException:
                _, exc, trace = sys.exc_info()
                self._run_job_error(job.id, exc, trace)
            else:
                self._run_job_success(job.id, events)

        threading.Thread(target=work, name=f"mlkeel-job-{job.id}", daemon=True).start()
