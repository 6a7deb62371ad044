"""init → train → models → promote through the real CLI, and each bad input's message."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlkeel.cli.models import LIST_KEYS
from support import run_cli


@pytest.fixture
def project(tmp_path: Path, mlflow_store: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "bc"
    code, out, _ = run_cli(capsys, "init", str(root), "--example", "breast_cancer")
    assert code == 0, out
    (root / ".mlkeel").mkdir()
    shutil.copyfile(mlflow_store, root / ".mlkeel" / "mlflow.db")
    return root


def test_init_train_list_promote(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "train", "--project", str(project))
    assert code == 0, err
    assert "Registered breast_cancer version 1" in out
    assert "roc_auc" in out

    code, out, _ = run_cli(capsys, "models", "breast_cancer", "--json", "-p", str(project))
    versions = json.loads(out)
    assert code == 0
    assert [tuple(v) for v in versions] == [LIST_KEYS]
    assert versions[0]["version"] == 1
    assert versions[0]["aliases"] == []

    code, out, _ = run_cli(capsys, "promote", "breast_cancer", "1", "-p", str(project))
    assert code == 0
    assert "champion is now version 1" in out

    code, out, _ = run_cli(capsys, "models", "breast_cancer", "--version", "1", "--json",
                       "-p", str(project))  # fmt: skip
    shown = json.loads(out)
    assert shown["aliases"] == ["champion"]
    assert shown["lineage"]["data_rows"] == 569
    assert shown["lineage"]["trigger"] == "manual"


def test_param_override_reaches_the_model(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(capsys, "train", "-p", str(project))
    code, _, err = run_cli(capsys, "train", "-p", str(project), "--param", "C=0.001")
    assert code == 0, err

    _, out, _ = run_cli(capsys, "models", "breast_cancer", "--json", "-p", str(project))
    newest, oldest = json.loads(out)
    assert newest["metrics"]["accuracy"] != oldest["metrics"]["accuracy"]
    assert newest["data_hash"] == oldest["data_hash"]


def test_missing_data_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "data" / "breast_cancer.csv").unlink()

    code, _, err = run_cli(capsys, "train", "-p", str(project))

    assert code == 1
    assert "breast_cancer.csv does not exist" in err
    assert "Traceback" not in err


def test_missing_target_column(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = project / "mlkeel.toml"
    toml.write_text(toml.read_text().replace('target = "target"', 'target = "diagnosis"'))

    code, _, err = run_cli(capsys, "train", "-p", str(project))

    assert code == 1
    assert "column(s) ['diagnosis'] not found" in err


def test_train_that_raises_registers_nothing(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "train.py").write_text(
        "def train(data, params):\n    raise RuntimeError('out of memory in my notebook')\n"
    )

    code, _, err = run_cli(capsys, "train", "-p", str(project))

    assert code == 1
    assert "RuntimeError: out of memory in my notebook" in err
    assert "train.py:2" in err
    code, _, err = run_cli(capsys, "models", "breast_cancer", "-p", str(project))
    assert code == 1
    assert "no registered model 'breast_cancer'" in err


def test_model_without_predict(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "train.py").write_text("def train(data, params):\n    return object()\n")

    code, _, err = run_cli(capsys, "train", "-p", str(project))

    assert code == 1
    assert "returned object, which has no predict method" in err


def test_unreachable_tracking_uri(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = project / "mlkeel.toml"
    toml.write_text(
        toml.read_text().replace(
            'tracking_uri = "sqlite:///.mlkeel/mlflow.db"', 'tracking_uri = "http://127.0.0.1:9"'
        )
    )

    code, _, err = run_cli(capsys, "train", "-p", str(project))

    assert code == 1
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:9" in err


def test_invalid_config_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = project / "mlkeel.toml"
    toml.write_text(toml.read_text().replace("test_size = 0.2", "test_size = 2"))

    code, _, err = run_cli(capsys, "train", "-p", str(project))

    assert code == 2
    assert "models.breast_cancer.test_size" in err
    assert "less than 1" in err


def test_promote_unknown_version(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "train", "-p", str(project))

    code, _, err = run_cli(capsys, "promote", "breast_cancer", "5", "-p", str(project))

    assert code == 1
    assert "no version 5; versions: 1" in err


def test_console_script_runs_as_a_process(project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlkeel", "models", "-p", str(project)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "No registered models yet" in result.stdout
