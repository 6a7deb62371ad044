"""The prediction API over real HTTP: answers, every refusal, MLflow's protocol, metrics."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlkeel.prediction_log.record import FeatureColumns, PredictionRecord
from mlkeel.serving.app import create_app
from mlkeel.training import TrainedModel
from serving_support import MODEL, Project, live, wait_until

pytestmark = pytest.mark.timeout(120)
PREDICT = f"/v1/models/{MODEL}/predict"
MAX_ROWS = 50
MAX_BODY = 64 * 1024


class RecordingSink:
    def __init__(self) -> None:
        self.records: list[PredictionRecord] = []
        self.columns: dict[str, FeatureColumns | None] = {}
        self.lock = threading.Lock()

    def submit(
        self, records: Sequence[PredictionRecord], columns: FeatureColumns | None = None
    ) -> None:
        with self.lock:
            self.records.extend(records)
            self.columns[records[0].request_id] = columns


@pytest.fixture(scope="module")
def project(new_project: Callable[[], Project], trained: TrainedModel) -> Project:
    project = new_project()
    project.register(trained, promote=True)
    return project


@pytest.fixture(scope="module")
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture(scope="module")
def client(project: Project, sink: RecordingSink) -> Iterator[httpx.Client]:
    settings = project.with_serving(max_batch_rows=MAX_ROWS, max_body_bytes=MAX_BODY)
    with live(create_app(settings, project.registry, sink)) as client:
        yield client


@pytest.fixture(scope="module")
def rows(trained: TrainedModel) -> list[dict[str, Any]]:
    """Real feature rows (the test split), JSON-ready."""
    frame = trained.dataset.frame.drop(columns=["target"]).head(40)
    return json.loads(frame.to_json(orient="records"))


def probabilities(trained: TrainedModel, rows: list[dict[str, Any]]) -> np.ndarray:
    return trained.model.predict_proba(pd.DataFrame(rows))  # type: ignore[no-any-return]


def test_one_row_gets_probabilities_summing_to_one_and_the_request_id_back(
    client: httpx.Client, rows: list[dict[str, Any]], trained: TrainedModel
) -> None:
    response = client.post(PREDICT, json={"instances": rows[:1]}, headers={"X-Request-ID": "r-1"})

    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["version"], body["request_id"]) == (MODEL, 1, "r-1")
    assert response.headers["X-Request-ID"] == "r-1"
    assert response.headers["X-Model-Version"] == "1"
    (answer,) = body["predictions"]
    assert set(answer["probabilities"]) == {"0", "1"}
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0)
    assert answer["prediction"] == int(trained.model.predict(pd.DataFrame(rows[:1]))[0])


def test_many_rows_match_the_model_itself(
    client: httpx.Client, rows: list[dict[str, Any]], trained: TrainedModel
) -> None:
    response = client.post(PREDICT, json={"instances": rows})

    assert response.status_code == 200
    got = np.array(
        [[p["probabilities"]["0"], p["probabilities"]["1"]] for p in response.json()["predictions"]]
    )
    np.testing.assert_allclose(got, probabilities(trained, rows), rtol=1e-12)
    assert uuid.UUID(response.headers["X-Request-ID"]).version == 7  # generated: time-ordered


def test_int_for_a_float_feature_is_accepted(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    row = {**rows[0], "mean_radius": 14}

    assert client.post(PREDICT, json={"instances": [row]}).status_code == 200


def _change(index: int, **values: Any) -> Callable[[list[dict[str, Any]]], Any]:
    def change(rows: list[dict[str, Any]]) -> Any:
        changed = [dict(row) for row in rows[:5]]
        for key, value in values.items():
            if value is _DROP:
                del changed[index][key]
            else:
                changed[index][key] = value
        return {"instances": changed}

    return change


_DROP = object()

INVALID = [
    pytest.param(_change(3, mean_radius=_DROP), 422, "missing_feature", "instances[3].mean_radius",
                 id="missing feature"),
    pytest.param(_change(2, colour="red"), 422, "unknown_feature", "instances[2].colour",
                 id="unknown feature"),
    pytest.param(_change(1, mean_area="big"), 422, "wrong_type", "instances[1].mean_area",
                 id="string for number"),
    pytest.param(_change(4, mean_area=True), 422, "wrong_type", "instances[4].mean_area",
                 id="bool for number"),
    pytest.param(_change(0, mean_texture=None), 422, "null_value", "instances[0].mean_texture",
                 id="null"),
    pytest.param(lambda rows: {"instances": []}, 422, "empty_input", "instances", id="empty"),
    pytest.param(lambda rows: {"instances": rows[0]}, 422, "invalid_input", "instances",
                 id="not a list"),
    pytest.param(lambda rows: {"instances": [rows[0], 7]}, 422, "invalid_input", "instances[1]",
                 id="row not an object"),
    pytest.param(lambda rows: {"rows": rows[:1]}, 422, "invalid_request", "instances",
                 id="no instances"),
    pytest.param(lambda rows: {"instances": [rows[0]] * (MAX_ROWS + 1)}, 413, "too_many_rows",
                 "instances", id="too many rows"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "status", "kind", "field"), INVALID)
def test_invalid_input_is_refused_naming_the_field(
    client: httpx.Client,
    rows: list[dict[str, Any]],
    make: Callable[[list[dict[str, Any]]], Any],
    status: int,
    kind: str,
    field: str,
) -> None:
    response = client.post(PREDICT, json=make(rows))

    assert response.status_code == status
    error = response.json()["error"]
    assert (error["type"], error["field"]) == (kind, field)
    assert field in error["message"]
    assert error["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_refused(
    client: httpx.Client, rows: list[dict[str, Any]], literal: str
) -> None:
    sent = [dict(row) for row in rows[:3]]
    sent[2]["mean_smoothness"] = 123456.5
    body = json.dumps({"instances": sent}).replace("123456.5", literal)

    response = client.post(PREDICT, content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["type"], error["field"]) == ("not_finite", "instances[2].mean_smoothness")
    assert "instances[2].mean_smoothness" in error["message"]


def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        PREDICT, content=b'{"instances": [', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "malformed_json"


def test_unknown_model_is_404_listing_the_served_ones(client: httpx.Client) -> None:
    response = client.post("/v1/models/churn/predict", json={"instances": [{}]})

    assert response.status_code == 404
    assert MODEL in response.json()["error"]["message"]
    assert client.get("/v1/models/churn").status_code == 404


def test_body_over_the_limit_is_413_by_length_or_by_counting(client: httpx.Client) -> None:
    big = b'{"instances": [' + b" " * MAX_BODY + b"]}"

    declared = client.post(PREDICT, content=big, headers={"Content-Type": "application/json"})
    chunked = client.post(PREDICT, content=iter([big[:1000], big[1000:]]))

    assert declared.status_code == chunked.status_code == 413
    assert "Content-Length" not in chunked.request.headers
    assert chunked.json()["error"]["type"] == "body_too_large"


def test_bad_request_id_is_422(client: httpx.Client, rows: list[dict[str, Any]]) -> None:
    response = client.post(PREDICT, json={"instances": rows[:1]}, headers={"X-Request-ID": "a b/c"})

    assert response.status_code == 422
    assert response.json()["error"]["field"] == "headers.X-Request-ID"


def test_invocations_accepts_mlflows_four_formats_like_v1(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    sample = rows[:7]
    frame = pd.DataFrame(sample)
    expected = [
        p["prediction"]
        for p in client.post(PREDICT, json={"instances": sample}).json()["predictions"]
    ]
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": list(frame), "data": frame.to_numpy().tolist()}},  # noqa: E501
        "dataframe_records": {"dataframe_records": sample},
        "instances": {"instances": sample},
        "inputs records": {"inputs": sample},
        "inputs columns": {"inputs": {name: frame[name].tolist() for name in frame.columns}},
    }  # fmt: skip
    for name, body in bodies.items():
        response = client.post("/invocations", json=body)
        assert response.status_code == 200, (name, response.text)
        assert response.json() == {"predictions": expected}, name


def test_invocations_errors_name_the_field(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    split = json.loads(pd.DataFrame(rows[:2]).to_json(orient="split", index=False))
    split["data"][1][0] = "x"

    response = client.post("/invocations", json={"dataframe_split": split})

    assert response.status_code == 422
    assert response.json()["error"]["field"] == f"dataframe_split.data[1].{split['columns'][0]}"


def test_out_of_range_values_are_served_and_counted(
    client: httpx.Client, rows: list[dict[str, Any]]
) -> None:
    row = {**rows[0], "mean_area": 1e6}

    assert client.post(PREDICT, json={"instances": [row, row]}).status_code == 200
    events = _value(client, "mlkeel_data_quality_events", feature="mean_area", kind="out_of_range")
    assert events >= 2


def test_metrics_count_the_requests(client: httpx.Client, rows: list[dict[str, Any]]) -> None:
    ok, refused = ({"model": MODEL, "version": "1", "status": s} for s in ("200", "422"))
    before = _value(client, "mlkeel_requests", **ok), _value(client, "mlkeel_requests", **refused)
    rows_before = _value(client, "mlkeel_predictions", model=MODEL, version="1")
    for _ in range(3):
        client.post(PREDICT, json={"instances": rows[:2]})
    client.post(PREDICT, json={"instances": []})

    assert _value(client, "mlkeel_requests", **ok) - before[0] == 3
    assert _value(client, "mlkeel_requests", **refused) - before[1] == 1
    assert _value(client, "mlkeel_predictions", model=MODEL, version="1") - rows_before == 6
    assert _value(client, "mlkeel_model_info", model=MODEL, version="1") == 1.0
    assert _value(client, "mlkeel_model_info") == 1.0
    assert _value(client, "mlkeel_in_flight_requests") == 0.0
    assert _value(client, "mlkeel_predicted_class", model=MODEL) >= 6
    assert _value(client, "mlkeel_request_latency_seconds_count", model=MODEL) >= 4


def test_health_ready_and_model_description(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["models"] == {MODEL: "serving version 1"}

    (described,) = client.get("/v1/models").json()["models"]
    assert described == client.get(f"/v1/models/{MODEL}").json()
    assert (described["version"], described["aliases"]) == (1, ["champion"])
    assert set(described["lineage"]) >= {"data_hash", "code_commit", "metrics", "created_at"}
    assert described["lineage"]["metrics"]["roc_auc"] > 0.9
    assert len(described["input_schema"]["features"]) == 30
    assert described["input_schema"]["examples"]


def test_each_predicted_row_is_handed_to_the_prediction_log(
    client: httpx.Client, rows: list[dict[str, Any]], sink: RecordingSink
) -> None:
    client.post(PREDICT, json={"instances": rows[:3]}, headers={"X-Request-ID": "logged"})

    wait_until(lambda: sum(r.request_id == "logged" for r in sink.records) == 3, 10, "the log")
    logged = [r for r in sink.records if r.request_id == "logged"]
    assert [r.row for r in logged] == [0, 1, 2]
    assert logged[1].features == rows[1]
    assert (logged[0].model, logged[0].version, logged[0].variant) == (MODEL, 1, "champion")
    assert logged[0].probabilities is not None
    assert logged[0].time.tzinfo is not None
    columns = sink.columns["logged"]
    assert columns is not None
    assert columns.numbers.shape == (3, 30)
    assert dict(zip(columns.layout.numeric, columns.numbers[1].tolist(), strict=True)) == rows[1]


def test_batching_answers_each_concurrent_request_with_its_own_rows(
    project: Project, rows: list[dict[str, Any]], trained: TrainedModel
) -> None:
    settings = project.with_serving(batching=True, batch_max_wait_ms=5.0)
    expected = probabilities(trained, rows)
    app = create_app(settings, project.registry)

    def ask(client: httpx.Client, start: int) -> tuple[int, list[Any]]:
        chosen = rows[start : start + 1 + start % 3]
        response = client.post(PREDICT, json={"instances": chosen})
        assert response.status_code == 200
        return start, response.json()["predictions"]

    with live(app) as client, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: ask(client, i), [i % 37 for i in range(120)]))

    for start, predictions in answers:
        got = [[p["probabilities"]["0"], p["probabilities"]["1"]] for p in predictions]
        np.testing.assert_allclose(got, expected[start : start + len(got)], rtol=1e-12)
        assert len(got) == 1 + start % 3
    assert app.state.serving.batchers[MODEL].calls <= 120


def _value(client: httpx.Client, family: str, **labels: str) -> float:
    """The sum of `family`'s samples whose labels include `labels`."""
    total = 0.0
    for metric in text_string_to_metric_families(client.get("/metrics").text):
        for sample in metric.samples:
            if (
                sample.name in (family, family + "_total")
                and labels.items() <= sample.labels.items()
            ):
                total += sample.value
    return total
