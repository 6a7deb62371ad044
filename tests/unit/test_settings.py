from __future__ import annotations

from pathlib import Path

import pytest

from mlkeel.errors import ConfigError
from mlkeel.settings import load_settings

CONFIG = """
project = "demo"

[models.churn]
train = "train:train"
data = "data/churn.csv"
target = "churned"
task = "classification"
metric = "roc_auc"

[models.churn.params]
C = 1.0
depth = 3
"""


def write(tmp_path: Path, text: str = CONFIG) -> Path:
    (tmp_path / "mlkeel.toml").write_text(text)
    return tmp_path


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path), environ={})

    model = settings.model("churn")
    assert (model.test_size, model.seed, model.params) == (0.2, 42, {"C": 1.0, "depth": 3})
    assert settings.tracking_uri == "sqlite:///.mlkeel/mlflow.db"
    assert settings.resolved_tracking_uri == f"sqlite:///{tmp_path.resolve()}/.mlkeel/mlflow.db"
    assert settings.serving.port == 8000


def test_precedence_env_over_file(tmp_path: Path) -> None:
    environ = {
        "MLKEEL_TRACKING_URI": "sqlite:////srv/mlflow.db",
        "MLKEEL_MODELS__CHURN__TEST_SIZE": "0.3",
        "MLKEEL_MODELS__CHURN__PARAMS__C": "0.01",
        "MLKEEL_MODELS__CHURN__PARAMS__SOLVER": "lbfgs",
        "MLKEEL_SERVING__PORT": "9000",
    }

    settings = load_settings(write(tmp_path), environ=environ)

    model = settings.model()
    assert settings.resolved_tracking_uri == "sqlite:////srv/mlflow.db"
    assert model.test_size == 0.3
    assert model.params == {"C": 0.01, "depth": 3, "solver": "lbfgs"}
    assert settings.serving.port == 9000


def test_invalid_value_names_key_reason_and_allowed_values(tmp_path: Path) -> None:
    write(tmp_path, CONFIG.replace('task = "classification"', 'task = "clasification"'))

    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path, environ={})

    message = str(caught.value)
    assert "models.churn.task" in message
    assert "'classification' or 'regression'" in message
    assert "'clasification'" in message
    assert caught.value.exit_code == 2


def test_invalid_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"MLKEEL_MODELS__CHURN__TEST_SIZE.*less than 1"):
        load_settings(write(tmp_path), environ={"MLKEEL_MODELS__CHURN__TEST_SIZE": "1.5"})


def test_metric_must_fit_the_task(tmp_path: Path) -> None:
    write(tmp_path, CONFIG.replace('metric = "roc_auc"', 'metric = "rmse"'))

    with pytest.raises(ConfigError, match=r"metric 'rmse' does not fit task 'classification'"):
        load_settings(tmp_path, environ={})


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    write(tmp_path, CONFIG.replace('target = "churned"', 'target = "churned"\ntargte = "x"'))

    with pytest.raises(ConfigError, match=r"models.churn.targte: Extra inputs are not permitted"):
        load_settings(tmp_path, environ={})


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mlkeel init"):
        load_settings(tmp_path, environ={})


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path, "project = [")

    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path, environ={})


def test_model_name_must_survive_environment_variables(tmp_path: Path) -> None:
    write(
        tmp_path,
        CONFIG.replace("[models.churn]", '[models."Churn-Model"]').replace(
            "[models.churn.params]", '[models."Churn-Model".params]'
        ),
    )

    with pytest.raises(ConfigError, match="lower-case letters"):
        load_settings(tmp_path, environ={})


def test_exactly_one_data_source(tmp_path: Path) -> None:
    write(tmp_path, CONFIG.replace('data = "data/churn.csv"', 'data_query = "SELECT 1"'))

    with pytest.raises(ConfigError, match="'data_query' needs 'data_url'"):
        load_settings(tmp_path, environ={})


def test_choosing_among_several_models_needs_a_name(tmp_path: Path) -> None:
    second = CONFIG.split("[models.churn]")[1].split("[models.churn.params]")[0]
    write(tmp_path, CONFIG + "\n[models.upsell]" + second)
    settings = load_settings(tmp_path, environ={})

    with pytest.raises(ConfigError, match="defines 2 models"):
        settings.model()
    with pytest.raises(ConfigError, match="no model 'nope'.*churn, upsell"):
        settings.model("nope")
