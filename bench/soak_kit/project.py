"""The soak's temporary project: ``mlkeel init --example breast_cancer``, trained, registered and
promoted through the library (the gate runs, as ``mlkeel promote`` would run it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL = "breast_cancer"


@dataclass(frozen=True)
class SoakProject:
    root: Path
    model: str
    version: int
    database_path: Path  # the SQLite file holding the prediction log
    rows: list[dict[str, Any]]  # the data set's feature rows, as a client sends them


def build_project(root: Path) -> SoakProject:
    """Scaffold the breast_cancer example under `root`, train v1, promote it to champion."""
    from mlkeel.cli.compose import registry_for
    from mlkeel.db import make_engine, upgrade
    from mlkeel.history import HistoryRepository
    from mlkeel.retraining.deploy import promote
    from mlkeel.scaffold import init_project
    from mlkeel.settings import load_settings
    from mlkeel.training import to_candidate, train_model

    init_project(root, MODEL)
    settings = load_settings(root, environ={})
    registry = registry_for(settings)
    trained = train_model(settings, settings.model(MODEL))
    version = registry.register(to_candidate(trained)).version
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
        promote(settings, registry, HistoryRepository(engine), MODEL, version, actor="soak")
    finally:
        engine.dispose()
    database = Path(settings.resolved_database_url.removeprefix("sqlite:///"))
    return SoakProject(root, MODEL, version, database, _rows(root / "data" / f"{MODEL}.csv"))


def _rows(csv: Path) -> list[dict[str, Any]]:
    """Every row of the data set as a JSON object of its features (the target dropped)."""
    import pandas as pd

    frame = pd.read_csv(csv).drop(columns=["target"])
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
    return rows
