"""``mlkeel up``, ``mlkeel jobs`` and ``mlkeel export``: the whole loop in one process, its
job record, and the same jobs handed to another scheduler."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mlkeel.cli.compose import ProjectOption, registry_for, settings_for
from mlkeel.cli.console import console, err_console
from mlkeel.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mlkeel.registry import Registry
    from mlkeel.scheduling.runner import JobRunner
    from mlkeel.scheduling.runs import JobRun
    from mlkeel.settings import Settings

# Where `export` writes by default, relative to the project (GitHub wants the repository's).
EXPORT_DIRS = {"airflow": "deploy/airflow", "github-actions": ".github/workflows",
               "cron": "deploy/cron", "systemd": "deploy/systemd"}  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("up")(up)
    app.command("jobs")(jobs)
    app.command("export")(export)


def up(
    project: ProjectOption = Path("."),
    host: Annotated[str | None, typer.Option(help="Interface to bind [serving.host].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [serving.port].")] = None,
    schedule: Annotated[
        bool, typer.Option("--schedule/--no-schedule", help="Run the jobs (when leader).")
    ] = True,
) -> None:
    """Serve every model and run its schedules (monitor, canary, retrain, retention); of
    several 'up' processes on one database, all serve and one, the leader, runs the jobs."""
    from mlkeel.cli.serve import _log_for
    from mlkeel.scheduling.process import serve_and_schedule
    from mlkeel.serving.app import create_app
    from mlkeel.serving.background import BackgroundServer

    settings = settings_for(project)
    if not settings.models:
        raise ConfigError(f"{settings.project_dir} defines no models to serve; add one first")
    _configure_logging()
    registry = registry_for(settings)
    engine = _engine(settings)
    runner = _runner(settings, registry, engine) if schedule else None
    app = create_app(settings, registry, prediction_log=_log_for(settings, registry))
    config = settings.serving
    server = BackgroundServer(app, host or config.host, config.port if port is None else port)

    def started() -> None:
        jobs = "no jobs (--no-schedule)" if runner is None else (
            f"{len(runner.specs)} job(s) when leader ({runner.lock.description})")  # fmt: skip
        err_console.print(f"mlkeel up: serving {', '.join(settings.models)} on {server.url}; "
                          f"{jobs}. Ctrl-C stops.", soft_wrap=True)  # fmt: skip

    try:
        serve_and_schedule(server, runner, lambda text: err_console.print(text), started)
    finally:
        engine.dispose()


def _engine(settings: Settings) -> Engine:
    from mlkeel.db import make_engine, upgrade

    engine = make_engine(settings.resolved_database_url)
    if engine.dialect.name == "sqlite":
        upgrade(engine)
    return engine


def _runner(settings: Settings, registry: Registry, engine: Engine) -> JobRunner:
    from mlkeel.scheduling.jobs import JobContext, plan
    from mlkeel.scheduling.leader import leader_lock
    from mlkeel.scheduling.runner import JobRunner
    from mlkeel.scheduling.runs import JobRunStore

    specs = plan(settings) if settings.schedules.enabled else []
    lock = leader_lock(engine, f"mlkeel up {settings.project}")
    context = JobContext(settings, registry, engine)
    return JobRunner(specs, context, JobRunStore(engine), lock, settings.schedules)


def _configure_logging() -> None:
    """mlkeel's narration (leadership, job failures) and APScheduler's warnings on stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name, level in (("mlkeel", logging.INFO), ("apscheduler", logging.WARNING)):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)
        logger.propagate = False


def jobs(
    project: ProjectOption = Path("."),
    model: Annotated[str | None, typer.Option(help="Only this model's jobs.")] = None,
    kind: Annotated[
        str | None, typer.Option(help="Only this kind: monitor, canary, retrain, retention.")
    ] = None,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1, help="How many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The newest job runs of 'mlkeel up': when, why, how they ended, what they found."""
    from mlkeel.scheduling.runs import JobRunStore

    settings = settings_for(project)
    engine = _engine(settings)
    try:
        runs = JobRunStore(engine).recent(limit, model=model, kind=kind)
    finally:
        engine.dispose()
    if as_json:
        console.out(json.dumps([run.to_dict() for run in runs], indent=2))
        return
    if not runs:
        console.print("No job runs yet: 'mlkeel up' records them as it runs the schedules.")
        return
    console.print(_runs_table(runs))


def _runs_table(runs: list[JobRun]) -> Table:
    table = Table(box=None, pad_edge=False)
    for column in ("id", "job", "trigger", "started (UTC)", "s", "outcome"):
        right = column in ("id", "seconds")
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    table.add_column("details", overflow="fold", ratio=1)
    colours = {"ok": "green", "failed": "red", "interrupted": "yellow", "skipped": "dim"}
    for run in runs:
        started = (run.to_dict()["started"] or "")[5:19].replace("T", " ")
        seconds = "" if run.seconds is None else f"{run.seconds:.1f}"
        colour = colours.get(run.outcome, "cyan")
        table.add_row(str(run.id), run.job, run.trigger, started, seconds,
                      f"[{colour}]{run.outcome}[/]", escape(_details(run)))  # fmt: skip
    return table


def _details(run: JobRun) -> str:
    if run.error:
        return run.error if len(run.error) <= 120 else run.error[:117] + "..."
    summary = {k: v for k, v in (run.summary or {}).items() if k != "v"}
    text = ", ".join(f"{key}={_short(value)}" for key, value in summary.items())
    return text if len(text) <= 120 else text[:117] + "..."


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"[{len(value)}]" if value else "[]"
    return str(value)


def export(
    target: Annotated[str, typer.Argument(help="airflow, github-actions, cron or systemd.")],
    project: ProjectOption = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="Folder to write into [deploy/TARGET; .github/workflows].")
    ] = None,
    mlkeel: Annotated[
        str | None,
        typer.Option(
            help="How the files invoke the CLI [this Python: 'PYTHON -m mlkeel'; "
            "GitHub: 'uv run mlkeel']."
        ),  # fmt: skip
    ] = None,
) -> None:
    """Write files that run the project's schedules through the CLI on another scheduler."""
    import shlex

    from mlkeel.scheduling.exports import TARGETS, export_plan, render
    from mlkeel.scheduling.jobs import plan

    if target not in TARGETS:
        raise ConfigError(f"cannot export to {target!r}; choose one of {', '.join(TARGETS)}")
    settings = settings_for(project)
    github = target == "github-actions"
    root = _repository_root(settings.project_dir) if github else settings.project_dir
    folder = out or root / EXPORT_DIRS[target]
    if mlkeel is not None:
        invocation = shlex.split(mlkeel)
    else:
        invocation = ["uv", "run", "mlkeel"] if github else [sys.executable, "-m", "mlkeel"]
    project_dir = (
        settings.project_dir.relative_to(root).as_posix() or "." if github
        else str(settings.project_dir)
    )  # fmt: skip
    files = render(target, export_plan(settings, plan(settings), invocation, project_dir))
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
        console.print(f"wrote {folder / name}")


def _repository_root(start: Path) -> Path:
    """The git repository holding `start` (GitHub reads workflows at its root), else `start`."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start
