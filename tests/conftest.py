"""Shared fixtures: a clean environment, a real MLflow store, scaffolded projects.

Creating an MLflow SQLite store runs its migrations (~2 s here), so one store is created per
session and each test gets a byte copy of it: hermetic and fast.
"""

from __future__ import annotations

import contextlib
import glob
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlkeel.registry import Registry
from mlkeel.settings import Settings, load_settings
from mlkeel.training import TrainedModel
from private_postgres import PrivateCluster
from serving_support import Project
from support import make_project

TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by its folder: unit, integration or e2e."""
    for item in items:
        kind = Path(str(item.fspath)).relative_to(TESTS).parts[0]
        if kind in {"unit", "integration", "e2e"}:
            item.add_marker(kind)


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MLKEEL_* or MLFLOW_* variable from the developer's shell leaks into a test."""
    import os

    for name in list(os.environ):
        if name.startswith(("MLKEEL_", "MLFLOW_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised, empty MLflow SQLite store to copy from."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    from mlflow import MlflowClient

    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def project(tmp_path: Path, mlflow_store: Path) -> Path:
    """A breast_cancer project with an empty MLflow store."""
    return make_project(tmp_path / "project", mlflow_store)


@pytest.fixture
def settings(project: Path) -> Settings:
    return load_settings(project, environ={})


@pytest.fixture
def registry(settings: Settings) -> Registry:
    from mlkeel.cli.compose import registry_for

    return registry_for(settings)


POSTGRES_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL for this session, dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    name = f"mlkeel_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated operational database on each backend."""
    import sqlalchemy as sa

    from mlkeel.db import make_engine, metadata, upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'mlkeel.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade(engine)
    yield url
    if request.param == "postgresql":
        with engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                connection.execute(sa.delete(table))
    engine.dispose()


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[PrivateCluster]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not found or shutil.which("runuser") is None:
        pytest.fail("PostgreSQL server binaries are needed for the outage tests")
    root = Path(tempfile.mkdtemp(prefix="mlkeel-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    subprocess.run(
        ["runuser", "-u", "postgres", "--", f"{found[-1]}/initdb", "-D", str(data), "-A", "trust",
         "-U", "postgres"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = PrivateCluster(data, port, Path(found[-1]))
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


# ---- a trained model and projects holding it (serving, rollout) ---------------------------
# Training takes seconds, so the model is trained once per module and registered (0.1 s)
# into each project that needs it.
@pytest.fixture(scope="module")
def new_project(
    tmp_path_factory: pytest.TempPathFactory, mlflow_store: Path
) -> Callable[[], Project]:
    """Makes a breast_cancer project with an empty MLflow store."""
    from mlkeel.cli.compose import registry_for

    def make() -> Project:
        path = make_project(tmp_path_factory.mktemp("project") / "project", mlflow_store)
        project_settings = load_settings(path, environ={})
        return Project(path, project_settings, registry_for(project_settings))

    return make


@pytest.fixture(scope="module")
def trained(new_project: Callable[[], Project]) -> TrainedModel:
    from mlkeel.training import train_model

    project = new_project()
    return train_model(project.settings, project.settings.model())


@pytest.fixture
def champion_project(new_project: Callable[[], Project], trained: TrainedModel) -> Project:
    """A fresh project whose version 1 is the champion."""
    project = new_project()
    project.register(trained, promote=True)
    return project
