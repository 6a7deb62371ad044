"""``mlkeel dashboard``: serve the dashboard alone; ``mlkeel report``: one self-contained HTML
file of a model's monitoring, to attach to a ticket or an e-mail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlkeel.cli.compose import ProjectOption, registry_for, settings_for
from mlkeel.cli.console import err_console
from mlkeel.errors import ConfigError

WINDOW_HELP = "Window length ending now: 1d, 7d, 30d."


def register(app: typer.Typer) -> None:
    app.command("dashboard")(dashboard)
    app.command("report")(report)


def dashboard(
    project: ProjectOption = Path("."),
    host: Annotated[str | None, typer.Option(help="Interface to bind [serving.host].")] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8050,
) -> None:
    """Serve the dashboard (without the models) at http://HOST:PORT/dashboard."""
    import uvicorn

    from mlkeel.cli.serve import log_config
    from mlkeel.dashboard.routes import DashboardSource, create_dashboard_app
    from mlkeel.db import make_engine, upgrade

    settings = settings_for(project)
    engine = make_engine(settings.resolved_database_url)
    if engine.dialect.name == "sqlite":
        upgrade(engine)
    app = create_dashboard_app(DashboardSource(settings, registry_for(settings), engine))
    host = host or settings.serving.host
    err_console.print(f"Dashboard on http://{host}:{port}/dashboard (Ctrl-C stops)")
    try:
        uvicorn.run(app, host=host, port=port, log_config=log_config())
    finally:
        engine.dispose()


def report(
    project: ProjectOption = Path("."),
    model: Annotated[str | None, typer.Option(help="The model (default: the only one).")] = None,
    window: Annotated[str, typer.Option(help=WINDOW_HELP)] = "7d",
    out: Annotated[Path, typer.Option(help="The HTML file to write.", dir_okay=False)] = Path(
        "report.html"
    ),
) -> None:
    """Write a model's monitoring (traffic, drift, distributions, alerts) as one HTML file
    that opens offline: CSS and charts inline, no script."""
    from mlkeel.dashboard.report import write_report
    from mlkeel.db import make_engine, upgrade
    from mlkeel.durations import parse_age

    settings = settings_for(project)
    name = settings.model(model).name
    if parse_age(window).total_seconds() < 3600:
        raise ConfigError(f"--window {window!r} is shorter than an hour, the summaries' grain")
    engine = make_engine(settings.resolved_database_url)
    try:
        if engine.dialect.name == "sqlite":
            upgrade(engine)
        size = write_report(settings, registry_for(settings), engine, name, window, out)
    finally:
        engine.dispose()
    err_console.print(f"Wrote {out} ({size / 1024:.0f} KiB): {name}, last {window}")
