"""Fixtures for the rollout tests: a trained model and projects holding two versions of it.

The live-server helpers come from tests/integration/serving/serving_support.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "serving"))

from serving_support import Project  # noqa: E402

from mlkeel.cli.compose import registry_for  # noqa: E402
from mlkeel.settings import load_settings  # noqa: E402
from mlkeel.training import TrainedModel, train_model  # noqa: E402
from support import make_project  # noqa: E402


@pytest.fixture(scope="module")
def new_project(
    tmp_path_factory: pytest.TempPathFactory, mlflow_store: Path
) -> Callable[[], Project]:
    """Makes a breast_cancer project with an empty MLflow store."""

    def make() -> Project:
        path = make_project(tmp_path_factory.mktemp("project") / "project", mlflow_store)
        settings = load_settings(path, environ={})
        return Project(path, settings, registry_for(settings))

    return make


@pytest.fixture(scope="module")
def trained(new_project: Callable[[], Project]) -> TrainedModel:
    project = new_project()
    return train_model(project.settings, project.settings.model())


@pytest.fixture
def champion_project(new_project: Callable[[], Project], trained: TrainedModel) -> Project:
    """A fresh project whose version 1 is the champion."""
    project = new_project()
    project.register(trained, promote=True)
    return project
