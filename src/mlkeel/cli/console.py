"""The two Rich consoles: results to stdout, narration and errors to stderr."""

from __future__ import annotations

import time

from rich.console import Console

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class Steps:
    """Narrates a pipeline: a spinner on the current step, a tick and its time when it ends.

    Call the instance with each step's name as it starts; leaving the block ends the last one.
    """

    def __init__(self, target: Console = err_console) -> None:
        self._console = target
        self._status = target.status("starting")
        self._current: str | None = None
        self._started = 0.0

    def __enter__(self) -> Steps:
        self._status.__enter__()
        return self

    def __call__(self, name: str) -> None:
        self._finish()
        self._current, self._started = name, time.perf_counter()
        self._status.update(f"{name}…")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if error is None:
            self._finish()
        elif self._current is not None:
            self._console.print(f"[red]✗[/] {self._current}")
        self._status.__exit__(None, None, None)

    def _finish(self) -> None:
        if self._current is not None:
            elapsed = time.perf_counter() - self._started
            self._console.print(f"[green]✓[/] {self._current} [dim]{elapsed:.2f} s[/]")
        self._current = None
