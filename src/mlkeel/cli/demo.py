"""``mlkeel demo``: the whole loop on bundled data, narrated; it grows with each capability."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel

from mlkeel.cli.compose import registry_for, settings_for
from mlkeel.cli.console import Steps, console

EXAMPLE = "breast_cancer"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Keep the demo project here instead of a temporary folder."),
    ] = None,
) -> None:
    """Show the loop end to end on scikit-learn's breast-cancer data, in a scratch project."""
    from mlkeel.scaffold import init_project
    from mlkeel.training import to_candidate, train_model

    scratch = directory is None
    root = Path(tempfile.mkdtemp(prefix="mlkeel-demo-")) if directory is None else directory
    try:
        console.print(Panel.fit(f"mlkeel demo: a model from notebook to registry, in {root}"))
        with Steps(console) as step:
            step("1. scaffold a project from scikit-learn's bundled breast-cancer data")
            init_project(root, EXAMPLE)
            settings = settings_for(root)
            config = settings.model(EXAMPLE)
            registry = registry_for(settings)

            step("2. train v1 and register it with its lineage")
            info = registry.register(to_candidate(train_model(settings, config)))

            step(f"3. promote v{info.version} to champion")
            registry.set_alias(info.name, "champion", info.version)
            info = registry.version(info.name, info.version)
        _summary(info.name, info.version, info.metrics, info.lineage, info.aliases)
    finally:
        if scratch:
            shutil.rmtree(root, ignore_errors=True)


def _summary(
    name: str,
    version: int,
    metrics: dict[str, float],
    lineage: dict[str, object],
    aliases: list[str],
) -> None:
    from rich.table import Table

    table = Table(title=f"{name} v{version} ({', '.join(aliases)})", show_header=False)
    for key, value in sorted(metrics.items()):
        table.add_row(key, f"{value:.4f}")
    for key in ("data_sha256", "data_rows", "code_commit", "code_dirty", "artifact_sha256"):
        table.add_row(key, str(lineage.get(key, "-")))
    console.print(table)
