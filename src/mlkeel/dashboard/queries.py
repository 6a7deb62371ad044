"""What the pages show, read from what mlkeel stored: never raw prediction records.

- hourly summaries (``mlkeel_summaries``, folded by the log writer): volume, latency, errors
  per hour, and a window's merged distributions per feature;
- monitoring reports (``mlkeel_monitoring_reports``): drift scores and live accuracy over time;
- alerts (``AlertStore``), deployment events and pipeline runs (``history.py``, read in
  ``history`` only), versions and baselines (the registry; a version's baseline is read once).

A page's cost grows with the hours and reports in its window, not with traffic.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlkeel.errors import DatabaseError, ModelNotFoundError, RegistryError
from mlkeel.monitoring.alert_store import AlertStore
from mlkeel.monitoring.alerts import Alert
from mlkeel.monitoring.profile import BaselineProfile
from mlkeel.monitoring.summaries import LATENCY_BINS, Summary
from mlkeel.monitoring.summary_store import SummaryStore
from mlkeel.monitoring.tables import reports

if TYPE_CHECKING:
    from mlkeel.registry import Registry, VersionInfo
    from mlkeel.settings import Settings

CHAMPION = "champion"
ALIASES = ("champion", "canary", "shadow", "challenger")


@dataclass(frozen=True)
class Hour:
    """One hour of one model's traffic, every version and variant together."""

    hour: int
    rows: dict[str, int]  # per variant
    requests: int
    errors: int
    latency_ms: dict[str, float]  # p50, p99

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class StoredReport:
    """A monitoring report as stored (``MonitoringReport.to_dict``) and when its window ended."""

    window_end: float
    created: float
    document: dict[str, Any]


@dataclass(frozen=True)
class Deployment:
    ts: float
    action: str
    alias: str
    version: int
    previous: int | None
    actor: str
    reason: str | None
    trigger: str | None
    forced: bool
    metrics: dict[str, float]
    gate: dict[str, Any] | None


@dataclass(frozen=True)
class Step:
    name: str
    status: str
    seconds: float
    detail: str | None


@dataclass(frozen=True)
class Run:
    """One retraining pipeline run."""

    id: str
    model: str
    trigger: str
    actor: str
    started: float
    ended: float | None
    outcome: str
    failed_step: str | None
    error: str | None
    steps: list[Step]
    parent_version: int | None
    challenger_version: int | None
    gate: dict[str, Any] | None


@dataclass(frozen=True)
class ChampionPeriod:
    version: int
    since: float
    until: float | None


@dataclass(frozen=True)
class History:
    deployments: list[Deployment] = field(default_factory=list)  # oldest first
    runs: list[Run] = field(default_factory=list)  # newest first
    periods: list[ChampionPeriod] = field(default_factory=list)


@dataclass(frozen=True)
class Versions:
    """A model's registered versions (newest first) and which one each alias points at."""

    versions: list[VersionInfo]
    aliases: dict[str, int]
    problem: str | None = None  # why the registry could not list them


@dataclass
class Window:
    """A model's stored summaries over a window: traffic per hour, and the distributions of
    the version judged (the champion if it served, else the busiest) merged over it."""

    hours: list[Hour]
    version: int | None
    merged: Summary | None
    baseline: BaselineProfile | None
    versions_seen: dict[int, int]  # version -> rows


