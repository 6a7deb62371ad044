"""Canary and shadow on a real server (uvicorn on loopback), a real MLflow store, two versions."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from rollout_support import Flaky, every
from typer.testing import CliRunner

from mlkeel.db import make_engine, upgrade
from mlkeel.history import HistoryRepository
from mlkeel.monitoring.alert_store import AlertStore
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.prediction_log.runtime import open_prediction_log
from mlkeel.rollout import Rollout, canary_state, check
from mlkeel.serving.app import create_app
from mlkeel.settings import Settings
from mlkeel.training import TrainedModel
from serving_support import MODEL, Project, live, wait_until

pytestmark = pytest.mark.timeout(240)
PREDICT = f"/v1/models/{MODEL}/predict"


@pytest.fixture(scope="module")
def rows(trained: TrainedModel) -> list[dict[str, Any]]:
    frame = trained.dataset.frame.drop(columns=["target"])
    return json.loads(frame.to_json(orient="records"))  # type: ignore[no-any-return]


def tuned(project: Project, **rollout: Any) -> Settings:
    """The project's settings with a fast reload and `rollout` overrides."""
    model = project.settings.models[MODEL]
    model = model.model_copy(update={"rollout": model.rollout.model_copy(update=rollout)})
    serving = project.settings.serving.model_copy(update={"reload_seconds": 0.2})
    return project.settings.model_copy(update={"models": {MODEL: model}, "serving": serving})


def tools(settings: Settings, project: Project) -> tuple[Rollout, PredictionRepository]:
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return Rollout(project.registry, HistoryRepository(engine)), PredictionRepository(engine)


def flaky(trained: TrainedModel, share: float) -> TrainedModel:
    names = trained.schema.names
    spared = [[example[name] for name in names] for example in trained.schema.examples]
    return dataclasses.replace(trained, model=Flaky(trained.model, share, spared))


def served(response: httpx.Response) -> tuple[str, str]:
    return response.headers["X-Model-Variant"], response.headers["X-Model-Version"]


def send(client: httpx.Client, row: dict[str, Any], key: str) -> httpx.Response:
    return client.post(PREDICT, json={"instances": [row]}, headers={"X-Routing-Key": key})


def test_canary_share_is_within_two_points_and_sticky_per_routing_key(
    champion_project: Project, trained: TrainedModel, rows: list[dict[str, Any]]
) -> None:
    project = champion_project
    settings = tuned(project)
    second = project.register(trained)
    rollout, _ = tools(settings, project)
    rollout.start_canary(MODEL, second, settings.models[MODEL].rollout, percent=10)
    keys = [f"user-{i}" for i in range(2500)] * 4  # 10,000 requests, each key four times

    with live(create_app(settings, project.registry)) as client:

        def one(i: int) -> tuple[str, str, str, int]:
            response = send(client, rows[i % len(rows)], keys[i])
            variant = response.headers["X-Model-Variant"]
            return keys[i], variant, response.headers["X-Model-Version"], response.status_code

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(len(keys))))

    assert {status for *_, status in answers} == {200}
    share = sum(variant == "canary" for _, variant, _, _ in answers) / len(answers) * 100
    assert abs(share - 10) <= 2, share
    by_key: dict[str, set[str]] = {}
    for key, variant, _, _ in answers:
        by_key.setdefault(key, set()).add(variant)
    assert all(len(variants) == 1 for variants in by_key.values())
    versions = {(variant, version) for _, variant, version, _ in answers}
    assert versions == {("champion", "1"), ("canary", str(second))}


def test_a_canary_failing_5_percent_is_rolled_back_and_no_client_sees_an_error(
    champion_project: Project, trained: TrainedModel, rows: list[dict[str, Any]]
) -> None:
    project = champion_project
    settings = tuned(project, min_requests=50)
    bad = flaky(trained, 5.0)
    assert 0.02 < np.mean([bad.model.fails(list(row.values())) for row in rows]) < 0.09
    second = project.register(bad)
    rollout, repository = tools(settings, project)
    rollout.start_canary(MODEL, second, settings.models[MODEL].rollout, percent=30)
    prediction_log = open_prediction_log(settings)
    statuses: Counter[int] = Counter()
    variants: Counter[str] = Counter()

    app = create_app(settings, project.registry, prediction_log=prediction_log)
    with live(app) as client, every(0.3, lambda: check(settings, rollout, repository, MODEL)) as e:
        for i in range(3000):
            response = send(client, rows[i % len(rows)], f"k{i}")
            statuses[response.status_code] += 1
            variants[response.headers["X-Model-Variant"]] += 1
            if i % 100 == 99 and canary_state(project.registry, MODEL) is None:
                break
        wait_until(lambda: canary_state(project.registry, MODEL) is None, 30, "the rollback")
        failures = _metric(client, "mlkeel_variant_failures_total", variant="canary")
        wait_until(lambda: send(client, rows[0], "x").headers["X-Model-Variant"] == "champion",
                   30, "the server to drop the canary")  # fmt: skip
        after = Counter(send(client, row, f"z{i}").headers["X-Model-Variant"]
                        for i, row in enumerate(rows[:200]))  # fmt: skip

    assert e == []
    assert statuses == Counter({200: sum(statuses.values())})
    assert variants["canary"] > 0
    assert failures >= 3
    assert after == Counter({"champion": 200})
    assert project.registry.resolve(MODEL, "champion").version == 1
    tags = project.registry.version(MODEL, second).lineage
    assert tags["rollout_status"] == "rolled_back"
    assert tags["canary_verdict"]["decision"] == "rollback"
    assert "stopped routing" in tags["canary_verdict"]["reasons"][0]
    events = rollout.history.events(MODEL)
    assert [(e.action, e.alias) for e in events] == [("promoted", "canary"),
                                                     ("rolled_back", "canary")]  # fmt: skip
    alerts = AlertStore(repository.engine).list(MODEL, open_only=True)
    assert [a.rule for a in alerts] == ["canary_rollback"]


