"""Fixtures for the retraining tests; serving_support (live servers) is shared with serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from retrain_support import Lab, make_lab


@pytest.fixture
def lab(tmp_path: Path, mlflow_store: Path) -> Iterator[Lab]:
    yield from make_lab(tmp_path / "project", mlflow_store)
