"""Fixtures for the model server: one trained model, and projects that hold it.

Training takes seconds, so the model is trained once per module and registered (0.1 s) into
each project that needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from serving_support import Project

from mlkeel.cli.compose import registry_for
from mlkeel.settings import load_settings
from mlkeel.training import TrainedModel, train_model
from support import make_project


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
