"""One site for the whole folder: building it (two trainings, traffic, monitoring) takes
seconds, and every test here only reads it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp_browser import Browser, chromium
from dashboard_site import Site, build_site, live_server


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mlflow_store: Path) -> Site:
    return build_site(tmp_path_factory.mktemp("dashboard"), mlflow_store)


@pytest.fixture(scope="module")
def base_url(site: Site) -> Iterator[str]:
    """The model server of the site (the dashboard is part of it)."""
    server = live_server(site)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with chromium(tmp_path_factory.mktemp("browser")) as driven:
        yield driven


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $TEST_ARTIFACTS/dashboard, else pytest's temporary folder."""
    chosen = os.environ.get("TEST_ARTIFACTS")
    root = Path(chosen) / "dashboard" if chosen else tmp_path_factory.mktemp("screenshots")
    root.mkdir(parents=True, exist_ok=True)
    return root
