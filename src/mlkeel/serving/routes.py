"""The HTTP endpoints: thin handlers over `Serving` (service.py)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Request, Response
from starlette.background import BackgroundTask

from mlkeel.errors import FeedbackUnavailableError, HistoryUnavailableError, InvalidInputError
from mlkeel.history import HistoryRepository
from mlkeel.prediction_log.repository import Label
from mlkeel.serving import schemas
from mlkeel.serving.auth import require_admin, require_predict
from mlkeel.serving.model_slot import ModelSlot
from mlkeel.serving.service import Answer, Serving

router = APIRouter()
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse} for status in (400, 401, 403, 404, 413, 422, 503)
}


def serving(request: Request) -> Serving:
    runtime: Serving = request.app.state.serving
    return runtime


@router.post(
    "/v1/models/{name}/predict", response_model=schemas.PredictResponse, responses=ERRORS,
    openapi_extra=schemas.PREDICT_BODY, dependencies=[Depends(require_predict)])  # fmt: skip
async def predict(name: str, request: Request) -> Response:
    """Predict rows: ``{"instances": [{feature: value, ...}, ...]}``."""
    runtime = serving(request)
    answer = await runtime.predict(name, request, schemas.predict_rows)
    outputs = answer.outputs
    if outputs.probabilities is None:
        predictions = [{"prediction": value} for value in outputs.predictions]
    else:
        predictions = [
            {"prediction": value, "probabilities": proba}
            for value, proba in zip(outputs.predictions, outputs.probabilities, strict=True)
        ]
    body = {
        "model": answer.served.name,
        "version": answer.served.version,
        "request_id": answer.request_id,
        "predictions": predictions,
    }
    return await _answer(runtime, answer, body)


@router.post(
    "/invocations", response_model=schemas.InvocationsResponse, responses=ERRORS,
    openapi_extra=schemas.INVOCATIONS_BODY, dependencies=[Depends(require_predict)])  # fmt: skip
async def invocations(request: Request, model: str | None = None) -> Response:
    """MLflow's scoring protocol: ``dataframe_split``, ``dataframe_records``, ``instances`` or
    ``inputs``; answers ``{"predictions": [...]}``. Name the model with ``?model=`` when the
    server serves several."""
    runtime = serving(request)
    if model is None:
        if len(runtime.slots) != 1:
            raise InvalidInputError(
                f"this server serves {len(runtime.slots)} models "
                f"({', '.join(runtime.slots)}); choose one with /invocations?model=NAME",
                field="query.model",
                error_type="invalid_request",
            )
        model = next(iter(runtime.slots))
    answer = await runtime.predict(model, request, schemas.invocation_rows)
    return await _answer(runtime, answer, {"predictions": answer.outputs.predictions})


@router.post(
    "/v1/models/{name}/feedback",
    response_model=schemas.FeedbackResponse,
    responses=ERRORS,
    openapi_extra=schemas.FEEDBACK_BODY,
    dependencies=[Depends(require_admin)],
)
async def feedback(name: str, request: Request) -> schemas.FeedbackResponse:
    """Ground truth for served predictions: ``{"request_id", "label", "row"?}`` or a list of
    them. Labels for requests this model never served come back in ``unknown``."""
    runtime = serving(request)
    runtime.slot(name)
    items = schemas.feedback_items(await schemas.read_body(request, runtime.config.max_body_bytes))
    prediction_log = runtime.prediction_log
    if prediction_log is None:
        raise FeedbackUnavailableError(
            "this server has no prediction log (prediction_log.enabled = false), so labels "
            "cannot be matched to predictions",
            field="model",
        )
    labels = [Label(item.request_id, item.label, item.row) for item in items]
    unknown = await anyio.to_thread.run_sync(prediction_log.label, name, labels)
    return schemas.FeedbackResponse(
        accepted=len(labels) - len(unknown),
        unknown=[schemas.FeedbackKey(request_id=u.request_id, row=u.row) for u in unknown],
    )


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/ready", response_model=schemas.Readiness, responses={503: {}})
async def ready(request: Request) -> Response:
    """200 when every configured model is loaded, else 503 with the reason per model."""
    slots = serving(request).slots.values()
    models = {
        slot.name: f"serving version {slot.served.version}"
        if slot.served is not None
        else slot.problem or "not loaded"
        for slot in slots
    }
    ok = all(slot.served is not None for slot in slots)
    return _json({"status": "ready" if ok else "not ready", "models": models}, 200 if ok else 503)


@router.get("/v1/models", response_model=schemas.ModelList)
async def list_models(request: Request) -> schemas.ModelList:
    """Every served model: version, aliases, lineage summary and input schema."""
    return schemas.ModelList(models=[_describe(slot) for slot in serving(request).slots.values()])


@router.get("/v1/models/{name}", response_model=schemas.ModelDescription, responses=ERRORS)
async def show_model(name: str, request: Request) -> schemas.ModelDescription:
    """One served model: version, aliases, lineage summary and input schema."""
    return _describe(serving(request).slot(name))


@router.get("/v1/models/{name}/history", responses=ERRORS)
async def model_history(name: str, request: Request, limit: int | None = None) -> Response:
    """The model's deployment events, oldest first (the newest `limit`): what became
    champion, when, why, by whom, with which metrics; as ``mlkeel history NAME --json``."""
    serving(request).slot(name)
    repository = _history(request)
    events = await anyio.to_thread.run_sync(lambda: repository.events(name, limit))
    return _json([event.to_dict() for event in events], 200)


@router.get("/v1/jobs", responses={**ERRORS, 409: {"model": schemas.ErrorResponse}})
async def job_runs(
    request: Request, model: str | None = None, kind: str | None = None, limit: int = 50
) -> Response:
    """The newest runs of ``mlkeel up``'s scheduled jobs, newest first (``mlkeel jobs --json``):
    job, trigger, times, outcome (ok, failed, interrupted, skipped), summary, error."""
    from mlkeel.errors import JobsUnavailableError
    from mlkeel.scheduling.runs import JobRunStore

    prediction_log = serving(request).prediction_log
    if prediction_log is None:
        raise JobsUnavailableError(
            "this server has no operational database (prediction_log.enabled = false); "
            "list job runs with 'mlkeel jobs' instead"
        )
    store = JobRunStore(prediction_log.repository.engine)
    runs = await anyio.to_thread.run_sync(
        lambda: store.recent(max(1, min(limit, 1000)), model=model, kind=kind)
    )
    return _json([run.to_dict() for run in runs], 200)


@router.get(
    "/metrics",
    responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics, text format."""
    from mlkeel.serving.metrics import CONTENT_TYPE

    return Response(serving(request).metrics.render(), media_type=CONTENT_TYPE)