def test_a_healthy_canary_is_promoted_after_its_window(
    champion_project: Project, trained: TrainedModel, rows: list[dict[str, Any]]
) -> None:
    project = champion_project
    settings = tuned(project, min_requests=50, duration="3s")
    second = project.register(trained)
    rollout, repository = tools(settings, project)
    rollout.start_canary(MODEL, second, settings.models[MODEL].rollout, percent=30)
    verdicts: list[str] = []

    def job() -> None:
        verdict = check(settings, rollout, repository, MODEL)
        if verdict is not None:
            verdicts.append(verdict.decision)

    app = create_app(settings, project.registry, prediction_log=open_prediction_log(settings))
    with live(app) as client, every(0.3, job) as errors:
        statuses = Counter()
        for i in range(4000):
            statuses[send(client, rows[i % len(rows)], f"k{i}").status_code] += 1
            if "promote" in verdicts:
                break
        # The server follows the registry every reload_seconds; the margin is for a loaded CI
        # machine (the 5 s promise is tested by the serving swap test).
        wait_until(lambda: served(send(client, rows[0], "q")) == ("champion", str(second)),
                   30, "the promoted version to serve as champion")  # fmt: skip
        last = [served(send(client, row, f"u{i}")) for i, row in enumerate(rows[:100])]

    assert errors == []
    assert set(statuses) == {200}
    assert verdicts[0] == "wait"
    assert verdicts[-1] == "promote"
    assert project.registry.resolve(MODEL, "champion").version == second
    assert canary_state(project.registry, MODEL) is None
    assert set(last) == {("champion", str(second))}
    promoted = rollout.history.events(MODEL)[-1]
    assert (promoted.action, promoted.alias, promoted.version, promoted.previous) == (
        "promoted", "champion", second, 1,
    )  # fmt: skip
    assert promoted.gate is not None
    assert promoted.gate["evidence"]["canary"]["requests"] >= 50


def test_shadow_gets_every_request_off_the_response_path_and_adds_no_failed_request(
    champion_project: Project, trained: TrainedModel, rows: list[dict[str, Any]]
) -> None:
    project = champion_project
    settings = tuned(project)
    second = project.register(flaky(trained, 20.0))  # a shadow that fails a fifth of its rows
    rollout, repository = tools(settings, project)
    rollout.start_shadow(MODEL, second)
    prediction_log = open_prediction_log(settings)

    with live(create_app(settings, project.registry, prediction_log=prediction_log)) as client:
        answers = [send(client, row, f"s{i}") for i, row in enumerate(rows[:300])]
        wait_until(lambda: _metric(client, "mlkeel_predictions_total", variant="shadow")
                   + _metric(client, "mlkeel_variant_failures_total", variant="shadow") >= 300,
                   20, "the shadow to catch up")  # fmt: skip
        failed = _metric(client, "mlkeel_variant_failures_total", variant="shadow")
        prediction_log.writer.flush()
        logged = Counter((r["variant"], r["version"]) for r in repository.window(MODEL))

    assert {a.status_code for a in answers} == {200}
    assert {a.headers["X-Model-Variant"] for a in answers} == {"champion"}
    assert failed > 0
    assert logged[("champion", 1)] == 300
    assert logged[("shadow", second)] == 300 - failed


def test_cli_starts_shows_and_aborts_a_canary(
    champion_project: Project, trained: TrainedModel
) -> None:
    from mlkeel.cli import app

    project = champion_project
    second = project.register(trained)
    runner = CliRunner()
    where = ["--project", str(project.path)]

    started = runner.invoke(app, ["rollout", "start", MODEL, str(second), "--canary", "5",
                                  "--for", "10m", *where])  # fmt: skip
    shown = runner.invoke(app, ["rollout", "status", MODEL, "--json", *where])
    aborted = runner.invoke(app, ["rollout", "abort", MODEL, *where])
    after = runner.invoke(app, ["rollout", "status", MODEL, *where])

    assert started.exit_code == 0, started.output
    assert "5% of requests" in started.output
    assert shown.exit_code == 0, shown.output
    verdict = json.loads(shown.output)["verdict"]
    assert verdict["decision"] == "wait"
    assert "no verdict before 200" in verdict["reasons"][0]
    assert aborted.exit_code == 0
    assert f"canary version {second}" in aborted.output
    assert canary_state(project.registry, MODEL) is None
    assert after.exit_code == 1
    assert "rolled back" in after.output


def _metric(client: httpx.Client, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )
