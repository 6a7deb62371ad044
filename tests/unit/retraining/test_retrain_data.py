"""Labelled production records shaped like the training data; imports point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd

from mlkeel.datasource import Dataset
from mlkeel.retraining.data import production_frame, window_seconds
from mlkeel.settings import ModelConfig

PACKAGE = Path(__file__).parents[3] / "src" / "mlkeel"


def test_production_rows_keep_labelled_ones_once_in_the_data_shape() -> None:
    base = Dataset(pd.DataFrame({"x": [1.0, 2.0], "n": [1, 2], "y": [0, 1]}), "d.csv", "abc")
    config = ModelConfig(
        name="m", train="t:train", data="d.csv", target="y", task="classification",
        metric="accuracy",
    )  # fmt: skip
    records = [
        {
            "request_id": "a",
            "row": 0,
            "ts": 5.0,
            "features": {"x": 3.0, "n": 7, "z": 1},
            "label": 1,
        },
        {"request_id": "a", "row": 0, "ts": 5.0, "features": {"x": 3.0, "n": 7}, "label": 1},
        {"request_id": "b", "row": 0, "ts": 9.0, "features": {"x": 4.0, "n": 8}, "label": None},
        {"request_id": "c", "row": 2, "ts": 7.0, "features": {"x": 5.0, "n": 9}, "label": 0},
    ]  # the second is a shadow's copy of the first; b has no label yet

    frame, times = production_frame(records, base, config)

    assert frame.to_dict(orient="list") == {"x": [3.0, 5.0], "n": [7, 9], "y": [1, 0]}
    assert list(frame.dtypes) == list(base.frame.dtypes)
    assert times == [5.0, 7.0]


def test_window_spelling() -> None:
    assert window_seconds("30d") == 30 * 86400
    assert window_seconds("1.5h") == 5400


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_history_imports_neither_retraining_nor_serving_nor_the_cli() -> None:
    found = imports_of(PACKAGE / "history.py")
    assert not [n for n in found if n.startswith(("mlkeel.retraining", "mlkeel.serving",
                                                   "mlkeel.cli"))]  # fmt: skip


def test_retraining_never_imports_serving_or_the_cli() -> None:
    for path in (PACKAGE / "retraining").glob("*.py"):
        found = imports_of(path)
        assert not [n for n in found if n.startswith(("mlkeel.serving", "mlkeel.cli"))], path
