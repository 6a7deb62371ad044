"""The monitoring job, top to bottom: summaries → drift → performance → alerts → stored report.

It reads the hourly summaries the log writer folded (their number grows with hours, not with
traffic), the labelled rows of the window (few, read from the labels' side), and the
version's baseline from the registry. ``exact`` recomputes drift from raw records and the
training data instead, for audits.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlkeel.durations import parse_age
from mlkeel.errors import DataError, ModelNotFoundError
from mlkeel.evaluation import live_metrics
from mlkeel.monitoring.alert_sinks import Sink, build_sinks
from mlkeel.monitoring.alert_store import AlertStore
from mlkeel.monitoring.alerts import evaluate
from mlkeel.monitoring.drift import DriftResult, compare, compare_exact
from mlkeel.monitoring.profile import BaselineProfile
from mlkeel.monitoring.report import MonitoringReport, Performance, Traffic
from mlkeel.monitoring.summaries import Summary
from mlkeel.monitoring.summary_store import SummaryStore
from mlkeel.monitoring.tables import reports
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.settings import ModelConfig, Settings

if TYPE_CHECKING:
    from mlkeel.registry import Registry

VARIANT = "champion"


@dataclass(frozen=True)
class MonitorResult:
    report: MonitoringReport
    retrain: bool  # an alert that asks for retraining opened in this run


def monitor(
    settings: Settings,
    registry: Registry,
    engine: Engine,
    model: str,
    since: datetime,
    until: datetime,
    *,
    exact: bool = False,
    sinks: list[Sink] | None = None,
) -> MonitorResult:
    """Judge `model`'s champion traffic in [since, until); store the report, raise alerts."""
    config = settings.model(model)
    merged = _merged_summaries(engine, model, since.timestamp(), until.timestamp())
    version = _version_to_judge(registry, model, merged)
    summary = merged.get(version) if version is not None else None
    drift = None
    if version is not None and summary is not None and summary.rows:
        if exact:
            drift = _exact_drift(settings, registry, engine, config, version, since, until)
        else:
            profile = BaselineProfile.from_dict(registry.profile(model, version))
            drift = compare(profile, summary, config.drift)
    performance = None
    if version is not None:
        performance = _performance(registry, engine, config, version, since, until)
    report = MonitoringReport(
        model=model,
        version=version,
        window=(since.isoformat(), until.isoformat()),
        rows=summary.rows if summary is not None else 0,
        dataset_drift=drift.dataset_drift if drift else False,
        drift_share=drift.drift_share if drift else 0.0,
        features=drift.features if drift else [],
        prediction_drift=drift.prediction if drift else None,
        performance=performance,
        traffic=_traffic(summary),
        exact=exact,
    )
    candidates = evaluate(report, config.alerts, config.metric, config.higher_is_better,
                          _previous(engine, model))  # fmt: skip
    outcome = AlertStore(engine).process(
        model, candidates, candidates.evaluated,
        build_sinks(settings.alerts) if sinks is None else sinks,
        parse_age(settings.alerts.cooldown),
    )  # fmt: skip
    report = _with_alerts(report, [candidate.message for candidate in candidates])
    _store(engine, report, since, until)
    return MonitorResult(report, bool(outcome.retrain))


def _merged_summaries(engine: Engine, model: str, since: float, until: float) -> dict[int, Summary]:
    """One merged summary per version. Hours are whole: a window starting mid-hour includes
    that hour's summary (the daily job's windows are whole hours)."""
    first_hour = since - since % 3600
    merged: dict[int, Summary] = {}
    for (_, version, _, _), payload in SummaryStore(engine).window(
        model, first_hour, until, VARIANT
    ):
        summary = Summary.from_payload(payload)
        if version in merged:
            merged[version].merge(summary)
        else:
            merged[version] = summary
    return merged


def _version_to_judge(registry: Registry, model: str, merged: dict[int, Summary]) -> int | None:
    """The champion, if it served in the window; else the version that served the most."""
    try:
        champion: int | None = registry.resolve(model, "champion").version
    except ModelNotFoundError:
        champion = None
    if champion is not None and champion in merged:
        return champion
    if merged:
        return Counter({v: s.rows for v, s in merged.items()}).most_common(1)[0][0]
    return champion


