"""``mlkeel promote``, ``approve``, ``rollback`` and ``history``: who serves, and why."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlkeel.cli.compose import ProjectOption, registry_for, settings_for
from mlkeel.cli.console import console
from mlkeel.db import make_engine, upgrade
from mlkeel.history import DeploymentEvent, HistoryRepository, served_periods
from mlkeel.settings import Settings

if TYPE_CHECKING:
    from mlkeel.retraining.gates import GateReport

ByOption = Annotated[
    str | None, typer.Option("--by", help="Who acts, for the history (default: your login).")
]
ReasonOption = Annotated[str | None, typer.Option(help="Why, for the history.")]


def register(app: typer.Typer) -> None:
    app.command("promote")(promote)
    app.command("approve")(approve)
    app.command("rollback")(rollback)
    app.command("history")(history)


@contextmanager
def open_history(settings: Settings) -> Iterator[HistoryRepository]:
    """The history tables; SQLite is migrated on the spot, PostgreSQL by ``mlkeel db upgrade``."""
    engine = make_engine(settings.resolved_database_url)
    try:
        if engine.dialect.name == "sqlite":
            upgrade(engine)
        yield HistoryRepository(engine)
    finally:
        engine.dispose()


def actor(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return "unknown"


def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to make champion.")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote even if the gate fails (needs --reason).")
    ] = False,
    reason: ReasonOption = None,
    by: ByOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Make VERSION the champion, if it passes the gate against the current champion."""
    from mlkeel.retraining.deploy import promote as promote_version

    settings = settings_for(project)
    registry = registry_for(settings)
    with open_history(settings) as repository:
        done = promote_version(
            settings, registry, repository, name, version,
            actor=actor(by), force=force, reason=reason,
        )  # fmt: skip
    if done.event is None:
        console.print(f"[bold]{name}[/] version {version} already is the champion")
        return
    if done.gate is not None:
        console.print(gate_table(done.gate))
    was = f" (was version {done.previous})" if done.previous is not None else ""
    forced = " [yellow](gate overridden with --force)[/]" if done.event.forced else ""
    console.print(f"[bold]{name}[/] champion is now version [bold]{version}[/]{was}{forced}")


def approve(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="A version a retrain left awaiting approval.")],
    reason: ReasonOption = None,
    by: ByOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Promote a version awaiting approval; the gate already passed when it was retrained."""
    from mlkeel.retraining.deploy import approve as approve_version

    settings = settings_for(project)
    with open_history(settings) as repository:
        event = approve_version(
            registry_for(settings), repository, name, version, actor=actor(by), reason=reason
        )
    console.print(
        f"[bold]{name}[/] champion is now version [bold]{event.version}[/] "
        f"(approved; was {_version(event.previous)})"
    )


def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    to: Annotated[
        int | None, typer.Option("--to", help="Version to return to (default: the previous).")
    ] = None,
    reason: ReasonOption = None,
    by: ByOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Make the previous champion (or --to VERSION) the champion again, at once, no gate."""
    from mlkeel.retraining.deploy import rollback as rollback_version

    settings = settings_for(project)
    with open_history(settings) as repository:
        event = rollback_version(
            registry_for(settings), repository, name, actor=actor(by), to=to, reason=reason
        )
    console.print(
        f"[bold]{name}[/] rolled back: champion is now version [bold]{event.version}[/] "
        f"(was {_version(event.previous)})"
    )


