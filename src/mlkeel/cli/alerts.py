"""``mlkeel alerts``: the alerts monitoring raised, open and resolved."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlkeel.cli.compose import ProjectOption, settings_for
from mlkeel.cli.console import console
from mlkeel.monitoring.alert_store import AlertStore
from mlkeel.monitoring.alerts import Alert, iso
from mlkeel.settings import Settings


def register(app: typer.Typer) -> None:
    app.command("alerts")(alerts)


def alerts(
    project: ProjectOption = Path("."),
    model: Annotated[str | None, typer.Option(help="Only this model's alerts.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only alerts still open.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List alerts, newest first: what fired, on what evidence, and whether it cleared."""
    settings = settings_for(project)
    name = settings.model(model).name if model is not None else None
    with open_store(settings) as store:
        found = store.list(name, open_only=open_only, limit=limit)
    if as_json:
        console.out(json.dumps([alert.to_dict() for alert in found], indent=2))
        return
    console.print(_table(found))
    if not found:
        what = "open alerts" if open_only else "alerts"
        console.print(f"No {what}{f' for {name}' if name else ''}.")


@contextmanager
def open_store(settings: Settings) -> Iterator[AlertStore]:
    """The alert store; SQLite is migrated on the spot, PostgreSQL by ``mlkeel db upgrade``."""
    from mlkeel.db import make_engine, upgrade

    engine = make_engine(settings.resolved_database_url)
    try:
        if engine.dialect.name == "sqlite":
            upgrade(engine)
        yield AlertStore(engine)
    finally:
        engine.dispose()


def _table(found: list[Alert]) -> Table:
    table = Table("id", "model", "rule", "subject", "status", "opened", "last seen", "message")
    for alert in found:
        status = "[red]open[/]" if alert.status == "open" else "[green]resolved[/]"
        table.add_row(
            str(alert.id),
            escape(alert.model),
            alert.rule,
            escape(alert.subject),
            status,
            _moment(alert.opened_at),
            _moment(alert.last_seen_at),
            escape(alert.message),
        )
    return table


def _moment(epoch: float) -> str:
    return (iso(epoch) or "").replace("+00:00", "Z")
