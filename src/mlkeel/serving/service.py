"""One prediction request, start to finish: model, body, rows, predict, metrics, log.

`Serving` is the runtime state of one app (built by `create_app`, kept in ``app.state``): the
model slots, their batchers, the metrics, the reloader and the prediction-log sink.

With a canary, a request whose routing key falls in its share is answered by it; if the canary
fails (it raises, or refuses rows the champion accepts), the champion answers instead and the
failure is counted, so a client never sees a canary's error. With a shadow, every answered
request is copied to it after the answer (shadow.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
from starlette.requests import Request

from mlkeel.errors import MlkeelError, ModelNotReadyError, ModelNotServedError, OverloadedError
from mlkeel.prediction_log.record import (
    DiscardSink,
    FeatureColumns,
    PredictionRecord,
    PredictionSink,
    Variant,
)
from mlkeel.prediction_log.runtime import PredictionLog
from mlkeel.serving.batching import Batcher
from mlkeel.serving.metrics import ServingMetrics
from mlkeel.serving.model_slot import ModelSlot, Outputs, ServedModel
from mlkeel.serving.reloader import Reloader
from mlkeel.serving.routing import Canary, routing_key
from mlkeel.serving.schemas import read_body
from mlkeel.serving.shadow import ShadowJob, ShadowRunner
from mlkeel.serving.validation import Rows, Validator
from mlkeel.settings import RolloutConfig, ServingConfig

Shape = Callable[[Validator, bytes], Rows]
THREAD_PARSE_BYTES = 64 * 1024  # bigger bodies are parsed off the event loop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """A served request: who answered, its rows, their outputs."""

    served: ServedModel
    rows: Rows
    outputs: Outputs
    request_id: str
    latency_ms: float
    variant: Variant = "champion"
    shadow: ServedModel | None = None  # gets a copy of the request after the answer


class Serving:
    """The runtime of one server app."""

    def __init__(
        self,
        slots: Mapping[str, ModelSlot],
        config: ServingConfig,
        metrics: ServingMetrics,
        reloader: Reloader,
        sink: PredictionSink,
        prediction_log: PredictionLog | None = None,
        rollout: Mapping[str, RolloutConfig] | None = None,
    ) -> None:
        self.slots = slots
        self.config = config
        self.metrics = metrics
        self.reloader = reloader
        self.sink = sink
        self.prediction_log = prediction_log
        self._active = 0  # prediction requests in progress (the event loop is one thread)
        self.rollout = {name: (rollout or {}).get(name) or RolloutConfig() for name in slots}
        self.shadows = {
            name: ShadowRunner(
                self.rollout[name].shadow_queue,
                config.batch_max_rows,
                self._shadow_outputs,
                self._shadow_failed,
            )
            for name in slots
        }
        self.batchers: dict[str, Batcher[ServedModel, Rows, Outputs]] = {
            name: Batcher(
                _predict,
                batching=config.batching,
                max_rows=config.batch_max_rows,
                max_wait=config.batch_max_wait_ms / 1000,
            )
            for name in slots
        }

    def slot(self, name: str) -> ModelSlot:
        try:
            return self.slots[name]
        except KeyError:
            raise ModelNotServedError(
                f"this server does not serve a model {name!r}; it serves: "
                f"{', '.join(self.slots) or 'none'}",
                field="model",
            ) from None

    async def predict(self, name: str, request: Request, shape: Shape) -> Answer:
        """Read, check and predict one request for model `name`; count it whatever happens."""
        slot = self.slot(name)
        lineup = slot.lineup  # read once: one consistent set of versions for this request
        champion = lineup.champion
        if champion is None:
            raise ModelNotReadyError(
                f"model {name!r} is not loaded yet: {slot.problem}; retry shortly",
                field="model",
            )
        request_id: str = request.state.request_id
        batcher, metrics = self.batchers[name], self.metrics
        if self._active >= self.config.max_concurrent_requests:
            raise OverloadedError(
                f"{self._active} requests are in progress, the most this server takes "
                "(serving.max_concurrent_requests); retry shortly",
                field="model",
            )
        started, status = time.perf_counter(), 500
        served: ServedModel = champion
        variant: Variant = "champion"
        metrics.in_flight.inc()
        self._active += 1
        try:
            with batcher.expecting():
                body = await read_body(request, self.config.max_body_bytes)
                rows = await self._shape(shape, champion.validator, body)
            canary = lineup.canary
            answered = None
            if canary is not None:
                config = self.rollout[name]
                names = champion.validator.names
                if canary.takes(routing_key(config, request.headers, rows, names, request_id)):
                    answered = await self._from_canary(name, canary, champion, shape, body, rows)
            if canary is not None and answered is not None:
                served, variant, (rows, outputs) = canary.served, "canary", answered
            else:
                outputs = await self._timed(batcher.submit(champion, rows, rows.count))
            status = 200
        except MlkeelError as exc:
            status = exc.http_status
            raise
        finally:
            elapsed = time.perf_counter() - started
            self._active -= 1
            metrics.in_flight.dec()
            if status >= 500 and self.prediction_log is not None:
                self.prediction_log.count_error(name, served.version, variant)
            metrics.requests.labels(name, str(served.version), str(status), variant).inc()
            metrics.latency.labels(name, variant).observe(elapsed)
        for (feature, kind), count in rows.events.items():
            metrics.quality.labels(name, feature, kind).inc(count)
        classes = served.labels is not None
        metrics.predicted(name, served.version, outputs.predictions, classes, variant)
        return Answer(served, rows, outputs, request_id, elapsed * 1000, variant, lineup.shadow)

    async def _timed(self, work: Awaitable[Outputs]) -> Outputs:
        """`work` within serving.predict_timeout_seconds, else a 503 (the model runs on)."""
        limit = self.config.predict_timeout_seconds
        try:
            return await asyncio.wait_for(work, limit)
        except TimeoutError:
            raise OverloadedError(
                f"the prediction took longer than {limit:g} s "
                "(serving.predict_timeout_seconds); retry shortly",
                field="model",
                error_type="predict_timeout",
            ) from None

    async def _from_canary(
        self,
        name: str,
        canary: Canary,
        champion: ServedModel,
        shape: Shape,
        body: bytes,
        rows: Rows,
    ) -> tuple[Rows, Outputs] | None:
        """The canary's answer, or None when it failed (counted; the champion answers)."""
        served = canary.served
        try:
            if not _same_input(served, champion):
                rows = await self._shape(shape, served.validator, body)
            outputs = await self.batchers[name].submit(served, rows, rows.count)
        except Exception as exc:
            self._canary_failed(name, canary, exc)
            return None
        canary.guard.record(failed=False)
        return rows, outputs

    def _canary_failed(self, name: str, canary: Canary, exc: Exception) -> None:
        version = canary.version
        self.metrics.variant_failures.labels(name, str(version), "canary").inc()
        if self.prediction_log is not None:
            self.prediction_log.count_error(name, version, "canary")
        tripped = canary.guard.record(failed=True)
        log.log(
            logging.WARNING if canary.guard.failures <= 1 else logging.DEBUG,
            "canary %s version %d failed a request (%s: %s); the champion answered it",
            name, version, exc.__class__.__name__, exc,
        )  # fmt: skip
        if tripped:
            self.metrics.canary_percent.labels(name, str(version)).set(0)
            log.error(
                "stopped routing to canary %s version %d: %s", name, version, canary.guard.reason
            )
            self.reloader.canary_tripped(name, canary)

    async def _shape(self, shape: Shape, validator: Validator, body: bytes) -> Rows:
        if len(body) > THREAD_PARSE_BYTES:
            return await anyio.to_thread.run_sync(shape, validator, body)
        return shape(validator, body)

    @property
    def logs_predictions(self) -> bool:
        return not isinstance(self.sink, DiscardSink)

    @property
    def strict_logging(self) -> bool:
        return self.prediction_log is not None and self.prediction_log.strict

    async def log_durably(self, answer: Answer) -> None:
        """``durability = "strict"``: return once the records are in the database or spool."""
        prediction_log = self.prediction_log
        if prediction_log is None:
            return
        try:
            await asyncio.wrap_future(
                prediction_log.submit_durable(_records(answer), _columns_of(answer))
            )
        except Exception:
            self.metrics.log_failures.labels(answer.served.name).inc()
            log.exception("the prediction log lost %d records", answer.rows.count)

    async def log_predictions(self, answer: Answer) -> None:
        """Hand one record per row to the prediction log; never raises (runs after the answer)."""
        try:
            self.sink.submit(_records(answer), _columns_of(answer))
        except Exception:
            self.metrics.log_failures.labels(answer.served.name).inc()
            log.exception("the prediction log refused %d records", answer.rows.count)

    def has_work_after(self, answer: Answer) -> bool:
        """Whether `after_answer` has anything to do for `answer`."""
        return answer.shadow is not None or (self.logs_predictions and not self.strict_logging)

    async def after_answer(self, answer: Answer) -> None:
        """Once the answer is sent: log it (unless logged durably) and copy it to the shadow."""
        if self.logs_predictions and not self.strict_logging:
            await self.log_predictions(answer)
        shadow = answer.shadow
        if shadow is None:
            return
        rows = answer.rows
        if answer.served is not shadow and _same_input(shadow, answer.served):
            job = ShadowJob(shadow, rows, answer.request_id)
            if not self.shadows[shadow.name].offer(job):
                self.metrics.shadow_dropped.labels(shadow.name).inc()

    def _shadow_outputs(self, job: ShadowJob, outputs: Outputs, latency_ms: float) -> None:
        served = job.served
        self.metrics.predicted(
            served.name, served.version, outputs.predictions, served.labels is not None, "shadow"
        )
        answer = Answer(served, job.rows, outputs, job.request_id, latency_ms, "shadow")
        try:
            self.sink.submit(_records(answer), _columns_of(answer))
        except Exception:
            self.metrics.log_failures.labels(served.name).inc()
            log.exception("the prediction log refused %d shadow records", job.rows.count)

    def _shadow_failed(self, job: ShadowJob, exc: Exception) -> None:
        served = job.served
        self.metrics.variant_failures.labels(served.name, str(served.version), "shadow").inc()
        if self.prediction_log is not None:
            self.prediction_log.count_error(served.name, served.version, "shadow")
        log.warning(
            "shadow %s version %d failed a request (%s: %s)",
            served.name, served.version, exc.__class__.__name__, exc,
        )  # fmt: skip

    async def aclose(self) -> None:
        for batcher in self.batchers.values():
            await batcher.aclose()
        for shadow in self.shadows.values():
            await shadow.aclose()


