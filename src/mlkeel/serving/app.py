"""The model server: `create_app` composes it; the lifespan follows the registry.

Every error answers JSON ``{"error": {"type", "message", "field", "request_id"}}``: a
`MlkeelError` with its class's ``http_status`` (errors.py holds the one table), anything
unexpected with 500, a generic message and the request id (its traceback goes to the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlkeel.dashboard.routes import DashboardSource
from mlkeel.dashboard.routes import router as dashboard_router
from mlkeel.errors import InvalidInputError, MlkeelError
from mlkeel.prediction_log.record import DiscardSink, PredictionSink
from mlkeel.prediction_log.runtime import PredictionLog
from mlkeel.serving.metrics import ServingMetrics
from mlkeel.serving.model_slot import ModelSlot, ModelSpec
from mlkeel.serving.reloader import Reloader
from mlkeel.serving.routes import router
from mlkeel.serving.schemas import check_request_id, new_request_id
from mlkeel.serving.service import Serving
from mlkeel.settings import Settings

if TYPE_CHECKING:
    from mlkeel.registry import Registry

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    registry: Registry,
    sink: PredictionSink | None = None,
    models: Sequence[ModelSpec] | None = None,
    prediction_log: PredictionLog | None = None,
) -> FastAPI:
    """A server for `models` (default: every model of the project, following its champion).

    With `prediction_log`, every prediction is logged there, labels are accepted at
    ``/v1/models/NAME/feedback``, and the log opens and drains with the server; `sink` alone
    only receives the records (tests).
    """
    specs = list(models) if models is not None else [ModelSpec(name) for name in settings.models]
    config = settings.serving
    slots = {spec.name: ModelSlot(spec) for spec in specs}
    metrics = ServingMetrics()
    rollout = {name: model.rollout for name, model in settings.models.items()}
    reloader = Reloader(
        registry,
        slots,
        metrics,
        config.reload_seconds,
        config.max_batch_rows,
        rollout,
        config.max_string_length,
    )
    if prediction_log is not None:
        sink = prediction_log
        metrics.registry.register(prediction_log.collector())
    runtime = Serving(
        slots, config, metrics, reloader, sink or DiscardSink(), prediction_log, rollout
    )

    app = FastAPI(
        title=f"mlkeel: {settings.project}",
        lifespan=_lifespan,
        exception_handlers={
            MlkeelError: _domain_error,
            HTTPException: _http_error,
            RequestValidationError: _validation_error,
        },
    )
    app.state.serving = runtime
    app.state.settings = settings  # tokens for serving/auth.py
    app.include_router(router)
    engine = prediction_log.repository.engine if prediction_log is not None else None
    app.state.dashboard = DashboardSource(settings, registry, engine)
    app.include_router(dashboard_router)
    app.add_middleware(RequestIdMiddleware)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the models before taking requests, then keep following the registry.

    A worker process accepts connections only once its startup is done, so with several
    workers none answers 503 while loading. A model that cannot be loaded yet (no champion,
    a refused artifact) does not block the start: ``/ready`` names it and polling goes on.
    """
    runtime: Serving = app.state.serving
    if runtime.prediction_log is not None:
        await anyio.to_thread.run_sync(runtime.prediction_log.open)
    await runtime.reloader.check()
    follower = asyncio.create_task(runtime.reloader.run(), name="mlkeel-reloader")
    try:
        yield
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await runtime.aclose()
        if runtime.prediction_log is not None:
            # Uvicorn runs this after in-flight requests finished: everything they queued drains.
            await anyio.to_thread.run_sync(runtime.prediction_log.close)


class RequestIdMiddleware:
    """Gives each request an id (the client's ``X-Request-ID`` or a new one), echoes it in the
    answer, and turns any unexpected exception into a 500 that carries it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = new_request_id()
        if incoming is not None:
            try:
                request_id = check_request_id(incoming.decode("latin-1"))
            except InvalidInputError as exc:
                await _send(send, 422, _body(exc, request_id), request_id)
                return
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:  # the client left mid-body (a timeout, a load test's end)
            log.info("request %s: the client disconnected before sending its body", request_id)
        except Exception:
            log.exception("unexpected error answering request %s", request_id)
            if not started:
                body = _error("internal_error", _INTERNAL.format(request_id), None, request_id)
                await _send(send, 500, body, request_id)


_INTERNAL = "the server failed to answer (an internal error, logged with request id {})"


async def _domain_error(request: Request, exc: MlkeelError) -> Response:
    request_id = getattr(request.state, "request_id", None)
    if exc.http_status >= 500:
        log.warning("request %s: %s", request_id, exc)
    headers = {"Retry-After": "1"} if exc.http_status == 503 else None
    return _json(exc.http_status, _body(exc, request_id), headers)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = _error(kind, str(exc.detail), None, getattr(request.state, "request_id", None))
    return _json(exc.status_code, body, exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    first = exc.errors()[0] if exc.errors() else {}
    field = ".".join(str(part) for part in first.get("loc", ())) or None
    message = f"{field}: {first.get('msg', 'invalid request')}"
    body = _error("invalid_request", message, field, getattr(request.state, "request_id", None))
    return _json(422, body)


def _body(exc: MlkeelError, request_id: str | None) -> dict[str, Any]:
    kind = getattr(exc, "error_type", type(exc).__name__)
    return _error(kind, str(exc), getattr(exc, "field", None), request_id)


def _error(kind: str, message: str, field: str | None, request_id: str | None) -> dict[str, Any]:
    error = {"type": kind, "message": message, "field": field, "request_id": request_id}
    return {"error": error}


def _json(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status, headers, media_type="application/json")


async def _send(send: Send, status: int, body: dict[str, Any], request_id: str) -> None:
    content = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(content)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})
