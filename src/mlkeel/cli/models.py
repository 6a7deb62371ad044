"""``mlkeel train``, ``models`` and ``ui``: the model registry from the shell."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlkeel.cli.compose import ProjectOption, registry_for, settings_for
from mlkeel.cli.console import Steps, console, err_console
from mlkeel.errors import ConfigError
from mlkeel.registry import Registry, VersionInfo

LIST_KEYS = ("version", "aliases", "created_at", "metrics", "data_hash", "code_commit", "run_id")


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("models")(models)
    app.command("ui")(ui)


def train(
    project: ProjectOption = Path("."),
    model: Annotated[
        str | None, typer.Option(help="Model to train (default: the only one).")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Override a training parameter: key=value.")
    ] = None,
) -> None:
    """Train a model, evaluate it, and register a new version with its lineage."""
    from mlkeel.training import to_candidate, train_model

    settings = settings_for(project)
    config = settings.model(model)
    overrides = parse_params(param or [])
    started = time.perf_counter()
    with Steps() as step:
        trained = train_model(settings, config, overrides, step)
        step("registering")
        info = registry_for(settings).register(to_candidate(trained))
    console.print(
        f"Registered [bold]{info.name}[/] version [bold]{info.version}[/] "
        f"in {time.perf_counter() - started:.1f} s "
        f"({trained.train_rows} training rows, {trained.test_rows} test rows, "
        f"data sha256 {trained.dataset.sha256[:12]})"
    )
    console.print(_metrics_table(info, config.metric))
    console.print(f"Promote it with: [bold]mlkeel promote {info.name} {info.version}[/]")


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are TOML literals (``0.5``, ``true``, ``"x"``) or strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {pair!r} must be key=value, e.g. --param C=0.5")
        try:
            params[key.strip()] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            params[key.strip()] = text
    return params


def models(
    name: Annotated[str | None, typer.Argument(help="Model name; omit to list all.")] = None,
    version: Annotated[int | None, typer.Option(help="Show one version's whole lineage.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    project: ProjectOption = Path("."),
) -> None:
    """List registered models, their versions, or one version's lineage."""
    registry = registry_for(settings_for(project))
    if name is None:
        if version is not None:
            raise ConfigError("--version needs a model name: mlkeel models NAME --version N")
        _list_models(registry, as_json)
    elif version is None:
        _list_versions(registry, name, as_json)
    else:
        _show_version(registry.version(name, version), as_json)


def _list_models(registry: Registry, as_json: bool) -> None:
    rows: list[dict[str, Any]] = []
    for name in registry.names():
        versions = registry.versions(name)
        aliases = {alias: v.version for v in versions for alias in v.aliases}
        rows.append({"name": name, "latest": versions[0].version, "aliases": aliases})
    if as_json:
        console.out(json.dumps(rows, indent=2))
        return
    table = Table("model", "latest", "aliases")
    for row in rows:
        shown = ", ".join(f"{a}=v{v}" for a, v in sorted(row["aliases"].items())) or "-"
        table.add_row(row["name"], str(row["latest"]), shown)
    console.print(table if rows else "No registered models yet: run 'mlkeel train'.")


def _list_versions(registry: Registry, name: str, as_json: bool) -> None:
    versions = registry.versions(name)
    if as_json:
        console.out(json.dumps([_listing(v) for v in versions], indent=2))
        return
    table = Table(
        "version", "aliases", "created_at", "metrics", "data_hash", "code_commit", "run_id"
    )
    for v in versions:
        metrics = ", ".join(f"{k}={val:.4g}" for k, val in sorted(v.metrics.items()))
        table.add_row(
            str(v.version),
            ", ".join(v.aliases) or "-",
            v.created_at,
            metrics,
            (v.data_hash or "-")[:12],
            (v.code_commit or "-")[:10],
            (v.run_id or "-")[:12],
        )
    console.print(table)


def _listing(info: VersionInfo) -> dict[str, Any]:
    return {key: getattr(info, key) for key in LIST_KEYS}


def _show_version(info: VersionInfo, as_json: bool) -> None:
    if as_json:
        document = {"name": info.name, **_listing(info), "lineage": info.lineage}
        console.out(json.dumps(document, indent=2))
        return
    table = Table("field", "value", title=f"{info.name} version {info.version}", show_header=False)
    for key, value in {"name": info.name, **_listing(info), **info.lineage}.items():
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        table.add_row(key, shown)
    console.print(table)


def _metrics_table(info: VersionInfo, primary: str) -> Table:
    table = Table("metric", "test value")
    for key, value in sorted(info.metrics.items()):
        label = f"[bold]{key}[/] (primary)" if key == primary else key
        table.add_row(label, f"{value:.4f}")
    return table


def ui(
    project: ProjectOption = Path("."),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
) -> None:
    """Open MLflow's UI on the project's store: runs, metrics, versions, lineage tags."""
    settings = settings_for(project)
    registry = registry_for(settings)
    command = [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", settings.resolved_tracking_uri,
        "--host", host, "--port", str(port),
    ]  # fmt: skip
    if registry.artifact_location is not None:
        command += ["--default-artifact-root", registry.artifact_location]
    err_console.print(f"MLflow UI for {settings.project} at http://{host}:{port} (Ctrl-C stops)")
    sys.exit(_run_group(command))


def _run_group(command: list[str]) -> int:
    """Run `command` in its own process group and take the whole group down with us.

    MLflow's UI is a tree (its CLI, uvicorn, job runners, workers): stopping only the direct
    child on Ctrl-C or SIGTERM left the rest running, orphaned.
    """
    process = subprocess.Popen(command, start_new_session=True)  # noqa: S603 - our own args
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return process.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_group(process)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; its group may linger a moment: one more pass kills stragglers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return
