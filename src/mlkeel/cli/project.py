"""``mlkeel init``: scaffold a project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlkeel.cli.console import console


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    example: Annotated[
        str | None,
        typer.Option(help="Start from a bundled data set: breast_cancer or diabetes."),
    ] = None,
) -> None:
    """Create a project: mlkeel.toml, train.py and (with --example) its data."""
    from mlkeel.scaffold import init_project

    written = init_project(directory, example)
    console.print(f"Created project in [bold]{directory}[/]:")
    for path in written:
        console.print(f"  {path.relative_to(directory)}")
    console.print(f"Next: [bold]cd {directory} && mlkeel train[/]")
