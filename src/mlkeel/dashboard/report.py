"""One model's monitoring as a single self-contained HTML file (``mlkeel report``): the
monitoring page's charts and tables, the versions and the alerts, CSS inline, no script and
no link to anything, so it opens offline and can be attached to a ticket or an e-mail."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlkeel.dashboard.pages import monitoring_report
from mlkeel.dashboard.queries import Reader

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mlkeel.registry import Registry
    from mlkeel.settings import Settings


def write_report(
    settings: Settings, registry: Registry, engine: Engine, model: str, window: str, target: Path
) -> int:
    """Write `model`'s report over the last `window` (``7d``) to `target`; return its bytes."""
    html = monitoring_report(Reader(settings, registry, engine), model, window).encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(html)
    return len(html)