class Reader:
    """Reads for the pages; built once per app (it keeps each version's baseline)."""

    def __init__(self, settings: Settings, registry: Registry, engine: Engine) -> None:
        self.settings = settings
        self.registry = registry
        self.engine = engine
        self._baselines: dict[tuple[str, int], BaselineProfile | None] = {}
        self._lock = threading.Lock()

    # ---- models --------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        """The project's models; with none configured, the registry's."""
        if self.settings.models:
            return sorted(self.settings.models)
        try:
            return self.registry.names()
        except RegistryError:
            return []

    def versions(self, model: str) -> Versions:
        try:
            found = self.registry.versions(model)
        except (ModelNotFoundError, RegistryError) as exc:
            return Versions([], {}, str(exc))
        aliases = {alias: info.version for info in found for alias in info.aliases}
        return Versions(found, aliases)

    def baseline(self, model: str, version: int) -> BaselineProfile | None:
        """The version's training baseline, read from the registry once per process."""
        key = (model, version)
        with self._lock:
            if key in self._baselines:
                return self._baselines[key]
        try:
            profile: BaselineProfile | None = BaselineProfile.from_dict(
                self.registry.profile(model, version)
            )
        except (ModelNotFoundError, RegistryError, ValueError, OSError):
            profile = None
        with self._lock:
            self._baselines[key] = profile
        return profile

    # ---- summaries -----------------------------------------------------------------------
    def window(self, model: str, since: float, until: float, merge: bool = True) -> Window:
        """Traffic per hour of [since, until), and (with `merge`) the judged version's merged
        champion summary with its baseline."""
        first_hour = since - since % 3600
        by_hour: dict[int, _HourFold] = defaultdict(_HourFold)
        payloads: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
        rows_per_version: dict[int, int] = defaultdict(int)
        for (_, version, variant, hour), payload in self._summaries(model, first_hour, until):
            by_hour[hour].add(variant, payload)
            if variant == CHAMPION:
                payloads[version].append(payload)
                rows_per_version[version] += int(payload["rows"])
        hours = [by_hour[hour].hour(model, hour) for hour in sorted(by_hour)]
        judged = self._judged(model, rows_per_version)
        merged = baseline = None
        if merge and judged is not None and payloads.get(judged):
            merged = Summary.from_payload(payloads[judged][0])
            for payload in payloads[judged][1:]:
                merged.merge(Summary.from_payload(payload))
            baseline = self.baseline(model, judged)
        return Window(hours, judged, merged, baseline, dict(rows_per_version))

    def _summaries(
        self, model: str, since: float, until: float
    ) -> list[tuple[tuple[str, int, str, int], dict[str, Any]]]:
        with _database_errors(self.engine, "read summaries from"):
            return list(SummaryStore(self.engine).window(model, since, until))

    def _judged(self, model: str, rows: Mapping[int, int]) -> int | None:
        """As the monitor: the champion if it served in the window, else the busiest version."""
        if not rows:
            return None
        try:
            champion = self.registry.resolve(model, CHAMPION).version
        except (ModelNotFoundError, RegistryError):
            champion = None
        if champion in rows:
            return champion
        return max(rows, key=lambda version: rows[version])

    # ---- reports -------------------------------------------------------------------------
    def reports(
        self, model: str, since: float, until: float, limit: int = 1000
    ) -> list[StoredReport]:
        """Stored reports of `model` whose window ended in (since, until], oldest first."""
        query = (
            sa.select(reports.c.window_end, reports.c.created, reports.c.report)
            .where(
                reports.c.model == model,
                reports.c.window_end > since,
                reports.c.window_end <= until,
            )  # fmt: skip
            .order_by(reports.c.created.desc())
            .limit(limit)
        )
        with (
            _database_errors(self.engine, "read monitoring reports from"),
            self.engine.connect() as c,
        ):
            found = [
                StoredReport(float(end), float(made), dict(doc))
                for end, made, doc in c.execute(query)
            ]
        return found[::-1]

    def latest_reports(self, models: Sequence[str]) -> dict[str, StoredReport]:
        """The newest stored report of each model."""
        newest = (
            sa.select(reports.c.model, sa.func.max(reports.c.created).label("created"))
            .where(reports.c.model.in_(list(models)))
            .group_by(reports.c.model)
            .subquery()
        )
        query = sa.select(
            reports.c.model, reports.c.window_end, reports.c.created, reports.c.report
        ).join(newest, sa.and_(reports.c.model == newest.c.model,
                               reports.c.created == newest.c.created))  # fmt: skip
        with (
            _database_errors(self.engine, "read monitoring reports from"),
            self.engine.connect() as c,
        ):
            return {
                model: StoredReport(float(end), float(made), dict(doc))
                for model, end, made, doc in c.execute(query)
            }

    def recent_reports(self, limit: int = 50) -> list[StoredReport]:
        """The newest stored reports of every model, newest first (the monitoring job's runs)."""
        query = (
            sa.select(reports.c.window_end, reports.c.created, reports.c.report)
            .order_by(reports.c.created.desc())
            .limit(limit)
        )
        with (
            _database_errors(self.engine, "read monitoring reports from"),
            self.engine.connect() as c,
        ):
            return [
                StoredReport(float(end), float(made), dict(doc))
                for end, made, doc in c.execute(query)
            ]

    # ---- alerts and history --------------------------------------------------------------
    def alerts(
        self, model: str | None = None, open_only: bool = False, limit: int = 200
    ) -> list[Alert]:
        return AlertStore(self.engine).list(model, open_only=open_only, limit=limit)

    def history(self, model: str, runs: int = 20) -> History:
        """The one reader of ``history.py``: `model`'s deployment events, champion periods and
        newest pipeline runs; empty when its tables do not exist yet."""
        from mlkeel.history import HistoryRepository, served_periods

        repository = HistoryRepository(self.engine)
        try:
            events = repository.events(model)
            pipeline_runs = repository.runs(model, runs)
        except DatabaseError:
            if sa.inspect(self.engine).has_table("mlkeel_deployments"):
                raise
            return History()
        deployments = [
            Deployment(e.ts, e.action, e.alias, e.version, e.previous, e.actor, e.reason,
                       e.trigger, e.forced, dict(e.metrics), None if e.gate is None else dict(e.gate))
            for e in events
        ]  # fmt: skip
        found = [
            Run(r.id, r.model, r.trigger, r.actor, r.started, r.ended, r.outcome, r.failed_step,
                r.error, [Step(s.name, s.status, s.seconds, s.detail) for s in r.steps],
                r.parent_version, r.challenger_version, None if r.gate is None else dict(r.gate))
            for r in pipeline_runs
        ]  # fmt: skip
        periods = [ChampionPeriod(p.version, p.since, p.until) for p in served_periods(events)]
        return History(deployments, found, periods)


