"""Following the registry with a fake one: swaps, refused versions, back-off, outages."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression

from mlkeel.errors import ArtifactIntegrityError, ModelNotFoundError, RegistryError
from mlkeel.registry import LoadedModel, VersionInfo
from mlkeel.schema import FeatureSpec, InputSchema, TargetSpec
from mlkeel.serving.metrics import ServingMetrics
from mlkeel.serving.model_slot import ModelSlot, ModelSpec
from mlkeel.serving.reloader import Reloader

SCHEMA = InputSchema(
    features=[FeatureSpec("x", "numeric", "float", False, minimum=0, maximum=1)],
    target=TargetSpec("y", "classification", [0, 1]),
    examples=[{"x": 0.1}, {"x": 0.9}],
)
FRAME = pd.DataFrame({"x": [0.0, 0.2, 0.8, 1.0]})


class FakeRegistry:
    def __init__(self) -> None:
        self.champion: int | None = 1
        self.newest = 1
        self.broken: set[int] = set()
        self.down = False
        self.loads: list[int] = []
        self.calls: list[str] = []

    def _info(self, version: int) -> VersionInfo:
        return VersionInfo("m", version, [], "", {}, None, None, None, {})

    def aliases(self, name: str) -> dict[str, int]:
        self.calls.append("aliases")
        if self.down:
            raise RegistryError("the MLflow store is unreachable")
        return {} if self.champion is None else {"champion": self.champion}

    def resolve(self, name: str, alias: str) -> VersionInfo:
        self.calls.append("resolve")
        if self.down:
            raise RegistryError("the MLflow store is unreachable")
        if self.champion is None:
            raise ModelNotFoundError("model 'm' has no 'champion' version yet")
        return self._info(self.champion)

    def latest(self, name: str) -> VersionInfo:
        return self._info(self.newest)

    def version(self, name: str, version: int) -> VersionInfo:
        self.calls.append("version")
        return self._info(version)

    def load(self, name: str, version: int) -> LoadedModel:
        self.loads.append(version)
        if version in self.broken:
            raise ArtifactIntegrityError(f"version {version}: digest does not match")
        model = LogisticRegression().fit(FRAME, [0, 0, 1, 1])
        return LoadedModel(self._info(version), model, SCHEMA, {}, Path("."))


def setup(
    spec: ModelSpec | None = None,
) -> tuple[FakeRegistry, ModelSlot, Reloader, ServingMetrics]:
    registry, metrics = FakeRegistry(), ServingMetrics()
    slot = ModelSlot(spec or ModelSpec("m"))
    reloader = Reloader(registry, {"m": slot}, metrics, 0.01, 100)  # type: ignore[arg-type]
    return registry, slot, reloader, metrics


def check(reloader: Reloader, force: bool = False) -> Any:
    (outcome,) = asyncio.run(reloader.check(force))
    return outcome


def served_version(slot: ModelSlot) -> int | None:
    return slot.served.version if slot.served is not None else None


def metric(metrics: ServingMetrics, name: str) -> float:
    text = metrics.render().decode()
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


def test_loads_then_swaps_when_the_champion_moves() -> None:
    registry, slot, reloader, metrics = setup()

    first = check(reloader)
    registry.champion = 2
    second = check(reloader)
    third = check(reloader)

    assert [first.action, second.action, third.action] == ["loaded", "swapped", "unchanged"]
    assert served_version(slot) == 2
    assert metric(metrics, "mlkeel_model_swaps_total") == 1
    assert metric(metrics, "mlkeel_model_info") == 1  # only the served version


def test_a_poll_of_a_served_champion_is_one_registry_call() -> None:
    registry, slot, reloader, _ = setup()
    check(reloader)
    registry.calls.clear()

    outcome = check(reloader)

    assert outcome.action == "unchanged"
    assert registry.calls == ["aliases"]  # no canary or shadow alias: nothing more to read


def test_the_first_load_freezes_the_heap_and_only_a_swap_collects_it() -> None:
    registry, slot, reloader, _ = setup()
    full_collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full_collections.append(1)

    enabled = gc.isenabled()
    gc.disable()  # only the reloader's own collections are counted
    gc.callbacks.append(count)
    try:
        gc.unfreeze()
        check(reloader)
        after_load, frozen = len(full_collections), gc.get_freeze_count()
        registry.champion = 2
        check(reloader)
        after_swap = len(full_collections)
    finally:
        gc.callbacks.remove(count)
        if enabled:
            gc.enable()

    assert (after_load, after_swap) == (0, 1)  # a swapped-out version may sit in a cycle
    assert frozen > 0
    assert served_version(slot) == 2


def test_a_version_that_fails_to_load_is_not_swapped_in_and_backs_off() -> None:
    registry, slot, reloader, metrics = setup()
    check(reloader)
    registry.champion, registry.broken = 2, {2}

    failed = check(reloader)
    waiting = check(reloader)
    forced = check(reloader, force=True)

    assert [failed.action, waiting.action, forced.action] == [
        "load_failed",
        "backing_off",
        "load_failed",
    ]
    assert "still serving version 1" in failed.message
    assert served_version(slot) == 1
    assert registry.loads == [1, 2, 2]
    assert metric(metrics, "mlkeel_model_load_failures_total") == 2


def test_an_unreachable_registry_keeps_the_served_version() -> None:
    registry, slot, reloader, metrics = setup()
    check(reloader)
    registry.down = True

    outcome = check(reloader)

    assert outcome.action == "registry_error"
    assert served_version(slot) == 1
    assert metric(metrics, "mlkeel_registry_poll_failures_total") == 1


def test_no_champion_leaves_the_slot_unready_with_the_reason() -> None:
    registry, slot, reloader, _ = setup()
    registry.champion = None

    outcome = check(reloader)

    assert outcome.action == "registry_error"
    assert slot.served is None
    assert "no 'champion' version" in (slot.problem or "")


@pytest.mark.parametrize(
    ("spec", "served"),
    [(ModelSpec.parse("m@1"), 1), (ModelSpec.parse("m", latest=True), 3)],
)
def test_pinned_and_latest_specs_do_not_follow_the_champion(spec: ModelSpec, served: int) -> None:
    registry, slot, reloader, _ = setup(spec)
    registry.champion, registry.newest = 2, 3

    check(reloader)

    assert served_version(slot) == served


def test_model_spec_parsing() -> None:
    assert ModelSpec.parse("churn@3") == ModelSpec("churn", 3)
    assert ModelSpec.parse("churn@3", latest=True) == ModelSpec("churn", 3)
    with pytest.raises(Exception, match="NAME or NAME@VERSION"):
        ModelSpec.parse("churn@x")