def _predict(served: ServedModel, batch: Sequence[Rows]) -> Sequence[Outputs]:
    return served.predict(batch)


def _same_input(one: ServedModel, other: ServedModel) -> bool:
    """Whether rows checked against `other`'s schema can be fed to `one` as they are."""
    return one.validator is other.validator or _columns(one) == _columns(other)


def _columns(served: ServedModel) -> list[tuple[str, str, str]]:
    return [(f.name, f.kind, f.dtype) for f in served.schema.features]


def _columns_of(answer: Answer) -> FeatureColumns:
    return answer.served.validator.feature_columns(answer.rows)


def _records(answer: Answer) -> list[PredictionRecord]:
    served, rows, outputs = answer.served, answer.rows, answer.outputs
    features = rows.records
    if features is None:
        names = served.validator.names
        features = [dict(zip(names, values, strict=True)) for values in zip(*rows.raw, strict=True)]
    probabilities: Sequence[dict[str, float] | None] = outputs.probabilities or [None] * rows.count
    now = datetime.now(UTC)
    name, version, request_id, latency, variant = (
        served.name,
        served.version,
        answer.request_id,
        answer.latency_ms,
        answer.variant,
    )
    return [
        PredictionRecord(
            now, name, version, variant, request_id, index, row, prediction, proba, latency
        )
        for index, (row, prediction, proba) in enumerate(
            zip(features, outputs.predictions, probabilities, strict=True)
        )
    ]
