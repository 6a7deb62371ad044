"""The ``mlkeel`` command line: the composition root, which nothing else imports."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from mlkeel.cli import (
    alerts,
    dashboard,
    demo,
    deploy,
    loadtest,
    logs,
    models,
    monitor,
    project,
    retrain,
    rollout,
    serve,
    up,
)
from mlkeel.cli.console import err_console
from mlkeel.errors import MlkeelError

app = typer.Typer(
    name="mlkeel",
    help="Keep machine-learning models working after they ship.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# In the order `mlkeel --help` lists them; one per line, so adding one is a one-line change.
COMMANDS = (
    project,
    models,
    deploy,
    retrain,
    rollout,
    serve,
    up,
    monitor,
    alerts,
    dashboard,
    logs,
    loadtest,
    demo,
)
for module in COMMANDS:
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a domain error prints one readable paragraph and exits non-zero.

    Usage errors (exit 2) and Ctrl-C are Typer's own standalone handling.
    """
    try:
        app(args=argv, prog_name="mlkeel")
    except MlkeelError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
