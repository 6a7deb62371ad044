"""Following the registry: load each model's target version and swap it in when it moves.

The app's lifespan checks once before taking requests, then a background task checks every
``reload_seconds``; registry calls and loading block, so they run in a thread. A version that
fails to load is not swapped in (the old one keeps serving), is counted, and is retried with a
growing back-off so that a tampered artifact does not fill the log. A registry that cannot be
reached is counted and the served versions stay. ``POST /admin/reload`` runs the same check at once.

A slot that follows the champion also follows the ``canary`` and ``shadow`` aliases, and the
canary's tags (``mlkeel.canary_percent``, ``mlkeel.canary_started``, ``mlkeel.canary_tripped``),
so every replica routes the same share to the same version within one interval. A canary or
shadow that fails to load is not served and not retried until its alias moves (or a forced
check); an unreachable registry keeps what is served.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread

from mlkeel.errors import MlkeelError, ModelNotFoundError
from mlkeel.serving.metrics import ServingMetrics
from mlkeel.serving.model_slot import CHAMPION, Lineup, ModelSlot, ServedModel, load_served
from mlkeel.serving.routing import Canary, FailureWindow
from mlkeel.settings import RolloutConfig

if TYPE_CHECKING:
    from mlkeel.registry import Registry, VersionInfo

Action = Literal["loaded", "swapped", "unchanged", "load_failed", "registry_error", "backing_off"]
MAX_BACKOFF = 300.0
CANARY, SHADOW = "canary", "shadow"
TRIPPED_TAG = "canary_tripped"  # mlkeel.canary_tripped in the registry

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
        rollout: Mapping[str, RolloutConfig] | None = None,
        max_string: int = 1024,
    ) -> None:
        self._registry = registry
        self._slots = slots
        self._metrics = metrics
        self._interval = interval
        self._max_rows = max_rows
        self._max_string = max_string
        self._lock = asyncio.Lock()
        self._failures: dict[str, _Failure] = {}
        self._rollout = rollout or {}
        self._refused: dict[tuple[str, str], int] = {}  # (model, alias) -> version that failed
        self._tagging: set[asyncio.Task[None]] = set()

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
            before = [slot.lineup for slot in self._slots.values()]
            outcomes = []
            for slot in self._slots.values():
                outcome, aliases = await self._check(slot, force)
                outcomes.append(outcome)
                if aliases is not None and slot.served is not None:
                    await self._follow_variants(slot, force, aliases)
            after = [slot.lineup for slot in self._slots.values()]
            if any(a is not b for a, b in zip(after, before, strict=True)):
                _refreeze(dropped=any(map(_dropped, before, after)))
            return outcomes

    # ---- canary and shadow ---------------------------------------------------------------
    async def _follow_variants(
        self, slot: ModelSlot, force: bool, aliases: Mapping[str, int]
    ) -> None:
        for alias in (CANARY, SHADOW):
            try:
                info = await self._variant_target(slot.name, alias, aliases.get(alias))
            except Exception as exc:  # the registry is down: keep serving what we have
                self._metrics.registry_failures.labels(slot.name).inc()
                log.warning("cannot resolve the %r of %r: %s", alias, slot.name, _describe(exc))
                continue
            champion = slot.served
            if info is not None and champion is not None and info.version == champion.version:
                info = None  # just promoted: the champion already answers with it
            if alias == CANARY:
                await self._follow_canary(slot, info, force)
            else:
                await self._follow_shadow(slot, info, force)

    async def _variant_target(
        self, name: str, alias: str, version: int | None
    ) -> VersionInfo | None:
        if version is None:
            return None
        try:
            info = await anyio.to_thread.run_sync(self._registry.version, name, version)
        except ModelNotFoundError:
            return None
        return info if alias in info.aliases else None  # it moved meanwhile: next poll

    async def _follow_canary(self, slot: ModelSlot, info: VersionInfo | None, force: bool) -> None:
        current, name = slot.lineup.canary, slot.name
        if info is None:
            if current is not None:
                slot.set_canary(None)
                self._metrics.canary_percent.remove(name, str(current.version))
                log.info("%s: canary version %d ended", name, current.version)
            return
        config = self._rollout.get(name) or RolloutConfig()
        percent = _number(info.lineage.get("canary_percent"), config.canary_percent)
        started = str(info.lineage.get("canary_started") or info.lineage.get("canary_since"))
        tripped = info.lineage.get("canary_tripped")
        if current is not None and (current.version, current.started) == (info.version, started):
            if current.percent != percent:  # a new share: same guard, new routing
                current = Canary(current.served, percent, started, current.guard)
                slot.set_canary(current)
            if tripped and not current.guard.tripped:
                current.guard.trip(f"tripped on another server: {tripped}")
        else:
            served = await self._load_variant(slot, CANARY, info.version, force)
            if served is None:
                return
            guard = FailureWindow(config.breaker_window, config.max_error_rate)
            if tripped:
                guard.trip(f"tripped on another server: {tripped}")
            if current is not None:
                self._metrics.canary_percent.remove(name, str(current.version))
            current = Canary(served, percent, started, guard)
            slot.set_canary(current)
            log.info("%s: canary version %d takes %.4g%% of requests", name, info.version, percent)
        share = 0.0 if current.guard.tripped else current.percent
        self._metrics.canary_percent.labels(name, str(current.version)).set(share)

    async def _follow_shadow(self, slot: ModelSlot, info: VersionInfo | None, force: bool) -> None:
        current = slot.lineup.shadow
        if info is None:
            if current is not None:
                slot.set_shadow(None)
                log.info("%s: shadow version %d ended", slot.name, current.version)
            return
        if current is not None and current.version == info.version:
            return
        served = await self._load_variant(slot, SHADOW, info.version, force)
        if served is not None:
            slot.set_shadow(served)
            log.info("%s: shadow version %d gets a copy of every request", slot.name, info.version)

    async def _load_variant(
        self, slot: ModelSlot, alias: str, version: int, force: bool
    ) -> ServedModel | None:
        key = (slot.name, alias)
        if self._refused.get(key) == version and not force:
            return None
        try:
            served = await anyio.to_thread.run_sync(
                load_served,
                self._registry,
                slot.name,
                version,
                self._max_rows,
                self._max_string,
            )
        except Exception as exc:
            self._refused[key] = version
            self._metrics.load_failures.labels(slot.name).inc()
            message = f"{alias} version {version} of {slot.name!r} failed to load; not serving it"
            _log_failure(f"{message}: {_describe(exc)}", exc)
            return None
        self._refused.pop(key, None)
        return served

    def canary_tripped(self, name: str, canary: Canary) -> None:
        """Tag the canary version as tripped, so every replica stops routing to it and the
        analysis rolls it back. Runs in the background; a failure is only logged."""
        stamp = {"at": datetime.now(UTC).isoformat(timespec="seconds"),
                 "reason": canary.guard.reason}  # fmt: skip
        task = asyncio.get_running_loop().create_task(
            anyio.to_thread.run_sync(self._tag_tripped, name, canary.version, json.dumps(stamp))
        )
        self._tagging.add(task)
        task.add_done_callback(self._tagging.discard)

    def _tag_tripped(self, name: str, version: int, stamp: str) -> None:
        try:
            self._registry.set_tags(name, version, {TRIPPED_TAG: stamp})
        except Exception as exc:
            log.warning("could not tag canary %s version %d as tripped: %s", name, version, exc)

    def _target(self, slot: ModelSlot) -> tuple[int, dict[str, int] | None]:
        """The version `slot` should serve, with the model's aliases when it follows the
        champion: one registry call a poll while the champion alias exists. Blocking."""
        spec = slot.spec
        if spec.version is None and not spec.latest:
            aliases = self._registry.aliases(slot.name)
            if CHAMPION in aliases:
                return aliases[CHAMPION], aliases
        return spec.target(self._registry).version, None  # or the clear "no champion" error

    async def _check(
        self, slot: ModelSlot, force: bool
    ) -> tuple[ReloadOutcome, dict[str, int] | None]:
        name, current = slot.name, slot.served
        served = current.version if current is not None else None
        try:
            target, aliases = await anyio.to_thread.run_sync(self._target, slot)
        except Exception as exc:
            self._metrics.registry_failures.labels(name).inc()
            message = f"cannot resolve {slot.spec.follows} of {name!r}: {_describe(exc)}"
            _log_failure(message, exc)
            if current is None:
                slot.problem = message
            return ReloadOutcome(name, "registry_error", served, None, message), None
        return await self._follow(slot, target, force), aliases

    async def _follow(self, slot: ModelSlot, target: int, force: bool) -> ReloadOutcome:
        """Serve `target` in `slot`, unless it is served already or is backing off."""
        name, current = slot.name, slot.served
        served = current.version if current is not None else None
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
                load_served, self._registry, name, target, self._max_rows, self._max_string
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


def _refreeze(dropped: bool) -> None:
    """Hide the long-lived heap (libraries, loaded models) from the cyclic collector.

    A full collection of a server's heap (MLflow, scikit-learn, pandas: ~240,000 objects)
    takes ~130 ms here and stalls every request in flight: the p99 spikes of 120-150 ms that
    bench/rollout.py showed in some rounds, gone once frozen. Frozen objects are never
    scanned, but never reclaimed either, so when a served version was `dropped` the heap is
    thawed and collected once (the version may sit in a reference cycle), then frozen again:
    one such pause per swap, instead of one whenever a full collection triggers. Loading
    the first versions drops none: freezing alone spares the start that collection (0.4 s).
    """
    if dropped:
        gc.unfreeze()
        gc.collect()
    gc.freeze()


def _dropped(before: Lineup, after: Lineup) -> bool:
    """Whether a model `before` served is no longer among those `after` serves."""
    kept = {id(model) for model in _models(after)}
    return any(id(model) not in kept for model in _models(before))


def _models(lineup: Lineup) -> list[object]:
    canary = lineup.canary.served if lineup.canary is not None else None
    return [m for m in (lineup.champion, canary, lineup.shadow) if m is not None]


def _number(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if 0 <= number <= 100 else default


def _describe(exc: Exception) -> str:
    if isinstance(exc, MlkeelError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"


def _log_failure(message: str, exc: Exception) -> None:
    if isinstance(exc, MlkeelError):  # expected failure modes: one line, no traceback
        log.warning("%s", message)
    else:
        log.error("%s", message, exc_info=exc)
