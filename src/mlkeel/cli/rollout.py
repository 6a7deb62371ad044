"""``mlkeel rollout``: start a canary or shadow, judge it, end it.

``start`` moves the registry's ``canary`` / ``shadow`` alias (every server follows within its
``reload_seconds``); ``status`` analyses the canary and acts on the verdict (as the scheduled
check does; ``--dry-run`` only shows it) and exits 1 when the canary is or was rolled back;
``abort`` ends a canary and a shadow at once; ``watch`` runs the check every interval.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlkeel.cli.compose import ProjectOption, registry_for, settings_for
from mlkeel.cli.console import console, err_console
from mlkeel.errors import ConfigError
from mlkeel.settings import RolloutConfig, Settings

if TYPE_CHECKING:
    from mlkeel.prediction_log.repository import PredictionRepository
    from mlkeel.rollout import Rollout, Verdict

rollout_app = typer.Typer(help="Canary and shadow rollouts: start, status, abort, watch.")


def register(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")


NameArg = Annotated[str, typer.Argument(help="Model name.")]


@rollout_app.command("start")
def start(
    name: NameArg,
    version: Annotated[int, typer.Argument(help="The version to roll out.")],
    canary: Annotated[
        float | None,
        typer.Option("--canary", help="Route this percentage of requests to VERSION."),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option("--for", help="Canary window before promotion: 30m, 2h [rollout.duration]."),
    ] = None,
    shadow: Annotated[
        bool, typer.Option("--shadow", help="Send VERSION a copy of every request instead.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why, for the history.")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Start a canary (--canary PCT [--for DURATION]) or a shadow (--shadow) of VERSION."""
    if (canary is None) == (not shadow):
        raise ConfigError("choose one of --canary PCT or --shadow")
    if shadow and duration is not None:
        raise ConfigError("--for applies to a canary; a shadow runs until 'mlkeel rollout abort'")
    settings = settings_for(project)
    with rollout_for(settings) as (rollout, _):
        if shadow:
            rollout.start_shadow(name, version, reason)
            console.print(
                f"{name} version {version} is the shadow: it gets a copy of every request, "
                f"its outputs are only logged. End it with 'mlkeel rollout abort {name}'."
            )
            return
        state = rollout.start_canary(name, version, config_of(settings, name), canary, duration,
                                     reason)  # fmt: skip
    console.print(
        f"{name} version {version} is the canary: {state.percent:g}% of requests (sticky per "
        f"routing key) until {_clock(state.until)}, then promoted if healthy. Follow it with "
        f"'mlkeel rollout status {name}'."
    )


@rollout_app.command("status")
def status(
    name: NameArg,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the verdict; do not promote or roll back.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    project: ProjectOption = Path("."),
) -> None:
    """Analyse the canary against the champion, act on the verdict, print it with its
    evidence. Exit 0: healthy, waiting or promoted; 1: rolled back."""
    from mlkeel.rollout import check, shadow_version

    settings = settings_for(project)
    with rollout_for(settings) as (rollout, repository):
        verdict = check(settings, rollout, repository, name, act=not dry_run)
        shadow = shadow_version(rollout.registry, name)
        last = None if verdict else _last_canary_event(rollout, name)
    if as_json:
        document = {"model": name, "verdict": verdict.to_dict() if verdict else None,
                    "shadow": shadow, "last": last}  # fmt: skip
        console.out(json.dumps(document, indent=2))
    else:
        _show(name, verdict, shadow, last)
    rolled_back = (verdict and verdict.decision == "rollback") or (
        verdict is None and last is not None and last.get("outcome") == "rolled_back"
    )
    if rolled_back:
        raise typer.Exit(1)


