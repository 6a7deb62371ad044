"""retrain → promote (gated) → rollback → approve → history, through the real CLI."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from mlkeel.db import make_engine
from mlkeel.history import locks
from support import run_cli

MODEL = "breast_cancer"
WORSE_TRAIN = """
from sklearn.dummy import DummyClassifier


def train(data, params):
    return DummyClassifier(strategy="prior").fit(data.drop(columns=["target"]), data["target"])
"""


@pytest.fixture
def project(tmp_path: Path, mlflow_store: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "bc"
    assert run_cli(capsys, "init", str(root), "--example", "breast_cancer")[0] == 0
    (root / ".mlkeel").mkdir()
    shutil.copyfile(mlflow_store, root / ".mlkeel" / "mlflow.db")
    assert run_cli(capsys, "train", "-p", str(root))[0] == 0
    code, out, err = run_cli(capsys, "promote", MODEL, "1", "-p", str(root), "--by", "alice")
    assert code == 0, err
    assert "champion is now version 1" in out
    return root


def flat(text: str) -> str:
    """Rich wraps lines at the terminal width; compare text with single spaces."""
    return " ".join(text.split())


def events(capsys: pytest.CaptureFixture[str], project: Path) -> list[dict[str, object]]:
    code, out, _ = run_cli(capsys, "history", MODEL, "--json", "-p", str(project))
    assert code == 0
    found: list[dict[str, object]] = json.loads(out)
    return found


def test_retrain_promotes_and_history_tells_who_when_why(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "retrain", "-p", str(project), "--reason", "weekly refresh",
                         "--trigger", "schedule", "--by", "cron")  # fmt: skip

    assert code == 0, err
    for step in ("data", "train", "evaluate", "register", "gate", "deploy"):
        assert f"✓ {step}" in err
    assert "champion is now version 2 (was version 1)" in flat(out)
    timeline = events(capsys, project)
    assert [(e["action"], e["version"], e["actor"]) for e in timeline] == [
        ("promoted", 1, "alice"), ("promoted", 2, "cron")
    ]  # fmt: skip
    assert timeline[1]["reason"] == "weekly refresh"
    assert timeline[1]["trigger"] == "schedule"
    assert "roc_auc" in timeline[1]["metrics"]  # type: ignore[operator]

    code, out, _ = run_cli(capsys, "history", MODEL, "--version", "1", "--json", "-p", str(project))
    lineage = json.loads(out)
    assert lineage["data"]["data_rows"] == 569
    assert lineage["params"] == {"C": 1.0}
    assert lineage["served"][0]["retired"] is not None  # retired when version 2 took over

    code, out, _ = run_cli(capsys, "history", MODEL, "--runs", "--json", "-p", str(project))
    (audit,) = json.loads(out)
    assert audit["outcome"] == "promoted"
    assert [s["name"] for s in audit["steps"]][-1] == "deploy"


def test_worse_model_is_blocked_then_forced_with_a_reason_then_rolled_back(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "train.py").write_text(WORSE_TRAIN)

    code, out, err = run_cli(capsys, "retrain", "-p", str(project))

    assert code == 1
    assert "✗ gate" in err
    assert "challenger version 2 of 'breast_cancer' failed the gate" in err
    assert "The champion is unchanged (version 1)" in err
    assert "FAIL" in out

    code, _, err = run_cli(capsys, "promote", MODEL, "2", "-p", str(project))
    assert code == 1
    assert "version 2 of 'breast_cancer' failed the gate: roc_auc 0.5000" in err
    assert "--force --reason TEXT" in err

    code, _, err = run_cli(capsys, "promote", MODEL, "2", "--force", "-p", str(project))
    assert code == 2
    assert "--force needs --reason" in err

    code, out, err = run_cli(capsys, "promote", MODEL, "2", "--force", "--reason", "demo",
                         "-p", str(project))  # fmt: skip
    assert code == 0, err
    assert "champion is now version 2 (was version 1) (gate overridden with --force)" in flat(out)

    code, out, err = run_cli(capsys, "rollback", MODEL, "-p", str(project), "--reason", "oops")
    assert code == 0, err
    assert "champion is now version 1 (was version 2)" in flat(out)

    actions = [(e["action"], e["version"], e["forced"]) for e in events(capsys, project)]
    assert actions == [
        ("promoted", 1, False), ("blocked", 2, False), ("blocked", 2, False),
        ("promoted", 2, True), ("rolled_back", 1, False),
    ]  # fmt: skip


def test_approval_policy_then_approve(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLKEEL_MODELS__BREAST_CANCER__RETRAIN__DEPLOY", "approval")

    code, out, err = run_cli(capsys, "retrain", "-p", str(project))
    assert code == 0, err
    assert "awaits approval: mlkeel approve breast_cancer 2" in flat(out)

    code, _, err = run_cli(capsys, "approve", MODEL, "1", "-p", str(project))
    assert code == 1
    assert "version 1 of 'breast_cancer' is not awaiting approval (awaiting: 2)" in err

    code, out, err = run_cli(capsys, "approve", MODEL, "2", "-p", str(project), "--by", "lead")
    assert code == 0, err
    assert "champion is now version 2 (approved; was version 1)" in flat(out)
    assert events(capsys, project)[-1]["action"] == "approved"


def test_second_retrain_is_refused_while_one_runs(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(f"sqlite:///{project / '.mlkeel' / 'mlkeel.db'}")
    with engine.begin() as connection:
        connection.execute(
            locks.insert().values(name=f"retrain:{MODEL}", token="t", holder="ci@runner pid 7",
                                  acquired=time.time() - 42, expires=time.time() + 60)
        )  # fmt: skip
    engine.dispose()

    code, _, err = run_cli(capsys, "retrain", "-p", str(project))

    assert code == 1
    assert "a retrain of 'breast_cancer' already running since" in err
    assert "started by ci@runner pid 7" in err
    assert "Traceback" not in err


def test_failed_step_is_named_and_exits_1(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "train.py").write_text("def train(data, params):\n    raise ValueError('bad')\n")

    code, _, err = run_cli(capsys, "retrain", "-p", str(project))

    assert code == 1
    assert "✗ train" in err
    assert "failed at step 'train'" in err
    assert "Production is unchanged (champion: version 1)" in err
