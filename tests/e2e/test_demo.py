"""The demo's story, checked from the stores it leaves behind, not from what it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlkeel.cli.compose import registry_for
from mlkeel.db import make_engine
from mlkeel.history import HistoryRepository
from mlkeel.monitoring.alert_store import AlertStore
from mlkeel.settings import load_settings


@pytest.mark.timeout(400)
def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    root = tmp_path / "demo"

    result = subprocess.run(
        [sys.executable, "-m", "mlkeel", "demo", "--no-wait", "--fast", "--dir", str(root)],
        capture_output=True, text=True, timeout=380,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    report = (root / "report.html").read_text()
    assert "breast_cancer" in report
    assert "<svg" in report
    settings = load_settings(root, environ={})
    registry = registry_for(settings)
    versions = {info.version: info for info in registry.versions("breast_cancer")}
    assert sorted(versions) == [1, 2, 3]
    assert versions[2].aliases == ["champion"]  # the retrained canary was promoted
    assert versions[3].aliases == []  # the broken canary was rolled back
    assert versions[2].lineage["trigger"] == "drift"
    engine = make_engine(settings.resolved_database_url)
    try:
        alerts = AlertStore(engine).list("breast_cancer")
        events = HistoryRepository(engine).events("breast_cancer", None)
    finally:
        engine.dispose()
    rules = {alert.rule for alert in alerts}
    assert {"feature_drift", "performance_drop"} <= rules
    moves = [(event.action, event.alias, event.version, event.previous) for event in events]
    assert ("promoted", "champion", 1, None) in moves
    assert ("promoted", "canary", 2, 1) in moves
    assert ("promoted", "champion", 2, 1) in moves
    # A rollback names what serves now (v2) and what was taken out (the broken v3).
    assert ("rolled_back", "canary", 2, 3) in moves
