"""Each page: read (queries.py), draw (charts.py), fill its template (render.py).

Every function returns the page's HTML. ``monitoring_report`` is the same monitoring page as
one self-contained file (``mlkeel report``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from mlkeel.dashboard import charts
from mlkeel.dashboard.charts import Bins, Mark, Period, Series
from mlkeel.dashboard.queries import ALIASES, Hour, JobRun, Reader, StoredReport, Window
from mlkeel.dashboard.render import render
from mlkeel.errors import ModelNotFoundError
from mlkeel.monitoring.profile import CategoricalProfile, FeatureProfile, NumericProfile
from mlkeel.monitoring.summaries import (
    CategoricalSummary,
    ColumnSummary,
    NumericSummary,
    edges_fingerprint,
)

HOUR = 3600
WINDOWS = ("1d", "7d", "30d")
VARIANT_CSS = {"champion": "s0", "canary": "s1", "shadow": "s2"}


@dataclass(frozen=True)
class FeatureView:
    """One feature (or the prediction) on the monitoring page."""

    name: str
    kind: str
    drift: dict[str, Any] | None  # the latest report's verdict for it
    chart: Markup
    trend: Markup
    note: str


# ---- overview ----------------------------------------------------------------------------
def overview(reader: Reader, now: float | None = None) -> str:
    now = time.time() if now is None else now
    names = reader.model_names()
    latest = reader.latest_reports(names) if names else {}
    open_alerts = reader.alerts(open_only=True, limit=500)
    job_runs = reader.job_runs(limit=200)
    cards = []
    for name in names:
        versions = reader.versions(name)
        report = latest.get(name)
        alerts = [alert for alert in open_alerts if alert.model == name]
        day = reader.window(name, now - 24 * HOUR, now, merge=False)
        volume = [(float(h.hour), float(sum(h.rows.values()))) for h in day.hours]
        history = reader.history(name, runs=1)
        cards.append({
            "name": name,
            "aliases": {alias: versions.aliases.get(alias) for alias in ALIASES},
            "latest": versions.versions[0].version if versions.versions else None,
            "problem": versions.problem,
            "status": _status(report, bool(alerts)),
            "report": None if report is None else report.document,
            "report_created": None if report is None else report.created,
            "drifted": _drifted(report),
            "alerts": alerts,
            "rows_24h": sum(v for _, v in volume),
            "volume": charts.sparkline(volume, title=f"{name}: predictions per hour, last 24 h"),
            "last_run": history.runs[0] if history.runs else None,
            "jobs": _last_per_job([r for r in job_runs or [] if r.model == name]),
        })  # fmt: skip
    return render("overview.html", page="overview", cards=cards, open_alerts=open_alerts,
                  reader=reader, now=now)  # fmt: skip


def _last_per_job(runs: Sequence[JobRun]) -> list[JobRun]:
    """The newest run of each job (`runs` newest first)."""
    newest: dict[str, JobRun] = {}
    for run in runs:
        newest.setdefault(run.job, run)
    return sorted(newest.values(), key=lambda run: run.job)


def _status(report: StoredReport | None, alerting: bool) -> str:
    if alerting:
        return "alerting"
    if report is None:
        return "no data"
    return "drifting" if _drifted(report) or report.document.get("dataset_drift") else "healthy"


def _drifted(report: StoredReport | None) -> list[str]:
    if report is None:
        return []
    return [f["name"] for f in report.document.get("features", []) if f.get("drifted")]


# ---- model -------------------------------------------------------------------------------
def model(reader: Reader, name: str, now: float | None = None) -> str:
    now = time.time() if now is None else now
    _known(reader, name)
    versions = reader.versions(name)
    history = reader.history(name, runs=20)
    periods = [Period(p.version, p.since, p.until) for p in history.periods]
    marks = [
        Mark(e.ts, e.version, e.action, f"{charts.when(e.ts)}: {e.action} v{e.version} "
             f"({e.alias}) by {e.actor}" + (f": {e.reason}" if e.reason else ""))
        for e in history.deployments
    ]  # fmt: skip
    metric_names = sorted({key for info in versions.versions for key in info.metrics})
    return render(
        "model.html", page="model", model=name, versions=versions, history=history,
        timeline=charts.timeline(periods, marks, now=now), metric_names=metric_names,
        config=reader.settings.models.get(name), now=now,
    )  # fmt: skip


def _known(reader: Reader, name: str) -> None:
    names = reader.model_names()
    if name not in names:
        raise ModelNotFoundError(
            f"no model {name!r} in this project; models: {', '.join(names) or 'none'}"
        )


# ---- monitoring --------------------------------------------------------------------------
def monitoring(reader: Reader, name: str, window: str, now: float | None = None) -> str:
    return render("monitoring.html", **_monitoring_context(reader, name, window, now))


def monitoring_report(reader: Reader, name: str, window: str, now: float | None = None) -> str:
    """The monitoring page of `name` as one self-contained HTML file: CSS inline, charts as
    inline SVG, no links out, no script."""
    context = _monitoring_context(reader, name, window, now)
    context["versions"] = reader.versions(name)
    context["alerts"] = reader.alerts(name, limit=50)
    return render("report.html", **context, inline=True)


def _monitoring_context(
    reader: Reader, name: str, window: str, now: float | None
) -> dict[str, Any]:
    from mlkeel.durations import parse_age

    now = time.time() if now is None else now
    _known(reader, name)
    length = parse_age(window).total_seconds()
    until = (now // HOUR + 1) * HOUR  # through the current hour
    since = until - math.ceil(length / HOUR) * HOUR
    found = reader.window(name, since, until)
    stored = reader.reports(name, since, until)
    config = reader.settings.models.get(name)
    span = (since, until)
    features, prediction = _features(found, stored)
    return {
        "page": "monitoring", "model": name, "window": window, "windows": WINDOWS,
        "since": since, "until": until, "now": now, "found": found,
        "rows": sum(sum(h.rows.values()) for h in found.hours),
        "requests": sum(h.requests for h in found.hours),
        "errors": sum(h.errors for h in found.hours),
        "traffic": _traffic_charts(found.hours, span, config),
        "features": features, "prediction": prediction,
        "latest": stored[-1].document if stored else None,
        "reports": stored,
        "drift_share": _drift_share_chart(stored, span, config),
        "accuracy": _accuracy_chart(stored, span, config.metric if config else None),
    }  # fmt: skip


def _traffic_charts(hours: Sequence[Hour], span: tuple[float, float], config: Any) -> list[Markup]:
    grid = range(int(span[0]), int(span[1]), HOUR)
    by_hour = {h.hour: h for h in hours}
    variants = sorted({v for h in hours for v in h.rows}, key=lambda v: (v != "champion", v))
    volume = [
        Series(variant, [(t, float(by_hour[t].rows.get(variant, 0)) if t in by_hour else 0.0)
                         for t in grid], VARIANT_CSS.get(variant, "s3"))
        for variant in variants or ["champion"]
    ]  # fmt: skip

    def latency(level: str) -> list[tuple[float, float | None]]:
        return [(t, by_hour[t].latency_ms.get(level) if t in by_hour else None) for t in grid]

    errors = [(float(t), by_hour[t].error_rate if t in by_hour else None) for t in grid]
    limit = config.alerts.error_rate if config is not None else None
    return [
        charts.time_chart(volume, title="Predictions per hour (rows)", span=span),
        charts.time_chart(
            [Series("p50", latency("p50"), "s0"), Series("p99", latency("p99"), "s1")],
            title="Latency per hour", span=span, unit="ms",
        ),
        charts.time_chart(
            [Series("error rate", errors, "s4",
                    [e is not None and limit is not None and e > limit for _, e in errors])],
            title="Error rate per hour (failed requests / requests)", span=span, share=True,
            threshold=limit,
        ),
    ]  # fmt: skip


def _drift_share_chart(
    stored: Sequence[StoredReport], span: tuple[float, float], config: Any
) -> Markup:
    points = [(r.window_end, float(r.document.get("drift_share", 0.0))) for r in stored]
    marked = [bool(r.document.get("dataset_drift")) for r in stored]
    return charts.time_chart(
        [Series("share of features drifted", points, "s0", marked)],
        title="Drift over time (each stored monitoring report)", span=span, share=True,
        threshold=config.drift.drift_share if config is not None else None,
    )  # fmt: skip


def _accuracy_chart(
    stored: Sequence[StoredReport], span: tuple[float, float], metric: str | None
) -> Markup | None:
    live: list[tuple[float, float | None]] = []
    trained: list[tuple[float, float | None]] = []
    for report in stored:
        performance = report.document.get("performance") or {}
        metrics = performance.get("metrics") or {}
        key = metric if metric in metrics else next(iter(sorted(metrics)), None)
        if key is None:
            continue
        metric = key
        live.append((report.window_end, float(metrics[key])))
        baseline = (performance.get("baseline") or {}).get(key)
        trained.append((report.window_end, None if baseline is None else float(baseline)))
    if not live:
        return None
    return charts.time_chart(
        [Series(f"live {metric}", live, "s0"), Series(f"{metric} at training", trained, "s5")],
        title=f"Live {metric} on labelled predictions",
        span=span,
    )


def _features(
    found: Window, stored: Sequence[StoredReport]
) -> tuple[list[FeatureView], FeatureView | None]:
    latest = stored[-1].document if stored else {}
    verdicts = {f["name"]: f for f in latest.get("features", [])}
    trends: dict[str, list[tuple[float, float | None, bool]]] = {}
    for report in stored:
        for feature in report.document.get("features", []):
            trends.setdefault(feature["name"], []).append(
                (report.window_end, float(feature["score"]), bool(feature["drifted"]))
            )
    merged, baseline = found.merged, found.baseline
    states: dict[str, ColumnSummary] = merged.features if merged is not None else {}
    profiles: dict[str, FeatureProfile] = dict(baseline.features) if baseline is not None else {}
    names = list(dict.fromkeys([*profiles, *states, *verdicts]))
    views = [
        _feature(name, profiles.get(name), states.get(name), verdicts.get(name),
                 trends.get(name, []))
        for name in names
    ]  # fmt: skip
    views.sort(key=lambda v: (not (v.drift or {}).get("drifted"), -(v.drift or {}).get("score", 0)))
    prediction = None
    if baseline is not None or (merged is not None and merged.prediction is not None):
        prediction = _feature(
            "prediction", baseline.prediction if baseline is not None else None,
            merged.prediction if merged is not None else None,
            latest.get("prediction_drift"), [],
        )  # fmt: skip
    return views, prediction


def _feature(
    name: str,
    profile: FeatureProfile | None,
    state: ColumnSummary | None,
    drift: dict[str, Any] | None,
    trend: list[tuple[float, float | None, bool]],
) -> FeatureView:
    kind = profile.kind if profile is not None else state.kind if state is not None else "?"
    threshold = None if drift is None else drift.get("threshold")
    spark = charts.sparkline(
        [(t, v) for t, v, _ in trend], threshold=threshold, marked=[m for _, _, m in trend],
        title=f"{name}: drift score per report",
    )  # fmt: skip
    chart, note = _distribution(name, profile, state)
    return FeatureView(name, kind, drift, chart, spark, note)


def _distribution(
    name: str, profile: FeatureProfile | None, state: ColumnSummary | None
) -> tuple[Markup, str]:
    if isinstance(profile, NumericProfile):
        edges = profile.monitoring_edges
        current = None
        note = "no traffic in this window"
        if isinstance(state, NumericSummary) and state.count:
            note = _range_note(state)
            if state.edges_id == edges_fingerprint(edges) and state.bins is not None:
                current = state.bins.tolist()
            else:
                note = "the window's counts are on other bins than this baseline's"
        bins = Bins(edges, profile.monitoring_counts, current)
        chart = charts.histogram(bins, title=name, low=profile.min, high=profile.max)
        return chart, note
    if isinstance(profile, CategoricalProfile):
        counts = state.counts if isinstance(state, CategoricalSummary) else {}
        categories = list(dict.fromkeys([*profile.frequencies, *counts]))
        base = [float(profile.frequencies.get(c, 0)) for c in categories]
        now = [float(counts.get(c, 0)) for c in categories]
        other = state.other if isinstance(state, CategoricalSummary) else 0
        if profile.other or other:
            categories.append("(untracked)")
            base.append(float(profile.other))
            now.append(float(other))
        note = ""
        if isinstance(state, CategoricalSummary) and state.count:
            note = f"{charts.percent(state.unseen / state.count)} unseen in training"
        chart = charts.category_bars(categories, base, now if counts or other else None,
                                     title=name)  # fmt: skip
        return chart, note or "no traffic in this window"
    return Markup('<p class="muted">no baseline for this version</p>'), ""


def _range_note(state: NumericSummary) -> str:
    count = state.count or 1
    parts = [f"mean {charts.number(state.mean)}"]
    if state.std is not None:
        parts.append(f"std {charts.number(state.std)}")
    if state.below or state.above:
        parts.append(
            f"{charts.percent(state.below / count)} below and {charts.percent(state.above / count)}"
            " above the training range"
        )
    if state.missing:
        parts.append(f"{charts.percent(state.missing / (state.count + state.missing))} missing")
    return ", ".join(parts)


# ---- alerts and jobs ---------------------------------------------------------------------
def alerts(reader: Reader, model: str | None, status: str) -> str:
    if model is not None:
        _known(reader, model)
    found = reader.alerts(model, open_only=status == "open", limit=300)
    return render("alerts.html", page="alerts", alerts=found, model=model, status=status,
                  models=reader.model_names())  # fmt: skip


def jobs(reader: Reader) -> str:
    runs = sorted(
        (run for name in reader.model_names() for run in reader.history(name, runs=20).runs),
        key=lambda run: -run.started,
    )
    return render("jobs.html", page="jobs", runs=runs[:100], reports=reader.recent_reports(50),
                  job_runs=reader.job_runs(limit=100))  # fmt: skip