class _HourFold:
    """Traffic of one hour over every stored row of it (all versions, variants, writers)."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = defaultdict(int)
        self.requests = 0
        self.errors = 0
        self.latency = np.zeros(LATENCY_BINS + 2, dtype=np.int64)
        self.latency_max = 0.0

    def add(self, variant: str, payload: Mapping[str, Any]) -> None:
        self.rows[variant] += int(payload["rows"])
        self.requests += int(payload["requests"])
        self.errors += int(payload["errors"])
        latency = payload["latency"]
        for index, count in latency["bins"]:
            self.latency[int(index)] += int(count)
        self.latency_max = max(self.latency_max, float(latency["max"] or 0.0))

    def hour(self, model: str, hour: int) -> Hour:
        # Summary's own estimator (a bin's geometric middle), on this hour's merged histogram.
        estimate = Summary(model, 0, "all", hour)
        estimate.latency = self.latency
        estimate.latency_max = self.latency_max
        quantiles = estimate.latency_quantiles({"p50": 0.5, "p99": 0.99})
        return Hour(hour, dict(self.rows), self.requests, self.errors, quantiles)


class _database_errors:  # noqa: N801 - used as a context manager, reads like one
    """Turn a database failure into a `DatabaseError` that says what to do."""

    def __init__(self, engine: Engine, doing: str) -> None:
        self.engine, self.doing = engine, doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        if isinstance(error, sa.exc.SQLAlchemyError):
            first = (str(error).strip().splitlines() or [""])[0]
            raise DatabaseError(
                f"cannot {self.doing} the mlkeel database {self.engine.url!r}: {first}; is it "
                "reachable and migrated ('mlkeel db upgrade')?"
            ) from error
