"""``mlkeel monitor``: judge a window of traffic; exit 0 healthy, 1 alerting, 2 error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlkeel.cli.compose import ProjectOption, registry_for, settings_for
from mlkeel.cli.console import console, err_console
from mlkeel.durations import parse_moment
from mlkeel.errors import ConfigError, MlkeelError
from mlkeel.monitoring.report import MonitoringReport


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)


def monitor(
    project: ProjectOption = Path("."),
    model: Annotated[str | None, typer.Option(help="Only this model (default: all).")] = None,
    window: Annotated[str, typer.Option(help="Window length ending now: 1d, 6h, 7d.")] = "1d",
    since: Annotated[str | None, typer.Option(help="Window start (ISO time or age).")] = None,
    until: Annotated[str | None, typer.Option(help="Window end, exclusive.")] = None,
    exact: Annotated[
        bool, typer.Option("--exact", help="Recompute from raw records and training data.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Drift, data quality, traffic and live accuracy of each model over a window."""
    try:
        reports = _run(project, model, window, since, until, exact)
    except MlkeelError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        documents = [report.to_dict() for report in reports]
        console.out(json.dumps(documents[0] if len(documents) == 1 else documents, indent=2))
    else:
        for report in reports:
            _print(report)
    if any(report.alerts for report in reports):
        raise typer.Exit(1)


def _run(
    project: Path, model: str | None, window: str, since: str | None, until: str | None,
    exact: bool,
) -> list[MonitoringReport]:  # fmt: skip
    from mlkeel.db import make_engine, upgrade
    from mlkeel.monitoring.pipeline import monitor as run_monitor
    from mlkeel.monitoring.pipeline import window_ending

    settings = settings_for(project)
    names = [settings.model(model).name] if model else list(settings.models)
    end = parse_moment(until) if until else None
    if since:
        start, end = parse_moment(since), end or window_ending(None, window)[1]
    else:
        start, end = window_ending(end, window)
    if start >= end:
        raise ConfigError(
            f"the window is empty: {start.isoformat()} is not before {end.isoformat()}"
        )
    registry = registry_for(settings)
    engine = make_engine(settings.resolved_database_url)
    try:
        if engine.dialect.name == "sqlite":
            upgrade(engine)
        return [
            run_monitor(settings, registry, engine, name, start, end, exact=exact).report
            for name in names
        ]
    finally:
        engine.dispose()


def _print(report: MonitoringReport) -> None:
    status = "[red]ALERTING[/]" if report.alerts else "[green]healthy[/]"
    version = f"v{report.version}" if report.version is not None else "no version"
    console.print(
        f"[bold]{report.model}[/] {version} {status}  window {report.window[0]} → "
        f"{report.window[1]}  rows {report.rows:,}  drift share {report.drift_share:.0%}"
        + ("  (exact)" if report.exact else "")
    )
    if report.traffic is not None:
        t = report.traffic
        latency = ", ".join(f"{k} {v:.1f} ms" for k, v in t.latency_ms.items())
        console.print(
            f"  traffic: {t.requests:,} requests, error rate {t.error_rate:.2%}; {latency}"
        )
    if report.performance is not None:
        p = report.performance
        live = ", ".join(
            f"{k} {v:.4f} (trained {p.baseline.get(k, float('nan')):.4f})"
            for k, v in p.metrics.items()
        )
        console.print(f"  live performance on {p.labelled:,} labelled rows: {live}")
    table = Table("feature", "type", "method", "score", "threshold", "p-value", "psi",
                  "missing", "drifted")  # fmt: skip
    rows = [*report.features, *([report.prediction_drift] if report.prediction_drift else [])]
    for feature in rows:
        table.add_row(
            feature.name, feature.type, feature.method, f"{feature.score:.3f}",
            f"{feature.threshold:.3f}",
            "-" if feature.p_value is None else f"{feature.p_value:.3g}",
            "-" if feature.psi is None else f"{feature.psi:.3f}",
            f"{feature.missing_rate:.1%}",
            "[red]yes[/]" if feature.drifted else "no",
        )  # fmt: skip
    if rows:
        console.print(table)
    for alert in report.alerts:
        console.print(f"  [red]alert:[/] {escape(alert)}")
