"""The ``mlkeel`` command line: the composition root, which nothing else imports."""

from __future__ import annotations

import sys

import click
import typer
from rich.markup import escape

from mlkeel.cli import demo, models, project
from mlkeel.cli.console import err_console
from mlkeel.errors import MlkeelError

app = typer.Typer(
    name="mlkeel",
    help="Keep machine-learning models working after they ship.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for module in (project, models, demo):
    module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; a domain error prints one readable paragraph and exits non-zero."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="mlkeel", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except MlkeelError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