def history(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    runs: Annotated[bool, typer.Option("--runs", help="Retraining runs instead.")] = False,
    version: Annotated[
        int | None, typer.Option(help="One version's lineage and when it served.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the newest N entries.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    project: ProjectOption = Path("."),
) -> None:
    """The deployment timeline: what became champion, when, why, by whom, with which metrics."""
    settings = settings_for(project)
    with open_history(settings) as repository:
        if version is not None:
            _show_lineage(settings, repository, name, version, as_json)
        elif runs:
            _show_runs(repository, name, limit, as_json)
        else:
            _show_events(repository.events(name, limit), settings.model(name).metric, as_json)


def _show_events(events: list[DeploymentEvent], metric: str, as_json: bool) -> None:
    if as_json:
        console.out(json.dumps([event.to_dict() for event in events], indent=2))
        return
    if not events:
        console.print("No deployment events yet: promote a version or run 'mlkeel retrain'.")
        return
    columns = ("at (UTC)", "action", "alias", "version", "by", "trigger", metric, "gate", "reason")
    table = Table(*columns)
    for event in events:
        value = event.metrics.get(metric)
        table.add_row(
            event.at.replace("+00:00", ""),
            event.action + (" [yellow](forced)[/]" if event.forced else ""),
            event.alias,
            f"{'-' if event.previous is None else event.previous} → {event.version}",
            escape(event.actor),
            event.trigger or "-",
            "-" if value is None else f"{value:.4f}",
            _gate_cell(event.gate),
            escape(event.reason or "-"),
        )
    console.print(table)


def _show_runs(repository: HistoryRepository, name: str, limit: int | None, as_json: bool) -> None:
    found = repository.runs(name, limit)
    if as_json:
        console.out(json.dumps([run.to_dict() for run in found], indent=2))
        return
    table = Table("run", "started (UTC)", "trigger", "by", "outcome", "version", "steps", "error")
    for run in found:
        steps = " ".join(f"{s.name}{_MARK[s.status]}{s.seconds:.1f}s" for s in run.steps)
        table.add_row(
            run.id[:12],
            _iso(run.started),
            run.trigger,
            escape(run.actor),
            run.outcome + (f" at {run.failed_step}" if run.failed_step else ""),
            "-" if run.challenger_version is None else str(run.challenger_version),
            steps,
            escape((run.error or "-")[:120]),
        )
    console.print(table if found else f"No retraining runs of {name!r} yet.")


def _show_lineage(
    settings: Settings, repository: HistoryRepository, name: str, version: int, as_json: bool
) -> None:
    info = registry_for(settings).version(name, version)
    periods = [p for p in served_periods(repository.events(name)) if p.version == version]
    lineage = info.lineage
    document: dict[str, Any] = {
        "name": name,
        "version": version,
        "aliases": info.aliases,
        "data": {
            key: lineage.get(key)
            for key in (
                "data_sha256",
                "data_source",
                "data_rows",
                "data_time_range",
                "data_loaded_at",
                "data_snapshot",
                "production_rows",
            )
        },  # fmt: skip
        "code": {"commit": lineage.get("code_commit"), "dirty": lineage.get("code_dirty")},
        "params": lineage.get("params"),
        "metrics": info.metrics,
        "parent_version": lineage.get("parent_version"),
        "trigger": lineage.get("trigger"),
        "status": lineage.get("status"),
        "registered_at": info.created_at,
        "served": [
            {"deployed": _iso(p.since), "retired": None if p.until is None else _iso(p.until)}
            for p in periods
        ],
    }
    if as_json:
        console.out(json.dumps(document, indent=2, default=str))
        return
    table = Table("question", "answer", title=f"{name} version {version}", show_header=False)
    for key, value in document.items():
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        table.add_row(key, escape(shown))
    console.print(table)


def gate_table(gate: GateReport) -> Table:
    """The gate's checks, one row each."""
    table = Table("check", "result", "detail", title="gate")
    for check in gate.checks:
        result = (
            "[dim]skipped[/]"
            if check.skipped
            else "[green]pass[/]"
            if check.passed
            else "[red]FAIL[/]"
        )
        table.add_row(escape(check.name), result, escape(check.detail))
    return table


def _gate_cell(gate: Any) -> str:
    if not isinstance(gate, dict):
        return "-"
    checks = gate.get("checks", [])
    passed = sum(1 for check in checks if check.get("passed"))
    return f"{'pass' if gate.get('passed') else 'FAIL'} {passed}/{len(checks)}"


_MARK = {"ok": "✓", "failed": "✗", "skipped": "-"}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "")


def _version(version: int | None) -> str:
    return "no champion" if version is None else f"version {version}"
