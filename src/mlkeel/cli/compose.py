"""Building the objects a command needs from the project's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
