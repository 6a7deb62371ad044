from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlkeel.errors import ConfigError
from mlkeel.scaffold import EXAMPLES, init_project
from mlkeel.settings import load_settings


def _train_function(project: Path) -> Any:
    return runpy.run_path(str(project / "train.py"))["train"]


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(
    ("example", "task", "metric"),
    [("breast_cancer", "classification", "roc_auc"), ("diabetes", "regression", "rmse")],
)
def test_example_writes_config_code_data_and_gitignore(
    tmp_path: Path, example: str, task: str, metric: str
) -> None:
    project = tmp_path / "new" / "project"

    written = init_project(project, example)

    expected = {"mlkeel.toml", "train.py", f"data/{example}.csv", ".gitignore"}
    assert {path.relative_to(project).as_posix() for path in written} == expected
    assert all(path.is_file() for path in written)
    settings = load_settings(project, environ={})
    model = settings.model()
    assert (model.name, model.task, model.metric, model.target) == (example, task, metric, "target")
    assert model.data is not None
    assert settings.path(model.data).is_file()
    assert ".mlkeel/" in (project / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_breast_cancer_csv_has_snake_case_features_and_binary_target(tmp_path: Path) -> None:
    init_project(tmp_path, "breast_cancer")

    data = pd.read_csv(tmp_path / "data" / "breast_cancer.csv")

    assert data.shape == (569, 31)
    assert data.columns[-1] == "target"
    assert {"mean_radius", "mean_concave_points", "worst_fractal_dimension"} <= set(data.columns)
    assert all(name.isidentifier() and name == name.lower() for name in data.columns)
    assert set(data["target"]) == {0, 1}
    assert data["target"].dtype == np.int64


def test_diabetes_csv_has_unscaled_features_and_target(tmp_path: Path) -> None:
    init_project(tmp_path, "diabetes")

    data = pd.read_csv(tmp_path / "data" / "diabetes.csv")

    assert data.shape == (442, 11)
    assert list(data.columns) == [
        "age",
        "sex",
        *["bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"],
        "target",
    ]
    assert set(data["sex"]) == {1.0, 2.0}
    assert data["age"].between(18, 100).all()


def test_breast_cancer_train_py_fits_a_probabilistic_classifier(tmp_path: Path) -> None:
    init_project(tmp_path, "breast_cancer")
    settings = load_settings(tmp_path, environ={})
    model_config = settings.model()
    data = pd.read_csv(tmp_path / "data" / "breast_cancer.csv")

    model = _train_function(tmp_path)(data, model_config.params)

    features = data.drop(columns=["target"])
    probabilities = model.predict_proba(features)
    assert probabilities.shape == (569, 2)
    assert (model.predict(features) == data["target"]).mean() > 0.95


def test_diabetes_train_py_fits_a_regressor(tmp_path: Path) -> None:
    init_project(tmp_path, "diabetes")
    settings = load_settings(tmp_path, environ={})
    data = pd.read_csv(tmp_path / "data" / "diabetes.csv")

    model = _train_function(tmp_path)(data, settings.model().params)

    predictions = model.predict(data.drop(columns=["target"]))
    rmse = float(np.sqrt(np.mean((predictions - data["target"]) ** 2)))
    assert predictions.shape == (442,)
    assert rmse < data["target"].std()


def test_train_py_takes_params_overridden_by_environment(tmp_path: Path) -> None:
    init_project(tmp_path, "breast_cancer")
    settings = load_settings(tmp_path, environ={"MLKEEL_MODELS__BREAST_CANCER__PARAMS__C": "0.01"})
    data = pd.read_csv(tmp_path / "data" / "breast_cancer.csv")

    model = _train_function(tmp_path)(data, settings.model().params)

    assert model[-1].C == 0.01


@pytest.mark.parametrize("example", EXAMPLES)
def test_same_example_writes_identical_bytes_every_time(tmp_path: Path, example: str) -> None:
    first, second = tmp_path / "a" / "project", tmp_path / "b" / "project"
    init_project(first, example)
    init_project(second, example)

    assert _snapshot(first) == _snapshot(second)
    csv = (first / "data" / f"{example}.csv").read_bytes()
    assert b"\r" not in csv
    assert csv.endswith(b"\n")


@pytest.mark.parametrize("example", [*EXAMPLES, None])
def test_existing_config_is_refused_and_nothing_is_written(
    tmp_path: Path, example: str | None
) -> None:
    config = tmp_path / "mlkeel.toml"
    config.write_text("# mine\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="already exists; nothing was written") as caught:
        init_project(tmp_path, example)

    assert str(config) in str(caught.value)
    assert _snapshot(tmp_path) == {"mlkeel.toml": b"# mine\n"}


def test_existing_train_py_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("# my code\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"already has train\.py; nothing was written"):
        init_project(tmp_path, "diabetes")

    assert _snapshot(tmp_path) == {"train.py": b"# my code\n"}
    assert not (tmp_path / "data").exists()


def test_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "project"
    target.write_text("", encoding="utf-8")

    with pytest.raises(ConfigError, match="is a file, not a folder"):
        init_project(target)


def test_unknown_example_error_lists_allowed_examples(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown example 'iris'") as caught:
        init_project(tmp_path / "project", "iris")

    assert all(example in str(caught.value) for example in EXAMPLES)
    assert not (tmp_path / "project").exists()


def test_existing_gitignore_gains_store_line_and_keeps_its_content(tmp_path: Path) -> None:
    gitignore = tmp_path / ".gitignore"
    gitignore.write_text("*.pyc", encoding="utf-8")

    written = init_project(tmp_path, "diabetes")

    lines = gitignore.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "*.pyc"
    assert ".mlkeel/" in lines
    assert gitignore in written


def test_gitignore_already_ignoring_store_is_left_alone(tmp_path: Path) -> None:
    gitignore = tmp_path / ".gitignore"
    gitignore.write_text(".venv/\n.mlkeel/\n", encoding="utf-8")

    written = init_project(tmp_path)

    assert gitignore.read_text(encoding="utf-8") == ".venv/\n.mlkeel/\n"
    assert gitignore not in written


def test_blank_project_names_model_after_folder_and_validates(tmp_path: Path) -> None:
    project = tmp_path / "Churn Model-2"

    written = init_project(project)

    assert {path.relative_to(project).as_posix() for path in written} == {
        "mlkeel.toml",
        "train.py",
        ".gitignore",
    }
    assert (project / "data").is_dir()
    assert list((project / "data").iterdir()) == []
    settings = load_settings(project, environ={})
    model = settings.model()
    assert settings.project == "churn_model_2"
    assert (model.name, model.data, model.target) == ("churn_model_2", "data/train.csv", "target")
    assert (model.task, model.metric) == ("classification", "roc_auc")
    toml = (project / "mlkeel.toml").read_text(encoding="utf-8")
    assert "MLKEEL_MODELS__CHURN_MODEL_2__TEST_SIZE" in toml


@pytest.mark.parametrize("folder", ["2024", "___", "1st_try"])
def test_blank_project_falls_back_to_model_name_when_folder_name_does_not_fit(
    tmp_path: Path, folder: str
) -> None:
    init_project(tmp_path / folder)

    settings = load_settings(tmp_path / folder, environ={})

    assert settings.model().name == "model"


def test_blank_train_py_fits_a_small_numeric_frame(tmp_path: Path) -> None:
    init_project(tmp_path / "project")
    settings = load_settings(tmp_path / "project", environ={})
    rng = np.random.default_rng(0)
    features = pd.DataFrame({"x1": rng.normal(size=60), "x2": rng.normal(size=60)})
    data = features.assign(target=(features["x1"] + features["x2"] > 0).astype(int))

    model = _train_function(tmp_path / "project")(data, settings.model().params)

    assert model.predict_proba(features).shape == (60, 2)
    assert (model.predict(features) == data["target"]).mean() > 0.9
