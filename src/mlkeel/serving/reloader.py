"""Following the registry: load each model's target version and swap it in when it moves.

The app's lifespan checks once before taking requests, then a background task checks every
``reload_seconds``; registry calls and loading block, so they run in a thread. A version that
fails to load is not swapped in (the old one keeps serving), is counted, and is retried with a
growing back-off so that a tampered artifact does not fill the log. A registry that cannot be
reached is counted and the served versions stay. ``POST /admin/reload`` runs the same check at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio.to_thread

from mlkeel.errors import MlkeelError
from mlkeel.serving.metrics import ServingMetrics
from mlkeel.serving.model_slot import ModelSlot, load_served

if TYPE_CHECKING:
    from mlkeel.registry import Registry

Action = Literal["loaded", "swapped", "unchanged", "load_failed", "registry_error", "backing_off"]
MAX_BACKOFF = 300.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReloadOutcome:
    """What one check did for one model."""

    model: str
    action: Action
    served_version: int | None
    target_version: int | None
    message: str


@dataclass
class _Failure:
    version: int
    attempts: int
    retry_at: float


class Reloader:
    """Keeps every slot serving the version its spec points at."""

    def __init__(
        self,
        registry: Registry,
        slots: Mapping[str, ModelSlot],
        metrics: ServingMetrics,
        interval: float,
        max_rows: int,
    ) -> None:
        self._registry = registry
        self._slots = slots
        self._metrics = metrics
        self._interval = interval
        self._max_rows = max_rows
        self._lock = asyncio.Lock()
        self._failures: dict[str, _Failure] = {}

    async def run(self) -> None:
        """Check every interval (the first after one interval), until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check()
            except Exception:  # a bug here must not stop the following
                log.exception("checking the registry for new model versions failed")

    async def check(self, force: bool = False) -> list[ReloadOutcome]:
        """Check every model once; `force` retries versions that are backing off."""
        async with self._lock:
            return [await self._check(slot, force) for slot in self._slots.values()]

    async def _check(self, slot: ModelSlot, force: bool) -> ReloadOutcome:
        name, current = slot.name, slot.served
        served = current.version if current is not None else None
        try:
            target = (await anyio.to_thread.run_sync(slot.spec.target, self._registry)).version
        except Exception as exc:
            self._metrics.registry_failures.labels(name).inc()
            message = f"cannot resolve {slot.spec.follows} of {name!r}: {_describe(exc)}"
            _log_failure(message, exc)
            if current is None:
                slot.problem = message
            return ReloadOutcome(name, "registry_error", served, None, message)
        if target == served:
            self._failures.pop(name, None)
            return ReloadOutcome(name, "unchanged", served, target, f"serving version {target}")
        failure = self._failures.get(name)
        if (
            failure
            and failure.version == target
            and not force
            and time.monotonic() < failure.retry_at
        ):
            message = f"version {target} failed to load {failure.attempts} time(s); retrying later"
            return ReloadOutcome(name, "backing_off", served, target, message)
        try:
            loaded = await anyio.to_thread.run_sync(
                load_served, self._registry, name, target, self._max_rows
            )
        except Exception as exc:
            return self._failed(slot, target, exc)
        self._failures.pop(name, None)
        slot.swap(loaded)
        self._metrics.served(name, target, served)
        if served is None:
            log.info("serving %s version %d (%s)", name, target, slot.spec.follows)
            return ReloadOutcome(name, "loaded", target, target, f"loaded version {target}")
        log.info("swapped %s version %d -> %d (%s)", name, served, target, slot.spec.follows)
        return ReloadOutcome(
            name, "swapped", target, target, f"swapped version {served} for {target}"
        )

    def _failed(self, slot: ModelSlot, target: int, exc: Exception) -> ReloadOutcome:
        name, current = slot.name, slot.served
        self._metrics.load_failures.labels(name).inc()
        previous = self._failures.get(name)
        attempts = previous.attempts + 1 if previous and previous.version == target else 1
        delay = min(self._interval * 2**attempts, MAX_BACKOFF)
        self._failures[name] = _Failure(target, attempts, time.monotonic() + delay)
        keeps = f"; still serving version {current.version}" if current else ""
        message = f"version {target} of {name!r} failed to load: {_describe(exc)}{keeps}"
        if attempts == 1:
            _log_failure(message, exc)
        else:
            log.warning("%s (attempt %d)", message, attempts)
        if current is None:
            slot.problem = message
        served = current.version if current else None
        return ReloadOutcome(name, "load_failed", served, target, message)


def _describe(exc: Exception) -> str:
    if isinstance(exc, MlkeelError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"


def _log_failure(message: str, exc: Exception) -> None:
    if isinstance(exc, MlkeelError):  # expected failure modes: one line, no traceback
        log.warning("%s", message)
    else:
        log.error("%s", message, exc_info=exc)
