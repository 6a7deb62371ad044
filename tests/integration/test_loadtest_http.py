"""The load tester against a real HTTP server on 127.0.0.1 (uvicorn in a background thread).

The server is a stand-in written here, implementing only the two routes the load tester uses:
the model's schema, and predict, which answers 500 for any instance whose ``x`` is -1 and 422
for instances with columns outside the schema, so errors can be counted exactly.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from mlkeel.cli import main
from mlkeel.loadtest import Progress, fetch_schema, run_load
from support import free_port

MODEL = "demo"
FEATURES = [
    {"name": "x", "kind": "numeric", "dtype": "float", "nullable": False,
     "minimum": -1.0, "maximum": 10.0, "categories": None},
    {"name": "colour", "kind": "categorical", "dtype": "str", "nullable": False,
     "minimum": None, "maximum": None, "categories": ["blue", "red"]},
]  # fmt: skip
# Row 1 of 4 fails: with batch 1 every 4th request is a 500, with batch 2 every 2nd.
EXAMPLES = [
    {"x": 1.0, "colour": "red"},
    {"x": -1, "colour": "blue"},
    {"x": 2.5, "colour": "red"},
    {"x": 7.0, "colour": "blue"},
]
RESULT_KEYS = {
    "requests", "rows", "errors", "status_counts", "error_kinds", "duration_s", "req_per_s",
    "rows_per_s", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms",
    "concurrency", "batch",
}  # fmt: skip


def stand_in_server() -> FastAPI:
    app = FastAPI()
    names = {feature["name"] for feature in FEATURES}

    @app.get("/v1/models/{name}")
    async def describe(name: str) -> JSONResponse:
        if name != MODEL:
            return JSONResponse({"detail": f"no model {name!r}"}, status_code=404)
        schema = {"features": FEATURES, "examples": EXAMPLES, "schema_version": 1}
        return JSONResponse({"name": name, "input_schema": schema})

    @app.post("/v1/models/{name}/predict")
    async def predict(name: str, request: Request) -> JSONResponse:
        instances = json.loads(await request.body())["instances"]
        if any(set(row) - names for row in instances):
            return JSONResponse({"detail": "unknown column"}, status_code=422)
        if any(row.get("x") == -1 for row in instances):
            return JSONResponse({"detail": "injected failure"}, status_code=500)
        return JSONResponse({"predictions": [0] * len(instances)})

    return app


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        stand_in_server(), host="127.0.0.1", port=port, log_level="warning", ws="none"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the stand-in server did not start within 10 s")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def unreachable_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def load(url: str, **options: Any) -> Any:
    settings: dict[str, Any] = {"concurrency": 4, "duration_s": 2.0, "batch": 1, **options}
    return asyncio.run(run_load(url, MODEL, EXAMPLES, **settings))


def cli(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(["loadtest", *args])
    code = exit_info.value.code
    return code if isinstance(code, int) else 1


def test_timed_run_stops_on_its_own_and_counts_consistently(server_url: str) -> None:
    snapshots: list[Progress] = []
    started = time.perf_counter()

    result = load(server_url, on_progress=snapshots.append)

    assert time.perf_counter() - started < 2.0 + 5.0
    assert 2.0 <= result.duration_s < 7.0
    assert result.requests > 0
    assert result.requests == sum(result.status_counts.values())
    assert result.rows == result.requests * result.batch
    assert set(result.status_counts) <= {200, 500}
    assert result.errors == result.status_counts[500] > 0
    assert result.error_kinds == {}
    assert result.latency_p50_ms is not None
    assert result.latency_p50_ms <= result.latency_p99_ms <= result.latency_max_ms
    assert snapshots
    assert snapshots[-1].requests == result.requests


def test_request_budget_stops_exactly_and_counts_injected_failures(server_url: str) -> None:
    result = load(server_url, duration_s=30.0, max_requests=40)

    assert result.requests == 40
    assert result.status_counts == {200: 30, 500: 10}
    assert result.errors == 10
    assert result.duration_s < 30.0


def test_batches_carry_batch_rows_each(server_url: str) -> None:
    result = load(server_url, batch=2, max_requests=20)

    assert result.rows == 40
    assert result.status_counts == {200: 10, 500: 10}


def test_unreachable_server_counts_transport_errors_by_kind(unreachable_url: str) -> None:
    result = load(unreachable_url, concurrency=2, duration_s=0.3)

    assert result.requests > 0
    assert result.status_counts == {}
    assert result.error_kinds == {"ConnectError": result.requests}
    assert result.all_failed


def test_fetch_schema_returns_the_nested_schema(server_url: str) -> None:
    schema = fetch_schema(server_url, MODEL)

    assert schema is not None
    assert schema["examples"] == EXAMPLES


def test_cli_json_prints_only_the_figures(
    server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli("--url", server_url, "--model", MODEL, "--concurrency", "2",
               "--duration", "1", "--requests", "20", "--json")  # fmt: skip

    out = capsys.readouterr().out
    assert code == 0
    data = json.loads(out)
    assert set(data) == RESULT_KEYS
    assert data["requests"] == 20
    assert data["status_counts"] == {"200": 15, "500": 5}
    assert data["errors"] == 5


def test_cli_table_reports_figures_and_errors(
    server_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli("--url", server_url, "--model", MODEL, "--duration", "0.5", "--concurrency", "2")

    out = capsys.readouterr().out
    assert code == 0
    for label in ("requests", "throughput", "latency p99", "status codes", "errors"):
        assert label in out


def test_cli_rows_file_sends_only_schema_columns(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("colour,x,target\nred,3.0,1\nblue,4.5,0\n")

    code = cli("--url", server_url, "--model", MODEL, "--rows", str(rows),
               "--batch", "3", "--max-requests", "10", "--json")  # fmt: skip

    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["status_counts"] == {"200": 10}
    assert data["rows"] == 30


def test_cli_exits_1_when_every_request_fails(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("x,colour\n-1,red\n")

    code = cli("--url", server_url, "--model", MODEL, "--rows", str(rows),
               "--requests", "5", "--json")  # fmt: skip

    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["errors"] == 5
    assert f"every request to {server_url} failed" in captured.err
    assert "HTTP 500" in captured.err


def test_cli_unreachable_url_exits_1_with_one_line(
    unreachable_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli("--url", unreachable_url, "--model", MODEL, "--duration", "1")

    err = capsys.readouterr().err
    assert code == 1
    assert "cannot reach" in err
    assert unreachable_url in err
    assert len(err.strip().splitlines()) == 1


def test_cli_unknown_model_exits_1(server_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli("--url", server_url, "--model", "nope", "--duration", "1")

    assert code == 1
    assert "no model 'nope'" in capsys.readouterr().err


def test_cli_missing_rows_file_is_a_data_error(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli("--url", server_url, "--model", MODEL, "--rows", str(tmp_path / "absent.csv"))

    assert code == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "value"),
    [("--duration", "0"), ("--duration", "3601"), ("--concurrency", "0"),
     ("--concurrency", "1025"), ("--batch", "0"), ("--requests", "0")],
)  # fmt: skip
def test_cli_rejects_unbounded_settings_before_sending(
    unreachable_url: str, option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli("--url", unreachable_url, "--model", MODEL, option, value)

    assert code == 2
    assert option in capsys.readouterr().err
