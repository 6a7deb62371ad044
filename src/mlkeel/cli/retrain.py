"""``mlkeel retrain``: fresh data, train, evaluate against the champion, gate, deploy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

import typer

from mlkeel.cli.compose import ProjectOption, registry_for, settings_for
from mlkeel.cli.console import Steps, console
from mlkeel.cli.deploy import ByOption, actor, gate_table, open_history
from mlkeel.errors import GateFailedError

TRIGGER_HELP = "What started this run, for the audit trail: manual, schedule, drift, performance."


def register(app: typer.Typer) -> None:
    app.command("retrain")(retrain)


def retrain(
    model: Annotated[
        str | None, typer.Option(help="Model to retrain (default: the only one).")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the audit trail.")] = None,
    trigger: Annotated[str, typer.Option(help=TRIGGER_HELP)] = "manual",
    by: ByOption = None,
    project: ProjectOption = Path("."),
) -> None:
    """Retrain a model and deploy it by its policy if it passes the gate (exit 1 if not)."""
    from mlkeel.retraining.pipeline import Trigger
    from mlkeel.retraining.pipeline import retrain as run_pipeline

    settings = settings_for(project)
    config = settings.model(model)
    registry = registry_for(settings)
    with open_history(settings) as history, Steps() as step:
        result = run_pipeline(
            settings, registry, history, config.name,
            actor=actor(by), trigger=cast(Trigger, trigger), reason=reason,
            announce=step,
        )  # fmt: skip
        if result.gate is not None and not result.gate.passed:
            console.print(gate_table(result.gate))
            raise GateFailedError(
                f"challenger version {result.version} of {config.name!r} failed the gate: "
                f"{result.gate.summary()}. The champion is unchanged "
                f"({_version(result.run.parent_version)}); the version stays registered as "
                f"rejected: inspect it with 'mlkeel history {config.name} --version "
                f"{result.version}', override with 'mlkeel promote {config.name} "
                f"{result.version} --force --reason TEXT'."
            )
    if result.gate is not None:
        console.print(gate_table(result.gate))
    was = _version(result.run.parent_version)
    if result.outcome == "promoted":
        console.print(
            f"[bold]{config.name}[/] champion is now version [bold]{result.version}[/] "
            f"(was {was}); run {result.run.id[:12]}"
        )
    else:
        console.print(
            f"[bold]{config.name}[/] version [bold]{result.version}[/] passed the gate and "
            f"awaits approval: [bold]mlkeel approve {config.name} {result.version}[/]"
        )


def _version(version: int | None) -> str:
    return "no champion" if version is None else f"version {version}"
