"""One prediction request, start to finish: model, body, rows, predict, metrics, log.

`Serving` is the runtime state of one app (built by `create_app`, kept in ``app.state``): the
model slots, their batchers, the metrics, the reloader and the prediction-log sink.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
from starlette.requests import Request

from mlkeel.errors import MlkeelError, ModelNotReadyError, ModelNotServedError
from mlkeel.prediction_log.record import DiscardSink, PredictionRecord, PredictionSink
from mlkeel.prediction_log.runtime import PredictionLog
from mlkeel.serving.batching import Batcher
from mlkeel.serving.metrics import ServingMetrics
from mlkeel.serving.model_slot import ModelSlot, Outputs, ServedModel
from mlkeel.serving.reloader import Reloader
from mlkeel.serving.schemas import read_body
from mlkeel.serving.validation import Rows, Validator
from mlkeel.settings import ServingConfig

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
    ) -> None:
        self.slots = slots
        self.config = config
        self.metrics = metrics
        self.reloader = reloader
        self.sink = sink
        self.prediction_log = prediction_log
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
        served = slot.served  # read once: this request is answered wholly by this version
        if served is None:
            raise ModelNotReadyError(
                f"model {name!r} is not loaded yet: {slot.problem}; retry shortly",
                field="model",
            )
        request_id: str = request.state.request_id
        batcher, metrics = self.batchers[name], self.metrics
        started, status = time.perf_counter(), 500
        metrics.in_flight.inc()
        try:
            with batcher.expecting():
                rows = await self._rows(request, served.validator, shape)
            outputs = await batcher.submit(served, rows, rows.count)
            status = 200
        except MlkeelError as exc:
            status = exc.http_status
            raise
        finally:
            elapsed = time.perf_counter() - started
            metrics.in_flight.dec()
            metrics.requests.labels(name, str(served.version), str(status)).inc()
            metrics.latency.labels(name).observe(elapsed)
        for (feature, kind), count in rows.events.items():
            metrics.quality.labels(name, feature, kind).inc(count)
        metrics.predicted(name, served.version, outputs.predictions, served.labels is not None)
        return Answer(served, rows, outputs, request_id, elapsed * 1000)

    async def _rows(self, request: Request, validator: Validator, shape: Shape) -> Rows:
        body = await read_body(request, self.config.max_body_bytes)
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
            await asyncio.wrap_future(prediction_log.submit_durable(_records(answer)))
        except Exception:
            self.metrics.log_failures.labels(answer.served.name).inc()
            log.exception("the prediction log lost %d records", answer.rows.count)

    async def log_predictions(self, answer: Answer) -> None:
        """Hand one record per row to the prediction log; never raises (runs after the answer)."""
        try:
            self.sink.submit(_records(answer))
        except Exception:
            self.metrics.log_failures.labels(answer.served.name).inc()
            log.exception("the prediction log refused %d records", answer.rows.count)

    async def aclose(self) -> None:
        for batcher in self.batchers.values():
            await batcher.aclose()


def _predict(served: ServedModel, batch: Sequence[Rows]) -> Sequence[Outputs]:
    return served.predict(batch)


def _records(answer: Answer) -> list[PredictionRecord]:
    served, rows, outputs = answer.served, answer.rows, answer.outputs
    features = rows.records
    if features is None:
        names = served.validator.names
        features = [dict(zip(names, values, strict=True)) for values in zip(*rows.raw, strict=True)]
    probabilities: Sequence[dict[str, float] | None] = outputs.probabilities or [None] * rows.count
    now = datetime.now(UTC)
    name, version, request_id, latency = (
        served.name,
        served.version,
        answer.request_id,
        answer.latency_ms,
    )
    return [
        PredictionRecord(
            now, name, version, "champion", request_id, index, row, prediction, proba, latency
        )
        for index, (row, prediction, proba) in enumerate(
            zip(features, outputs.predictions, probabilities, strict=True)
        )
    ]
