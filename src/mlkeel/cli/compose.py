"""Building the objects a command needs from the project's settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from mlkeel.db import make_engine, upgrade
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.registry import Registry
from mlkeel.settings import Settings, load_settings

ProjectOption = Annotated[
    Path,
    typer.Option(
        "--project",
        "-p",
        envvar="MLKEEL_PROJECT",
        help="Project folder holding mlkeel.toml.",
        file_okay=False,
    ),
]
CACHE_DIR = ".mlkeel/cache"


def settings_for(project: Path) -> Settings:
    return load_settings(project)


def registry_for(settings: Settings) -> Registry:
    uri = settings.resolved_tracking_uri
    # A local store keeps artifacts in the project; a tracking server chooses its own.
    local = uri.startswith(("sqlite:", "file:")) or "://" not in uri
    location = settings.path(settings.artifact_root).as_uri() if local else None
    return Registry(uri, settings.project, location, settings.path(CACHE_DIR))


@contextmanager
def open_repository(settings: Settings) -> Iterator[PredictionRepository]:
    """The prediction log; SQLite is migrated on the spot, PostgreSQL by ``mlkeel db upgrade``."""
    engine = make_engine(settings.resolved_database_url)
    try:
        if engine.dialect.name == "sqlite":
            upgrade(engine)
        yield PredictionRepository(engine)
    finally:
        engine.dispose()
