from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlkeel.cli.alerts import open_store
from mlkeel.monitoring.alerts import AlertCandidate
from mlkeel.settings import Settings
from support import run_cli

T0 = datetime(2026, 1, 2, tzinfo=UTC)
DRIFT = AlertCandidate(
    "feature_drift", "mean_radius",
    "breast_cancer: feature mean_radius drifted (wasserstein 0.31 > 0.10)", {"score": 0.31},
)  # fmt: skip
ERRORS = AlertCandidate(
    "error_rate", "error_rate", "breast_cancer: error rate 9.0% > 5.0%", {"error_rate": 0.09}
)


def raise_alerts(settings: Settings) -> None:
    """An error-rate alert that opened and resolved, then a drift alert still open."""
    rules = {"feature_drift", "error_rate"}
    with open_store(settings) as store:
        store.process("breast_cancer", [ERRORS], rules, [], timedelta(hours=1), T0)
        store.process("breast_cancer", [DRIFT], rules, [], timedelta(hours=1), T0 + timedelta(1))


def test_alerts_lists_open_and_resolved_alerts_newest_first(
    project: Path,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # Rich reads it: one table row per line
    raise_alerts(settings)

    code, out, _ = run_cli(capsys, "alerts", "-p", str(project))

    assert code == 0
    for heading in ("id", "model", "rule", "subject", "status", "opened", "last seen", "message"):
        assert heading in out
    assert out.index("feature_drift") < out.index("error_rate")
    lines = [line for line in out.splitlines() if "breast_cancer" in line]
    assert len(lines) == 2
    assert "open" in lines[0]
    assert "2026-01-03T00:00:00Z" in lines[0]
    assert DRIFT.message in lines[0]
    assert "resolved" in lines[1]


def test_alerts_open_json_lists_only_open_alerts_with_evidence(
    project: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    raise_alerts(settings)

    code, out, _ = run_cli(capsys, "alerts", "--open", "--json", "--model", "breast_cancer",
                       "-p", str(project))  # fmt: skip

    assert code == 0
    (alert,) = json.loads(out)
    assert alert["rule"] == "feature_drift"
    assert alert["subject"] == "mean_radius"
    assert alert["status"] == "open"
    assert alert["message"] == DRIFT.message
    assert alert["evidence"] == {"score": 0.31}
    assert alert["opened_at"] == "2026-01-03T00:00:00+00:00"


def test_alerts_on_a_fresh_project_says_there_are_none(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "alerts", "--open", "-p", str(project))
    assert code == 0
    assert "No open alerts." in out

    code, out, _ = run_cli(capsys, "alerts", "--json", "-p", str(project))
    assert code == 0
    assert json.loads(out) == []


def test_alerts_for_an_unknown_model_names_the_defined_ones(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "alerts", "--model", "nope", "-p", str(project))
    assert code == 2
    assert "no model 'nope'" in err
    assert "breast_cancer" in err
