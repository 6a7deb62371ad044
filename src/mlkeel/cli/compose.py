"""Building the objects a command needs from the project's settings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from mlkeel.db import make_engine, upgrade
from mlkeel.errors import ConfigError
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


def parse_moment(text: str, now: datetime | None = None) -> datetime:
    """An ISO date/time (UTC unless it says otherwise) or an age such as ``90d``, ``6h``."""
    now = now or datetime.now(UTC)
    match = AGE.fullmatch(text.strip())
    if match:
        return now - parse_age(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{text!r} is neither an ISO date/time (2026-11-01, 2026-11-01T12:00) "
            "nor an age (90d, 6h, 30m)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_age(text: str) -> timedelta:
    """``90d``, ``6h``, ``30m``, ``45s`` or ``2w`` as a duration."""
    match = AGE.fullmatch(text.strip())
    if not match:
        raise ConfigError(f"{text!r} is not an age; use a number and a unit: 90d, 6h, 30m, 45s")
    number, unit = float(match.group(1)), match.group(2)
    return timedelta(seconds=number * UNITS[unit])


AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
