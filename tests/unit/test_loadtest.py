"""The load tester's pure parts: figures, row synthesis, request bodies, row files."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlkeel.errors import DataError
from mlkeel.loadtest import (
    LoadResult,
    make_bodies,
    read_rows,
    rows_from_schema,
    run_load,
    synthesise_rows,
)

FEATURES: list[dict[str, Any]] = [
    {"name": "age", "kind": "numeric", "dtype": "int", "nullable": False,
     "minimum": 18.0, "maximum": 90.0, "categories": None},
    {"name": "income", "kind": "numeric", "dtype": "float", "nullable": True,
     "minimum": -5.5, "maximum": 1000.25, "categories": None},
    {"name": "plan", "kind": "categorical", "dtype": "str", "nullable": False,
     "minimum": None, "maximum": None, "categories": ["basic", "gold", "pro"]},
    {"name": "active", "kind": "categorical", "dtype": "bool", "nullable": False,
     "minimum": None, "maximum": None, "categories": ["False", "True"]},
]  # fmt: skip

LATENCIES_S = [i / 1000 for i in range(1, 101)]  # 1 ms .. 100 ms


def _summary(**overrides: Any) -> LoadResult:
    arguments: dict[str, Any] = {
        "latencies_s": LATENCIES_S,
        "status_counts": {500: 10, 200: 90},
        "error_kinds": {"ReadTimeout": 1, "ConnectError": 4},
        "duration_s": 2.0,
        "concurrency": 4,
        "batch": 3,
    }
    arguments.update(overrides)
    latencies = arguments.pop("latencies_s")
    statuses = arguments.pop("status_counts")
    kinds = arguments.pop("error_kinds")
    return LoadResult.summarise(latencies, statuses, kinds, **arguments)


def test_summary_percentiles_are_numpy_linear_percentiles_in_ms() -> None:
    result = _summary()

    assert result.latency_p50_ms == pytest.approx(50.5)
    assert result.latency_p95_ms == pytest.approx(95.05)
    assert result.latency_p99_ms == pytest.approx(99.01)
    assert result.latency_max_ms == pytest.approx(100.0)
    expected = np.percentile(np.array(LATENCIES_S) * 1000, [50, 95, 99])
    assert [result.latency_p50_ms, result.latency_p95_ms, result.latency_p99_ms] == (
        pytest.approx(list(expected))
    )


def test_summary_counts_non_2xx_and_transport_errors_as_errors() -> None:
    result = _summary()

    assert result.requests == 105
    assert result.errors == 15
    assert result.rows == 105 * 3
    assert result.req_per_s == pytest.approx(52.5)
    assert result.rows_per_s == pytest.approx(157.5)
    assert list(result.status_counts) == [200, 500]
    assert list(result.error_kinds) == ["ConnectError", "ReadTimeout"]
    assert not result.all_failed


def test_summary_without_responses_has_no_latencies_and_all_failed() -> None:
    result = _summary(latencies_s=[], status_counts={}, error_kinds={"ConnectError": 7})

    assert result.latency_p50_ms is None
    assert result.latency_max_ms is None
    assert result.requests == result.errors == 7
    assert result.all_failed


def test_summary_of_only_server_errors_is_all_failed() -> None:
    assert _summary(status_counts={503: 4}, error_kinds={}, latencies_s=[0.1] * 4).all_failed


def test_to_dict_is_json_with_string_status_codes() -> None:
    data = json.loads(json.dumps(_summary().to_dict()))

    assert data["status_counts"] == {"200": 90, "500": 10}
    assert data["error_kinds"] == {"ConnectError": 4, "ReadTimeout": 1}
    assert set(data) == {
        "requests", "rows", "errors", "status_counts", "error_kinds", "duration_s",
        "req_per_s", "rows_per_s", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
        "latency_max_ms", "concurrency", "batch",
    }  # fmt: skip


def test_synthesised_rows_are_deterministic_for_a_seed() -> None:
    first = synthesise_rows(FEATURES, count=50, seed=3)

    assert first == synthesise_rows(FEATURES, count=50, seed=3)
    assert first != synthesise_rows(FEATURES, count=50, seed=4)
    assert all(list(row) == ["age", "income", "plan", "active"] for row in first)


def test_synthesised_rows_respect_ranges_types_and_categories() -> None:
    rows = synthesise_rows(FEATURES, count=300, seed=0)

    ages = [row["age"] for row in rows]
    incomes = [row["income"] for row in rows]
    assert all(type(age) is int and 18 <= age <= 90 for age in ages)
    assert all(type(v) is float and -5.5 <= v <= 1000.25 for v in incomes)
    assert len(set(ages)) > 30  # spread over the range, not a constant
    assert [row["plan"] for row in rows[:4]] == ["basic", "gold", "pro", "basic"]
    assert [row["active"] for row in rows[:3]] == [False, True, False]
    assert json.loads(json.dumps(rows)) == rows


def test_synthesis_copes_with_degenerate_and_missing_ranges() -> None:
    features = [
        {"name": "const", "kind": "numeric", "dtype": "float", "minimum": 2.0, "maximum": 2.0},
        {"name": "open", "kind": "numeric", "dtype": "int", "minimum": None, "maximum": None},
        {"name": "nan", "kind": "numeric", "dtype": "float", "minimum": math.nan, "maximum": 1.0},
        {"name": "free", "kind": "categorical", "dtype": "str", "categories": None},
    ]

    rows = synthesise_rows(features, count=20, seed=0)

    assert {row["const"] for row in rows} == {2.0}
    assert {row["open"] for row in rows} <= {0, 1}
    assert all(0.0 <= row["nan"] <= 1.0 for row in rows)
    assert all(isinstance(row["free"], str) for row in rows)


def test_rows_from_schema_prefers_examples_and_synthesises_without_them() -> None:
    examples = [{"age": 30, "plan": "gold"}, {"age": 40, "plan": "pro"}]

    assert rows_from_schema({"features": FEATURES, "examples": examples}) == examples
    synthesised = rows_from_schema({"features": FEATURES, "examples": []}, count=7)
    assert synthesised == synthesise_rows(FEATURES, count=7, seed=0)
    with pytest.raises(DataError, match="--rows"):
        rows_from_schema({"features": [], "examples": []})


def _instances(body: bytes) -> list[dict[str, Any]]:
    instances: list[dict[str, Any]] = json.loads(body)["instances"]
    return instances


def test_bodies_cycle_rows_so_each_row_is_sent_equally_often() -> None:
    rows = [{"i": i} for i in range(5)]

    bodies = make_bodies(rows, 2)

    assert [[r["i"] for r in _instances(b)] for b in bodies] == [
        [0, 1], [2, 3], [4, 0], [1, 2], [3, 4],
    ]  # fmt: skip
    assert all(isinstance(b, bytes) and b" " not in b for b in bodies)


def test_bodies_are_distinct_batches_only() -> None:
    rows = [{"i": i} for i in range(6)]

    assert len(make_bodies(rows, 3)) == 2
    assert len(make_bodies(rows, 6)) == 1
    assert len(make_bodies(rows, 1)) == 6
    assert [r["i"] for r in _instances(make_bodies(rows[:2], 5)[0])] == [0, 1, 0, 1, 0]
    assert len(make_bodies([{"i": i} for i in range(5000)], 1)) == 1024


def test_bodies_need_rows_and_a_positive_batch() -> None:
    with pytest.raises(DataError):
        make_bodies([], 1)
    with pytest.raises(ValueError, match="batch"):
        make_bodies([{"x": 1}], 0)


def test_read_rows_from_csv_keeps_schema_columns_and_turns_nan_into_null(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("x,plan,target\n1.5,gold,1\n,pro,0\n")

    assert read_rows(path, ["plan", "x"]) == [
        {"plan": "gold", "x": 1.5},
        {"plan": "pro", "x": None},
    ]
    assert read_rows(path)[0] == {"x": 1.5, "plan": "gold", "target": 1}


def test_read_rows_from_parquet(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pd.DataFrame({"x": [1, 2], "flag": [True, False]}).to_parquet(path)

    assert read_rows(path) == [{"x": 1, "flag": True}, {"x": 2, "flag": False}]


def test_read_rows_rejects_missing_files_columns_and_suffixes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_rows(tmp_path / "absent.csv")
    (tmp_path / "rows.txt").write_text("x\n1\n")
    with pytest.raises(DataError, match="suffix"):
        read_rows(tmp_path / "rows.txt")
    (tmp_path / "rows.csv").write_text("x\n1\n")
    with pytest.raises(DataError, match=r"\['plan'\]"):
        read_rows(tmp_path / "rows.csv", ["x", "plan"])
    (tmp_path / "empty.csv").write_text("x\n")
    with pytest.raises(DataError, match="no rows"):
        read_rows(tmp_path / "empty.csv")


@pytest.mark.parametrize(
    ("concurrency", "duration_s", "batch"),
    [(0, 1.0, 1), (1, 0.0, 1), (1, 3601.0, 1), (1, 1.0, 0)],
)
def test_run_load_refuses_unbounded_or_empty_settings(
    concurrency: int, duration_s: float, batch: int
) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        asyncio.run(
            run_load(
                "http://127.0.0.1:9",
                "m",
                [{"x": 1}],
                concurrency=concurrency,
                duration_s=duration_s,
                batch=batch,
            )
        )
