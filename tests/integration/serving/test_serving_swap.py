"""Following the registry: readiness, hot swap under load, refused versions, pinning."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlkeel.serving.app import create_app
from mlkeel.serving.model_slot import ModelSpec
from mlkeel.training import TrainedModel
from serving_support import MODEL, Project, live, wait_until

pytestmark = pytest.mark.timeout(180)
PREDICT = f"/v1/models/{MODEL}/predict"
MLKEEL = Path(sys.executable).with_name("mlkeel")


def instances(trained: TrainedModel) -> dict[str, Any]:
    return {"instances": trained.schema.examples[:2]}


def counter(client: httpx.Client, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(client.get("/metrics").text)
    return sum(s.value for f in families for s in f.samples if s.name == name + "_total")


def test_ready_is_503_until_a_champion_exists_then_200(
    new_project: Any, trained: TrainedModel
) -> None:
    project: Project = new_project()
    version = project.register(trained)  # registered, not promoted
    app = create_app(project.with_serving(reload_seconds=0.2), project.registry)

    with live(app, ready=False) as client:
        wait_until(lambda: "champion" in client.get("/ready").text, what="the first check")
        not_ready = client.get("/ready")
        refused = client.post(PREDICT, json=instances(trained))
        project.registry.set_alias(MODEL, "champion", version)
        wait_until(lambda: client.get("/ready").status_code == 200, 10, "the champion")

        answered = client.post(PREDICT, json=instances(trained))

    assert not_ready.status_code == 503
    assert "mlkeel promote" in not_ready.json()["models"][MODEL]
    assert (refused.status_code, refused.json()["error"]["type"]) == (503, "model_not_ready")
    assert answered.status_code == 200


def test_promotion_by_another_process_is_served_within_5_s_without_failed_requests(
    champion_project: Project, trained: TrainedModel
) -> None:
    project = champion_project
    second = project.register(trained)
    app = create_app(project.with_serving(reload_seconds=0.5), project.registry)
    stop = threading.Event()
    seen: list[list[tuple[int, int]]] = [[] for _ in range(4)]

    def hammer(log: list[tuple[int, int]], client: httpx.Client) -> None:
        while not stop.is_set():
            response = client.post(PREDICT, json=instances(trained))
            log.append((response.status_code, int(response.headers.get("X-Model-Version", 0))))

    with live(app) as client:
        threads = [threading.Thread(target=hammer, args=(log, client)) for log in seen]
        for thread in threads:
            thread.start()
        subprocess.run(  # noqa: S603 - our own CLI
            [str(MLKEEL), "promote", MODEL, str(second), "--project", str(project.path)],
            check=True,
            capture_output=True,
        )
        took = wait_until(lambda: any(log and log[-1][1] == second for log in seen), 5, "v2")
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
        swaps = counter(client, "mlkeel_model_swaps")

    assert took < 5  # seconds from the promotion's end to the first answer by version 2
    for log in seen:
        assert log, "every thread made requests"
        assert {status for status, _ in log} == {200}
        versions = [version for _, version in log]
        assert versions == sorted(versions), "never back to version 1 once 2 answered"
        assert versions[-1] == second
    assert any(log[0][1] == 1 for log in seen)
    assert swaps == 1


def test_a_version_that_cannot_load_leaves_the_old_one_serving(
    champion_project: Project, trained: TrainedModel
) -> None:
    project = champion_project
    second = project.register(trained)
    uri = project.registry.client.get_model_version_download_uri(MODEL, str(second))
    model_file = Path(uri.removeprefix("file://")) / "model.pkl"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    app = create_app(project.with_serving(reload_seconds=0.2), project.registry)

    with live(app) as client:
        project.registry.set_alias(MODEL, "champion", second)
        wait_until(lambda: counter(client, "mlkeel_model_load_failures") >= 1, 10, "a failure")
        answered = client.post(PREDICT, json=instances(trained))
        reload = client.post("/admin/reload").json()
        ready = client.get("/ready")

    assert (answered.status_code, answered.json()["version"]) == (200, 1)
    (outcome,) = reload["models"]
    assert outcome["action"] == "load_failed"
    assert (outcome["served_version"], outcome["target_version"]) == (1, second)
    assert "does not match" in outcome["message"]
    assert ready.status_code == 200


def test_admin_reload_swaps_at_once_and_a_pinned_version_stays(
    champion_project: Project, trained: TrainedModel
) -> None:
    project = champion_project
    second = project.register(trained)
    slow = project.with_serving(reload_seconds=3600)
    following = create_app(slow, project.registry)
    pinned = create_app(slow, project.registry, models=[ModelSpec.parse(f"{MODEL}@1")])

    with live(following) as client, live(pinned) as pinned_client:
        project.registry.set_alias(MODEL, "champion", second)
        (swapped,) = client.post("/admin/reload").json()["models"]
        (stayed,) = pinned_client.post("/admin/reload").json()["models"]
        versions = [
            c.post(PREDICT, json=instances(trained)).json()["version"]
            for c in (client, pinned_client)
        ]

    assert (swapped["action"], swapped["served_version"]) == ("swapped", second)
    assert (stayed["action"], stayed["served_version"]) == ("unchanged", 1)
    assert versions == [second, 1]


def test_the_heap_is_frozen_once_loaded_and_a_swapped_out_version_is_still_reclaimed(
    champion_project: Project, trained: TrainedModel
) -> None:
    project = champion_project
    second = project.register(trained)
    app = create_app(project.with_serving(reload_seconds=3600), project.registry)
    gc.unfreeze()

    with live(app) as client:
        frozen = gc.get_freeze_count()
        first = weakref.ref(app.state.serving.slots[MODEL].served.model)
        project.registry.set_alias(MODEL, "champion", second)
        (swapped,) = client.post("/admin/reload").json()["models"]

        assert swapped["action"] == "swapped"
        assert frozen > 0  # out of the collector's sight: no full-heap pauses while serving
        assert first() is None  # yet the version swapped out did not stay in memory
        assert gc.get_freeze_count() > 0