@router.post(
    "/admin/reload", response_model=schemas.ReloadResponse, dependencies=[Depends(require_admin)]
)
async def reload(request: Request) -> schemas.ReloadResponse:
    """Check the registry now (retrying versions that failed) and report what changed."""
    outcomes = await serving(request).reloader.check(force=True)
    return schemas.ReloadResponse(
        models=[schemas.ReloadResult(**vars(outcome)) for outcome in outcomes]
    )


async def _answer(runtime: Serving, answer: Answer, body: dict[str, Any]) -> Response:
    response = _json(body, 200)
    response.headers["X-Model-Version"] = str(answer.served.version)
    response.headers["X-Model-Variant"] = answer.variant
    if runtime.strict_logging:
        await runtime.log_durably(answer)
    if runtime.has_work_after(answer):
        response.background = BackgroundTask(runtime.after_answer, answer)
    return response


def _history(request: Request) -> HistoryRepository:
    """``app.state.history`` if the app was given one, else one on the prediction log's
    database (the operational database holds both)."""
    found: HistoryRepository | None = getattr(request.app.state, "history", None)
    if found is None:
        prediction_log = serving(request).prediction_log
        if prediction_log is None:
            raise HistoryUnavailableError(
                "this server has no operational database (prediction_log.enabled = false); "
                "read the history with 'mlkeel history NAME' instead",
                field="model",
            )
        found = HistoryRepository(prediction_log.repository.engine)
        request.app.state.history = found
    return found


def _json(body: Any, status: int) -> Response:
    # orjson: ~5% of a busy server's GIL time went to json.dumps of 100-row answers. A NaN
    # (a probability a model could not compute) becomes null, not a 500.
    content = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    return Response(content, status_code=status, media_type="application/json")


def _describe(slot: ModelSlot) -> schemas.ModelDescription:
    served = slot.served
    if served is None:
        return schemas.ModelDescription(
            name=slot.name, follows=slot.spec.follows, ready=False, problem=slot.problem
        )
    info, lineup = served.info, slot.lineup
    canary, shadow = lineup.canary, lineup.shadow
    return schemas.ModelDescription(
        name=slot.name,
        follows=slot.spec.follows,
        ready=True,
        version=info.version,
        aliases=info.aliases,
        lineage=schemas.Lineage(
            created_at=info.created_at,
            data_hash=info.data_hash,
            code_commit=info.code_commit,
            run_id=info.run_id,
            metrics=info.metrics,
        ),
        input_schema=served.schema.to_dict(),
        canary_version=canary.version if canary is not None else None,
        canary_percent=canary.percent if canary is not None else None,
        shadow_version=shadow.version if shadow is not None else None,
    )
