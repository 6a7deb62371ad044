"""Fixtures for the retraining tests; serving_support (live servers) is shared with serving."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))

from retrain_support import Lab, make_lab  # noqa: E402 - after the path is set


@pytest.fixture
def lab(tmp_path: Path, mlflow_store: Path) -> Iterator[Lab]:
    yield from make_lab(tmp_path / "project", mlflow_store)