@rollout_app.command("abort")
def abort(
    name: NameArg,
    reason: Annotated[str | None, typer.Option(help="Why, for the history.")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """End the model's canary and shadow now (servers stop within reload_seconds)."""
    settings = settings_for(project)
    with rollout_for(settings) as (rollout, _):
        ended = rollout.abort(name, reason)
    if not ended:
        console.print(f"{name} has no canary or shadow running.")
        return
    console.print(f"Ended {' and '.join(ended)} of {name}; the champion answers every request.")


@rollout_app.command("watch")
def watch(
    names: Annotated[list[str] | None, typer.Argument(help="Models (default: all).")] = None,
    every: Annotated[float, typer.Option(help="Seconds between checks.", min=0.1)] = 60.0,
    project: ProjectOption = Path("."),
) -> None:
    """Run the canary check every interval until Ctrl-C (what ``mlkeel up`` schedules)."""
    from mlkeel.rollout import check

    settings = settings_for(project)
    models = names or list(settings.models)
    with rollout_for(settings) as (rollout, repository):
        while True:
            for name in models:
                verdict = check(settings, rollout, repository, name)
                if verdict is not None:
                    err_console.print(f"{name} v{verdict.version}: {_headline(verdict)}")
            time.sleep(every)


# ---- helpers ---------------------------------------------------------------------------------
def config_of(settings: Settings, name: str) -> RolloutConfig:
    model = settings.models.get(name)
    return model.rollout if model is not None else RolloutConfig()


@contextmanager
def rollout_for(settings: Settings) -> Iterator[tuple[Rollout, PredictionRepository]]:
    """The rollout actions and the prediction log; SQLite is migrated on the spot."""
    from mlkeel.db import make_engine, upgrade
    from mlkeel.history import HistoryRepository
    from mlkeel.prediction_log.repository import PredictionRepository
    from mlkeel.rollout import Rollout

    engine = make_engine(settings.resolved_database_url)
    try:
        if engine.dialect.name == "sqlite":
            upgrade(engine)
        yield (
            Rollout(registry_for(settings), HistoryRepository(engine)),
            PredictionRepository(engine),
        )
    finally:
        engine.dispose()


def _last_canary_event(rollout: Rollout, name: str) -> dict[str, object] | None:
    for event in reversed(rollout.history.events(name, limit=50)):
        if event.trigger != "canary":
            continue
        if event.alias == "canary" and event.action == "rolled_back":
            return {"outcome": "rolled_back", "version": event.previous, "at": event.at,
                    "reason": event.reason}  # fmt: skip
        if event.alias == "champion":
            return {"outcome": "promoted", "version": event.version, "at": event.at,
                    "reason": event.reason}  # fmt: skip
        return None
    return None


def _headline(verdict: Verdict) -> str:
    return f"{verdict.decision}: {'; '.join(verdict.reasons)}"


def _show(
    name: str, verdict: Verdict | None, shadow: int | None, last: dict[str, object] | None
) -> None:
    if shadow is not None:
        console.print(f"{name}: shadow version {shadow} gets a copy of every request.")
    if verdict is None:
        if last is not None:
            console.print(
                f"{name}: no canary running; the last one (version {last['version']}) was "
                f"{str(last['outcome']).replace('_', ' ')} at {last['at']}: "
                f"{escape(str(last['reason']))}"
            )
        elif shadow is None:
            console.print(f"{name}: no canary or shadow running.")
        return
    colour = {"promote": "green", "wait": "yellow", "rollback": "red"}[verdict.decision]
    console.print(
        f"{name} canary version {verdict.version}: [bold {colour}]{verdict.decision}[/] — "
        f"{escape('; '.join(verdict.reasons))}"
    )
    evidence = verdict.evidence
    table = Table("", "champion", "canary")
    c, k = evidence.champion, evidence.canary
    table.add_row("version", str(c.version), str(k.version))
    table.add_row("requests", str(c.requests), str(k.requests))
    table.add_row("failed", _n(c.errors), _n(k.errors))
    table.add_row("error rate", _pct(c.error_rate), _pct(k.error_rate))
    table.add_row("latency p95 (ms)", _ms(c.latency_p95_ms), _ms(k.latency_p95_ms))
    metric = "MAE" if evidence.task == "regression" else "accuracy"
    table.add_row(f"{metric} (labelled)", _score(c.accuracy, c.labelled),
                  _score(k.accuracy, k.labelled))  # fmt: skip
    console.print(table)
    divergence = "n/a" if evidence.divergence is None else f"{evidence.divergence:.3f}"
    console.print(f"prediction divergence (Jensen-Shannon): {divergence}")


def _n(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _score(value: float | None, labelled: int) -> str:
    return "n/a" if value is None else f"{value:.3f} ({labelled})"


def _clock(moment: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
