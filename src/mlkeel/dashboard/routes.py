"""The dashboard's pages at ``/dashboard``: thin handlers over ``pages.py``.

The app holds a `DashboardSource` in ``app.state.dashboard``; its reader (and with it
monitoring's modules, Jinja2 and the database engine when it has none) is built on the
first page view, so a model server that nobody browses pays nothing for it.

Pages are rendered in the threadpool (the registry and the database are blocking); they carry
a Content-Security-Policy that allows no script at all.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mlkeel.errors import MlkeelError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mlkeel.dashboard.queries import Reader
    from mlkeel.registry import Registry
    from mlkeel.settings import Settings

PREFIX = "/dashboard"
WINDOW = re.compile(r"\d{1,4}[hdw]")

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@dataclass
class DashboardSource:
    """Where the pages read: the project's settings, its registry and the operational
    database (`engine`, or one made from ``settings.database_url`` on first use)."""

    settings: Settings
    registry: Registry
    engine: Engine | None = None
    _reader: Reader | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def reader(self) -> Reader:
        with self._lock:
            if self._reader is None:
                from mlkeel.dashboard.queries import Reader

                if self.engine is None:
                    from mlkeel.db import make_engine

                    self.engine = make_engine(self.settings.resolved_database_url)
                self._reader = Reader(self.settings, self.registry, self.engine)
            return self._reader


def create_dashboard_app(source: DashboardSource) -> FastAPI:
    """The dashboard alone (``mlkeel dashboard``): its pages, and ``/`` leading to them."""
    app = FastAPI(title=f"mlkeel dashboard: {source.settings.project}", docs_url=None,
                  redoc_url=None, openapi_url=None)  # fmt: skip
    app.state.dashboard = source
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse(PREFIX)

    return app


@router.get("")
def overview(request: Request) -> Response:
    """Every model: versions per alias, status, open alerts, last runs."""
    from mlkeel.dashboard import pages

    return _page(request, pages.overview)


@router.get("/models/{name}")
def model(name: str, request: Request) -> Response:
    """Versions with lineage and metrics, the deployment timeline, gate results."""
    from mlkeel.dashboard import pages

    return _page(request, lambda reader: pages.model(reader, name))


@router.get("/models/{name}/monitoring")
def monitoring(name: str, request: Request, window: str = "7d") -> Response:
    """Traffic, latency, errors, distributions against the baseline, drift over time."""
    from mlkeel.dashboard import pages

    if not WINDOW.fullmatch(window):
        return _error(400, "bad window", f"window {window!r} is not an age such as 1d, 7d, 12h")
    return _page(request, lambda reader: pages.monitoring(reader, name, window))


@router.get("/alerts")
def alerts(request: Request, model: str | None = None, status: str = "open") -> Response:
    """Alerts, open or all, of one model or every one."""
    from mlkeel.dashboard import pages

    if status not in ("open", "all"):
        return _error(400, "bad status", f"status {status!r} is neither 'open' nor 'all'")
    return _page(request, lambda reader: pages.alerts(reader, model or None, status))


@router.get("/jobs")
def jobs(request: Request) -> Response:
    """Retraining runs and monitoring runs, newest first."""
    from mlkeel.dashboard import pages

    return _page(request, pages.jobs)


@router.get("/static/dashboard.css")
def stylesheet() -> Response:
    from mlkeel.dashboard.render import stylesheet

    return Response(stylesheet(), media_type="text/css",
                    headers={"Cache-Control": "max-age=3600"})  # fmt: skip


def _page(request: Request, build: Callable[[Reader], str]) -> Response:
    source: DashboardSource = request.app.state.dashboard
    try:
        body = build(source.reader())
    except MlkeelError as exc:
        status = exc.http_status if exc.http_status in (404, 409, 503) else 500
        return _error(status, type(exc).__name__, str(exc))
    return _html(body, 200)


def _error(status: int, heading: str, message: str) -> Response:
    from mlkeel.dashboard.render import render

    return _html(
        render("error.html", page="error", status=status, heading=heading, message=message), status
    )


def _html(body: str, status: int) -> Response:
    from mlkeel.dashboard.render import CONTENT_SECURITY_POLICY

    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY,
               "X-Content-Type-Options": "nosniff"}  # fmt: skip
    return HTMLResponse(body, status, headers=headers)
