"""The retraining pipeline on a real MLflow store, with a real server following the champion."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from retrain_support import MODEL, Lab, make_lab

from mlkeel.errors import LockedError, PipelineError, RegistryError
from mlkeel.history import DeploymentEvent
from mlkeel.prediction_log.record import PredictionRecord
from mlkeel.prediction_log.repository import Label, PredictionRepository
from mlkeel.retraining.deploy import approve, rollback
from mlkeel.serving.app import create_app
from serving_support import live, wait_until

pytestmark = pytest.mark.timeout(240)
PREDICT = f"/v1/models/{MODEL}/predict"


def serve(lab: Lab) -> Any:
    settings = lab.settings.model_copy(
        update={"serving": lab.settings.serving.model_copy(update={"reload_seconds": 0.2})}
    )
    app = create_app(settings, lab.registry)
    app.state.history = lab.history
    return live(app)


def served_version(client: httpx.Client, lab: Lab) -> int:
    examples = lab.registry.load(MODEL, 1).schema.examples[:2]
    response = client.post(PREDICT, json={"instances": examples})
    assert response.status_code == 200, response.text
    return int(response.headers["X-Model-Version"])


def drift(lab: Lab) -> None:
    """Measurements read on a new instrument: 30% higher, plus an offset on a few columns."""
    path = lab.path / "data" / "breast_cancer.csv"
    frame = pd.read_csv(path)
    features = [c for c in frame.columns if c != "target"]
    frame[features] = frame[features] * 1.3
    frame[features[:5]] = frame[features[:5]] + frame[features[:5]].std()
    frame.to_csv(path, index=False)


def test_drifted_data_is_retrained_gated_promoted_and_served(lab: Lab) -> None:
    first = lab.first_champion()
    with serve(lab) as client:
        assert served_version(client, lab) == first
        drift(lab)

        result = lab.retrain(trigger="drift", reason="drift alert: 12 features")

        assert result.outcome == "promoted"
        assert result.gate is not None
        assert result.gate.passed
        new = result.version
        assert new == first + 1
        assert lab.champion() == new
        took = wait_until(lambda: served_version(client, lab) == new, 10, "the new champion")
        assert took < 5
        served_history = client.get(f"/v1/models/{MODEL}/history").json()

    info = lab.registry.version(MODEL, new)
    assert info.lineage["parent_version"] == first
    assert info.lineage["trigger"] == "drift"
    assert info.lineage["status"] == "accepted"
    assert info.lineage["gate"]["passed"] is True
    assert info.lineage["pipeline_run"] == result.run.id
    assert info.lineage["params"] == {"C": 1.0}
    assert info.data_hash != lab.registry.version(MODEL, first).data_hash
    assert Path(info.lineage["data_snapshot"], "train.parquet").is_file()

    run = lab.history.run(result.run.id)
    assert run is not None
    assert run.outcome == "promoted"
    assert [(s.name, s.status) for s in run.steps] == [
        (name, "ok") for name in ("data", "train", "evaluate", "register", "gate", "deploy")
    ]
    assert run.parent_version == first
    assert run.challenger_version == new

    events = lab.history.events(MODEL)
    assert [(e.action, e.version, e.previous) for e in events] == [
        ("promoted", first, None),
        ("promoted", new, first),
    ]
    assert events[-1].trigger == "drift"
    assert events[-1].reason == "drift alert: 12 features"
    assert served_history == [event.to_dict() for event in events]


def test_gate_blocks_a_model_that_ignores_the_features(lab: Lab) -> None:
    first = lab.first_champion()
    lab.configure(params={"mode": "worse"})

    result = lab.retrain()

    assert result.outcome == "blocked"
    assert result.gate is not None
    failed = [check.name for check in result.gate.failures]
    assert failed == ["no regression roc_auc (test set)"]
    assert "0.5000 vs champion v1's" in result.gate.summary()
    assert lab.champion() == first
    assert lab.registry.version(MODEL, first + 1).lineage["status"] == "rejected"
    stored = lab.history.run(result.run.id)
    assert stored is not None
    assert (stored.outcome, stored.failed_step) == ("blocked", "gate")
    assert stored.steps[-1].status == "skipped"
    assert lab.history.events(MODEL)[-1].action == "blocked"


def test_absolute_threshold_blocks_even_the_first_version(lab: Lab) -> None:
    lab.configure(min_metrics={"roc_auc": 0.999})

    result = lab.retrain()

    assert result.outcome == "blocked"
    assert result.gate is not None
    assert "fails the limit (at least 0.999)" in result.gate.summary()
    assert lab.champion() is None


def test_gate_blocks_a_model_that_cannot_be_loaded_from_the_registry(lab: Lab) -> None:
    first = lab.first_champion()
    lab.configure(params={"mode": "unloadable"})

    result = lab.retrain()

    assert result.outcome == "blocked"
    assert result.gate is not None
    assert [check.name for check in result.gate.failures] == ["smoke test"]
    assert "failed to load from the registry: RuntimeError" in result.gate.summary()
    assert lab.champion() == first


@pytest.mark.parametrize("where", ["train", "register"])
def test_a_crash_mid_pipeline_moves_no_alias_and_names_the_step(
    lab: Lab, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = lab.first_champion()
    if where == "train":
        lab.configure(params={"mode": "raise"})
    else:

        def refuse(*_: Any) -> Any:
            raise RegistryError("registering a model in the MLflow store failed: disk full")

        monkeypatch.setattr(lab.registry, "register", refuse)

    with pytest.raises(PipelineError) as failed:
        lab.retrain()

    assert failed.value.step == where
    assert f"failed at step {where!r}" in str(failed.value)
    assert "Production is unchanged (champion: version 1)" in str(failed.value)
    assert lab.champion() == first
    run = lab.history.runs(MODEL)[0]
    assert (run.outcome, run.failed_step) == ("failed", where)
    assert run.steps[-1].name == where
    assert run.steps[-1].status == "failed"
    assert [e.version for e in lab.history.events(MODEL)] == [first]


def test_rollback_restores_the_previous_version_and_the_server_serves_it(lab: Lab) -> None:
    first = lab.first_champion()
    second = lab.retrain().version
    assert lab.champion() == second
    with serve(lab) as client:
        assert served_version(client, lab) == second

        event = rollback(lab.registry, lab.history, MODEL, actor="oncall", reason="bad canary")

        assert (event.version, event.previous) == (first, second)
        wait_until(lambda: served_version(client, lab) == first, 10, "the rolled-back version")
    assert lab.history.events(MODEL)[-1].action == "rolled_back"


def test_approval_policy_waits_for_approve(lab: Lab) -> None:
    first = lab.first_champion()
    lab.configure(deploy="approval")

    result = lab.retrain()

    assert result.outcome == "awaiting_approval"
    assert lab.champion() == first
    event = approve(lab.registry, lab.history, MODEL, result.version or 0, actor="lead")
    assert lab.champion() == result.version
    assert event.action == "approved"
    assert event.run_id == result.run.id
    assert result.gate is not None
    assert event.gate == result.gate.to_dict()


def test_labelled_production_records_join_the_training_data(lab: Lab) -> None:
    lab.configure(include_production=True, production_window="7d")
    predictions = PredictionRepository(lab.history.engine)
    frame = pd.read_csv(lab.path / "data" / "breast_cancer.csv")
    rows = frame.head(40)
    now = datetime.now(UTC)
    records = [
        PredictionRecord(now, MODEL, 1, "champion", f"r{i}", 0, row.drop("target").to_dict(),
                         1, None, 1.0)
        for i, (_, row) in enumerate(rows.iterrows())
    ]  # fmt: skip
    predictions.insert(records)
    labels = [Label(f"r{i}", int(label)) for i, label in enumerate(rows["target"][:30])]
    assert predictions.record_labels(MODEL, labels) == []

    result = lab.retrain()

    info = lab.registry.version(MODEL, result.version or 0)
    assert info.lineage["production_rows"] == 30  # the 10 unlabelled records stay out
    assert info.lineage["data_rows"] == len(frame) + 30
    assert "30 labelled production records" in info.lineage["data_source"]
    assert set(info.lineage["data_time_range"]) == {"first", "last"}


@pytest.fixture
def shared_lab(tmp_path: Path, mlflow_store: Path, database_url: str) -> Any:
    yield from make_lab(tmp_path / "project", mlflow_store, database_url)


def test_two_concurrent_retrains_the_second_is_refused(shared_lab: Lab, tmp_path: Path) -> None:
    lab = shared_lab
    flag = tmp_path / "go"
    lab.configure(params={"mode": "wait", "flag": str(flag)})
    outcome: list[Any] = []
    first = threading.Thread(target=lambda: outcome.append(lab.retrain(actor="alice")))
    first.start()
    try:
        wait_until(lambda: bool(lab.history.runs(MODEL)), 30, "the first retrain to start")
        with pytest.raises(LockedError) as refused:
            lab.retrain(actor="bob")
    finally:
        flag.touch()
        first.join(timeout=120)
    message = str(refused.value)
    assert "a retrain of 'breast_cancer' already running since" in message
    assert "started by alice@" in message
    assert outcome[0].outcome == "promoted"
    assert len(lab.history.runs(MODEL)) == 1  # the refused one never started a run


def test_history_endpoint_needs_a_database(lab: Lab) -> None:
    lab.first_champion()
    app = create_app(lab.settings, lab.registry)  # no prediction log, no history given
    with live(app) as client:
        response = client.get(f"/v1/models/{MODEL}/history")
        unknown = client.get("/v1/models/nope/history")
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "history_unavailable"
    assert unknown.status_code == 404


def test_history_endpoint_reads_the_prediction_logs_database(lab: Lab) -> None:
    from mlkeel.prediction_log.runtime import open_prediction_log

    lab.first_champion()
    app = create_app(lab.settings, lab.registry, prediction_log=open_prediction_log(lab.settings))
    with live(app) as client:
        events = client.get(f"/v1/models/{MODEL}/history", params={"limit": 5}).json()
    assert [(e["action"], e["version"], e["actor"]) for e in events] == [("promoted", 1, "tester")]
    assert DeploymentEvent(**{k: v for k, v in events[0].items() if k != "at"}).version == 1
