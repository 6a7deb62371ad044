"""``mlkeel serve``: answer predictions over HTTP, following each model's champion."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlkeel.cli.compose import ProjectOption, registry_for, settings_for
from mlkeel.cli.console import err_console
from mlkeel.errors import ConfigError, ModelNotFoundError
from mlkeel.settings import Settings, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlkeel.prediction_log.runtime import PredictionLog
    from mlkeel.registry import Registry
    from mlkeel.serving.model_slot import ModelSpec

# How `serve` hands its choices to worker processes, which build the app with `app_from_env`.
PROJECT_VARIABLE = "MLKEEL_PROJECT"
MODELS_VARIABLE = "MLKEEL_SERVE_MODELS"
FACTORY = "mlkeel.cli.serve:app_from_env"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    project: ProjectOption = Path("."),
    host: Annotated[str | None, typer.Option(help="Interface to bind [serving.host].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [serving.port].")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes [serving.workers].")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(help="Serve only this model: NAME (its champion) or NAME@VERSION (pinned)."),
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Serve each model's newest version, not its champion.")
    ] = False,
) -> None:
    """Serve the project's models over HTTP, swapping in each new champion as it is promoted."""
    import uvicorn

    from mlkeel.serving.arenas import share_one_arena
    from mlkeel.serving.model_slot import ModelSpec

    share_one_arena()  # before the server's threads start

    settings = settings_for(project)
    names = model or list(settings.models)
    if not names:
        raise ConfigError(f"{settings.project_dir} defines no models to serve; add one first")
    specs = [ModelSpec.parse(text, latest) for text in names]
    registry = registry_for(settings)
    for spec in specs:
        _announce(registry, spec)
    config = settings.serving
    host = host or config.host
    port = config.port if port is None else port
    workers = workers or config.workers
    err_console.print(f"Serving on http://{host}:{port} with {workers} worker(s) (Ctrl-C stops)")
    if workers == 1:
        from mlkeel.serving.app import create_app

        prediction_log = _log_for(settings, registry)
        app = create_app(settings, registry, models=specs, prediction_log=prediction_log)
        uvicorn.run(
            app, host=host, port=port, log_config=log_config(), access_log=config.access_log
        )
        return
    import os

    os.environ[PROJECT_VARIABLE] = str(settings.project_dir)
    os.environ[MODELS_VARIABLE] = json.dumps([vars(spec) for spec in specs])
    uvicorn.run(
        FACTORY, factory=True, host=host, port=port, workers=workers, log_config=log_config(),
        access_log=config.access_log,
    )  # fmt: skip


def _announce(registry: Registry, spec: ModelSpec) -> None:
    """Check that `spec` points at a version now, so a bad start fails here, with advice."""
    try:
        info = spec.target(registry)
    except ModelNotFoundError:
        if spec.version is not None or spec.latest:
            raise
        versions = ", ".join(str(v.version) for v in registry.versions(spec.name))
        raise ModelNotFoundError(
            f"cannot serve {spec.name!r}: it has no champion version yet, and the server only "
            f"answers with a version that was deliberately promoted. Promote one with 'mlkeel "
            f"promote {spec.name} VERSION' (registered versions: {versions}), or serve the "
            "newest version anyway with 'mlkeel serve --latest'."
        ) from None
    note = ", not the champion (--latest)" if spec.latest else ""
    err_console.print(f"{spec.name}: version {info.version}, following {spec.follows}{note}")


def app_from_env() -> FastAPI:
    """The app of one worker process, built from what `serve` put in the environment.

    Worker processes start fresh, so the project folder and the model choices travel in two
    variables; the choices are taken out before the settings read the rest.
    """
    import os

    from mlkeel.serving.app import create_app
    from mlkeel.serving.arenas import share_one_arena
    from mlkeel.serving.model_slot import ModelSpec

    share_one_arena()  # before the worker's threads start
    environ = dict(os.environ)
    chosen: list[dict[str, Any]] = json.loads(environ.pop(MODELS_VARIABLE, "[]"))
    settings: Settings = load_settings(Path(environ.get(PROJECT_VARIABLE, ".")), environ)
    specs = [ModelSpec(**spec) for spec in chosen] or None
    registry = registry_for(settings)
    return create_app(settings, registry, models=specs, prediction_log=_log_for(settings, registry))


def _log_for(settings: Settings, registry: Registry) -> PredictionLog | None:
    """The prediction log, unless ``prediction_log.enabled`` is false."""
    if not settings.prediction_log.enabled:
        return None
    from mlkeel.prediction_log.runtime import open_prediction_log

    return open_prediction_log(settings, registry)


def log_config() -> dict[str, Any]:
    """uvicorn's logging, plus mlkeel's own loggers (model loads, swaps, failures)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mlkeel"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config