def _performance(
    registry: Registry, engine: Engine, config: ModelConfig, version: int,
    since: datetime, until: datetime,
) -> Performance | None:  # fmt: skip
    rows = PredictionRepository(engine).labelled(
        config.name, version, since.timestamp(), until.timestamp(), VARIANT
    )
    if not rows:
        return None
    predictions = [row[0] for row in rows]
    probabilities = [row[1] for row in rows]
    labels = [row[2] for row in rows]
    metrics = live_metrics(config.task, predictions, probabilities, labels)
    trained = registry.version(config.name, version).metrics
    baseline = {key: value for key, value in trained.items() if key in metrics}
    return Performance(labelled=len(rows), metrics=metrics, baseline=baseline)


def _traffic(summary: Summary | None) -> Traffic | None:
    if summary is None:
        return None
    return Traffic(summary.requests, summary.errors, summary.latency_quantiles())


def _exact_drift(
    settings: Settings, registry: Registry, engine: Engine, config: ModelConfig, version: int,
    since: datetime, until: datetime,
) -> DriftResult:  # fmt: skip
    """Drift from raw samples: the version's own training rows against the window's records."""
    import numpy as np
    import pandas as pd

    from mlkeel.datasource import load_dataset
    from mlkeel.training import split_dataset

    loaded = registry.load(config.name, version)
    dataset = load_dataset(settings, config)
    recorded = loaded.info.data_hash
    if recorded != dataset.sha256:
        raise DataError(
            f"--exact needs the data version {version} was trained on (sha256 {recorded}), "
            f"but {dataset.source} now has sha256 {dataset.sha256}; restore that data or "
            "drop --exact"
        )
    train, _ = split_dataset(settings, config, dataset)
    reference = train[loaded.schema.names]
    records = [
        row for row in PredictionRepository(engine).window(
            config.name, since.timestamp(), until.timestamp())
        if row["version"] == version and row["variant"] == VARIANT
    ]  # fmt: skip
    current = pd.DataFrame([row["features"] for row in records], columns=reference.columns)
    current = current.astype({c: reference[c].dtype for c in reference.columns
                              if reference[c].dtype.kind in "fiu"}, errors="ignore")  # fmt: skip
    reference_predictions = np.asarray(loaded.model.predict(reference))
    current_predictions = np.asarray([row["prediction"] for row in records])
    return compare_exact(reference, current, reference_predictions, current_predictions,
                         config.drift)  # fmt: skip


def _previous(engine: Engine, model: str) -> MonitoringReport | None:
    query = (
        sa.select(reports.c.report)
        .where(reports.c.model == model)
        .order_by(reports.c.created.desc())
        .limit(1)
    )
    with engine.connect() as connection:
        found = connection.execute(query).scalar_one_or_none()
    return MonitoringReport.from_dict(found) if found else None


def _with_alerts(report: MonitoringReport, alerts: list[str]) -> MonitoringReport:
    from dataclasses import replace

    return replace(report, alerts=alerts)


def _store(engine: Engine, report: MonitoringReport, since: datetime, until: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(
            reports.insert().values(
                model=report.model,
                version=report.version,
                window_start=since.timestamp(),
                window_end=until.timestamp(),
                created=time.time(),
                status=report.status,
                report=report.to_dict(),
            )
        )


def window_ending(until: datetime | None, length: str) -> tuple[datetime, datetime]:
    """[until - length, until), `until` defaulting to the start of the current hour."""
    if until is None:
        now = datetime.now(UTC)
        until = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return until - parse_age(length), until


def reports_of(engine: Engine, model: str, limit: int = 30) -> list[dict[str, Any]]:
    """The newest stored reports of `model`, newest first (the dashboard's trend)."""
    query = (
        sa.select(reports.c.report)
        .where(reports.c.model == model)
        .order_by(reports.c.created.desc())
        .limit(limit)
    )
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).scalars()]
