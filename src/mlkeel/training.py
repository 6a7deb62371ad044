"""One training run: load the data, split it, call the user's ``train``, evaluate, profile.

Nothing here touches the registry: a run that fails at any step leaves no trace in MLflow.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from mlkeel.datasource import Dataset, load_dataset, load_files, require_columns
from mlkeel.errors import ConfigError, TrainingError
from mlkeel.evaluation import evaluate
from mlkeel.lineage import CodeVersion, code_version, environment
from mlkeel.monitoring.profile import BaselineProfile, build_profile
from mlkeel.registry import Candidate
from mlkeel.schema import InputSchema, infer_schema
from mlkeel.settings import ModelConfig, Settings

Step = Callable[[str], None]


@dataclass(frozen=True)
class TrainedModel:
    """A fitted model with everything needed to register and later judge it."""

    config: ModelConfig
    model: Any
    module: ModuleType
    params: dict[str, Any]
    metrics: dict[str, float]
    schema: InputSchema
    profile: BaselineProfile
    dataset: Dataset
    train_rows: int
    test_rows: int
    code: CodeVersion
    environment: dict[str, str] = field(default_factory=dict)
    train_seconds: float = 0.0


def train_model(
    settings: Settings,
    config: ModelConfig,
    overrides: dict[str, Any] | None = None,
    step: Step | None = None,
) -> TrainedModel:
    """Run the whole training recipe for `config`; `step` is told each stage as it starts."""
    announce = step or (lambda _: None)
    params = {**config.params, **(overrides or {})}

    announce("loading data")
    dataset = load_dataset(settings, config)
    require_columns(dataset, [config.target])
    train_frame, test_frame = split_dataset(settings, config, dataset)

    announce("training")
    module, function = load_entry_point(settings.project_dir, config.train)
    started = time.perf_counter()
    model = _call_train(function, config, train_frame, params)
    train_seconds = time.perf_counter() - started

    announce("evaluating")
    features = train_frame.drop(columns=[config.target])
    test_features = test_frame[features.columns]
    try:
        metrics = evaluate(model, test_features, test_frame[config.target], config.task)
        train_predictions = np.asarray(model.predict(features))
    except Exception as exc:
        raise TrainingError(
            f"the model returned by {config.train} failed to predict on the test set: "
            f"{exc.__class__.__name__}: {exc}"
        ) from exc
    if config.metric not in metrics:
        raise TrainingError(
            f"metric {config.metric!r} needs predict_proba, which the model from "
            f"{config.train} lacks; return a classifier with predict_proba or choose "
            "metric = 'accuracy' or 'f1'"
        )

    announce("profiling")
    schema = infer_schema(features, train_frame[config.target], config.task)
    profile = build_profile(features, train_predictions)
    return TrainedModel(
        config=config,
        model=model,
        module=module,
        params=params,
        metrics=metrics,
        schema=schema,
        profile=profile,
        dataset=dataset,
        train_rows=len(train_frame),
        test_rows=len(test_frame),
        code=code_version(settings.project_dir),
        environment=environment(),
        train_seconds=train_seconds,
    )


def split_dataset(
    settings: Settings, config: ModelConfig, dataset: Dataset
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): the configured test file, or a seeded split (stratified when it can)."""
    frame = dataset.frame
    if frame[config.target].isna().any():
        raise TrainingError(
            f"target column {config.target!r} in {dataset.source} has "
            f"{int(frame[config.target].isna().sum())} missing value(s); drop or fill them"
        )
    if config.test_data is not None:
        test = load_files(settings, config.test_data)
        require_columns(test, list(frame.columns))
        return frame, test.frame[list(frame.columns)]
    from sklearn.model_selection import train_test_split

    labels = frame[config.target]
    stratify = None
    if config.task == "classification" and labels.value_counts().min() >= 2:
        stratify = labels
    try:
        train, test = train_test_split(
            frame, test_size=config.test_size, random_state=config.seed, stratify=stratify
        )
    except ValueError as exc:
        raise TrainingError(
            f"cannot split {dataset.rows} rows into train and test: {exc}"
        ) from None
    return train.reset_index(drop=True), test.reset_index(drop=True)


def load_entry_point(project_dir: Path, entry_point: str) -> tuple[ModuleType, Callable[..., Any]]:
    """Import ``module:function`` from the project folder, fresh (not a stale module of the
    same name from another project)."""
    module_name, _, function_name = entry_point.partition(":")
    root = str(project_dir)
    cached = sys.modules.get(module_name)
    if cached is not None and not str(getattr(cached, "__file__", "")).startswith(root):
        del sys.modules[module_name]
    if root not in sys.path:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
        if cached is module:
            module = importlib.reload(module)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"cannot import training module {module_name!r} from {project_dir}: {exc}; "
            "'train' in mlkeel.toml must name a module in the project folder"
        ) from None
    except Exception as exc:
        raise TrainingError(
            f"importing {module_name!r} failed: {exc.__class__.__name__}: {exc}"
        ) from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(
            f"{module.__file__} has no function {function_name!r}; "
            f"define def {function_name}(data, params) -> model"
        )
    return module, function


def _call_train(
    function: Callable[..., Any], config: ModelConfig, data: pd.DataFrame, params: dict[str, Any]
) -> Any:
    try:
        model = function(data.copy(), dict(params))
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise TrainingError(
            f"{config.train} raised {exc.__class__.__name__}: {exc} "
            f"(at {where.filename}:{where.lineno}); nothing was registered"
        ) from exc
    if not callable(getattr(model, "predict", None)):
        raise TrainingError(
            f"{config.train} returned {type(model).__name__}, which has no predict method; "
            "return a fitted model such as a scikit-learn Pipeline"
        )
    return model


def to_candidate(
    trained: TrainedModel, trigger: str = "manual", *, lineage: Mapping[str, Any] | None = None
) -> Candidate:
    """The registry's view of `trained`: the model, its metrics and its full lineage.

    `lineage` adds to (or overrides) what training knows, e.g. the retraining pipeline's
    parent version, run id and data time range.
    """
    config, dataset = trained.config, trained.dataset
    recorded: dict[str, Any] = {
        "data_sha256": dataset.sha256,
        "data_rows": dataset.rows,
        "data_source": dataset.source,
        "dvc_md5": dataset.dvc_md5,
        "code_commit": trained.code.commit,
        "code_dirty": trained.code.dirty,
        "train_rows": trained.train_rows,
        "test_rows": trained.test_rows,
        "task": config.task,
        "metric": config.metric,
        "target": config.target,
        "seed": config.seed,
        "test_size": config.test_size if config.test_data is None else None,
        "test_data": config.test_data,
        "environment": trained.environment,
        "train_seconds": round(trained.train_seconds, 3),
        "trigger": trigger,
        "params": trained.params,
        **(lineage or {}),
    }
    return Candidate(
        name=config.name,
        model=trained.model,
        params=trained.params,
        metrics=trained.metrics,
        lineage={key: value for key, value in recorded.items() if value is not None},
        schema=trained.schema,
        profile=trained.profile.to_dict(),
        pip_requirements=_requirements(trained.environment),
        code_module=trained.module,
    )


def _requirements(versions: dict[str, str]) -> list[str]:
    """Pinned requirements for the model artifact, given so MLflow need not infer them
    (inference spawns a subprocess and cost ~4.6 s of a ~7 s registration here)."""
    from importlib import metadata

    pins = [
        f"{name}=={versions[name]}"
        for name in ("scikit-learn", "numpy", "pandas", "scipy")
        if name in versions
    ]
    return [*pins, f"cloudpickle=={metadata.version('cloudpickle')}"]
