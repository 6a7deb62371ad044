"""Human durations and moments on the command line and in mlkeel.toml: ``90d``, ``6h``,
``2026-11-01T12:00``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mlkeel.errors import ConfigError


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
