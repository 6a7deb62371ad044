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
from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlkeel.errors import DatabaseError, ModelNotFoundError, RegistryError
from mlkeel.monitoring.alert_store import AlertStore
from mlkeel.monitoring.alerts import Alert
from mlkeel.monitoring.profile import BaselineProfile
from mlkeel.monitoring.summaries import LATENCY_BINS, Summary
from mlkeel.monitoring.tables import reports, summaries

if TYPE_CHECKING:
    from mlkeel.registry import Registry, VersionInfo
    from mlkeel.settings import Settings

CHAMPION = "champion"
PARSED_SUMMARIES = 5000  # hour summaries kept parsed: 30 days of 7 series, a few MiB
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
class JobRun:
    """One run of a scheduled job (``mlkeel up``'s ``mlkeel_job_runs``)."""

    job: str
    kind: str
    model: str | None
    trigger: str
    started: float
    ended: float | None
    outcome: str
    error: str | None


_report_text = sa.type_coerce(reports.c.report, sa.Text)  # parsed by `_document`

# Read by name, not through the scheduler's module: the pages show these runs only where the
# scheduler's table exists, and need nothing else of it.
_job_runs = sa.table(
    "mlkeel_job_runs",
    *(sa.column(name) for name in ("job", "kind", "model", "trigger", "started", "ended",
                                   "outcome", "error", "id")),
)  # fmt: skip


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
        self._has_job_runs = False
        self._parsed: OrderedDict[tuple[int, float], Summary] = OrderedDict()  # (id, updated)

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
        """Traffic per hour of [since, until), and (with `merge`) the judged version's
        champion summaries merged over the window, with its baseline.

        Traffic reads a few fields of each stored summary (extracted by the database); only
        the judged version's summaries are read whole, and each is parsed once per process
        while its row is unchanged (``updated``): an hour, once past, is never parsed again.
        """
        first_hour = since - since % 3600
        by_hour: dict[int, _HourFold] = defaultdict(_HourFold)
        rows_per_version: dict[int, int] = defaultdict(int)
        for version, variant, hour, rows, requests, errors, latency in self._traffic(
            model, first_hour, until
        ):
            by_hour[hour].add(variant, rows, requests, errors, latency)
            if variant == CHAMPION:
                rows_per_version[version] += rows
        hours = [by_hour[hour].hour(model, hour) for hour in sorted(by_hour)]
        judged = self._judged(model, rows_per_version)
        merged = baseline = None
        if merge and judged is not None:
            parts = self._champion_summaries(model, judged, first_hour, until)
            if parts:
                merged = Summary(model, judged, CHAMPION, int(first_hour))
                for part in parts:
                    merged.merge(part)  # copies what it takes: the cached parts stay as read
                baseline = self.baseline(model, judged)
        return Window(hours, judged, merged, baseline, dict(rows_per_version))

    def _traffic(
        self, model: str, since: float, until: float
    ) -> list[tuple[int, str, int, int, int, int, Any]]:
        payload = summaries.c.payload
        query = sa.select(
            summaries.c.version, summaries.c.variant, summaries.c.hour,
            payload["rows"].as_integer(), payload["requests"].as_integer(),
            payload["errors"].as_integer(), payload["latency"],
        ).where(
            summaries.c.model == model, summaries.c.hour >= since, summaries.c.hour < until
        )  # fmt: skip
        with _database_errors(self.engine, "read summaries from"), self.engine.connect() as c:
            return [
                (int(v), str(variant), int(h), int(r or 0), int(q or 0), int(e or 0), latency)
                for v, variant, h, r, q, e, latency in c.execute(query)
            ]

    def _champion_summaries(
        self, model: str, version: int, since: float, until: float
    ) -> list[Summary]:
        where = (
            summaries.c.model == model, summaries.c.version == version,
            summaries.c.variant == CHAMPION, summaries.c.hour >= since, summaries.c.hour < until,
        )  # fmt: skip
        keys = sa.select(summaries.c.id, summaries.c.updated).where(*where)
        with _database_errors(self.engine, "read summaries from"), self.engine.connect() as c:
            stamps = {int(ident): float(updated) for ident, updated in c.execute(keys)}
            with self._lock:
                known = {i: self._parsed.get((i, u)) for i, u in stamps.items()}
            missing = [i for i, found in known.items() if found is None]
            for start in range(0, len(missing), 500):
                chunk = missing[start : start + 500]
                text = sa.type_coerce(summaries.c.payload, sa.Text)
                query = sa.select(summaries.c.id, summaries.c.updated, text).where(
                    summaries.c.id.in_(chunk)
                )
                for ident, updated, payload in c.execute(query):
                    part = Summary.from_payload(_document(payload))
                    known[int(ident)] = part
                    self._remember((int(ident), float(updated)), part)
        return [part for part in known.values() if part is not None]

    def _remember(self, key: tuple[int, float], part: Summary) -> None:
        with self._lock:
            self._parsed[key] = part
            while len(self._parsed) > PARSED_SUMMARIES:
                self._parsed.popitem(last=False)

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
        """Stored reports of `model` made in [since, until) about windows ending after `since`,
        oldest first; each dated by its window's end, or by when it was made if that was
        earlier (a window may reach into the future)."""
        query = (
            sa.select(reports.c.window_end, reports.c.created, _report_text)
            .where(
                reports.c.model == model,
                reports.c.window_end > since,
                reports.c.created >= since,
                reports.c.created < until,
            )
            .order_by(reports.c.created.desc())
            .limit(limit)
        )
        with (
            _database_errors(self.engine, "read monitoring reports from"),
            self.engine.connect() as c,
        ):
            found = [
                StoredReport(min(float(end), float(made)), float(made), _document(doc))
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
        same = sa.and_(reports.c.model == newest.c.model, reports.c.created == newest.c.created)
        columns = (reports.c.model, reports.c.window_end, reports.c.created, _report_text)
        query = sa.select(*columns).join(newest, same)
        with (
            _database_errors(self.engine, "read monitoring reports from"),
            self.engine.connect() as c,
        ):
            return {
                model: StoredReport(float(end), float(made), _document(doc))
                for model, end, made, doc in c.execute(query)
            }

    def recent_reports(self, limit: int = 50) -> list[StoredReport]:
        """The newest stored reports of every model, newest first (the monitoring job's runs)."""
        query = (
            sa.select(reports.c.window_end, reports.c.created, _report_text)
            .order_by(reports.c.created.desc())
            .limit(limit)
        )
        with (
            _database_errors(self.engine, "read monitoring reports from"),
            self.engine.connect() as c,
        ):
            return [
                StoredReport(float(end), float(made), _document(doc))
                for end, made, doc in c.execute(query)
            ]

    def job_runs(self, limit: int = 100, model: str | None = None) -> list[JobRun] | None:
        """The scheduler's newest job runs, or None where it has no table (no ``mlkeel up``)."""
        if not self._has_job_runs:
            with _database_errors(self.engine, "inspect"):
                self._has_job_runs = sa.inspect(self.engine).has_table("mlkeel_job_runs")
            if not self._has_job_runs:
                return None
        query = sa.select(_job_runs).order_by(_job_runs.c.started.desc(), _job_runs.c.id.desc())
        if model is not None:
            query = query.where(_job_runs.c.model == model)
        with _database_errors(self.engine, "read job runs from"), self.engine.connect() as c:
            rows = c.execute(query.limit(limit)).mappings().all()
        return [
            JobRun(str(r["job"]), str(r["kind"]), r["model"], str(r["trigger"]),
                   float(r["started"]), None if r["ended"] is None else float(r["ended"]),
                   str(r["outcome"]), r["error"])
            for r in rows
        ]  # fmt: skip

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
                       e.trigger, e.forced, dict(e.metrics), _dict(e.gate))
            for e in events
        ]  # fmt: skip
        found = [
            Run(r.id, r.model, r.trigger, r.actor, r.started, r.ended, r.outcome, r.failed_step,
                r.error, [Step(s.name, s.status, s.seconds, s.detail) for s in r.steps],
                r.parent_version, r.challenger_version, _dict(r.gate))
            for r in pipeline_runs
        ]  # fmt: skip
        periods = [ChampionPeriod(p.version, p.since, p.until) for p in served_periods(events)]
        return History(deployments, found, periods)


def _document(value: Any) -> dict[str, Any]:
    """A JSON column's value: parsed by the driver (PostgreSQL) or text (SQLite; orjson
    parses it several times faster than the json module)."""
    if isinstance(value, dict):
        return value
    parsed: dict[str, Any] = orjson.loads(value)
    return parsed


def _dict(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else dict(value)


class _HourFold:
    """Traffic of one hour over every stored row of it (all versions, variants, writers)."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = defaultdict(int)
        self.requests = 0
        self.errors = 0
        self.latency = np.zeros(LATENCY_BINS + 2, dtype=np.int64)
        self.latency_max = 0.0

    def add(self, variant: str, rows: int, requests: int, errors: int, latency: Any) -> None:
        self.rows[variant] += rows
        self.requests += requests
        self.errors += errors
        latency = _document(latency)
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
