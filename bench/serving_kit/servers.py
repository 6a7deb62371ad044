"""How each contender is started, where it is ready, and what its prediction request looks like.

- ``plain``: bench/serving_baselines/plain_app.py on uvicorn, 1 worker (the project's venv);
- ``mlflow``: ``mlflow models serve -m models:/NAME/VERSION --env-manager local``;
- ``bentoml`` / ``bentoml+batch``: bench/serving_baselines/bento_service.py via
  ``uv run --with bentoml`` (BentoML stays out of the project's dependencies);
- ``mlkeel`` (+batch, +log): ``python -m mlkeel serve`` with the serving and log settings
  given as ``MLKEEL_*`` variables.

Python servers run on the project venv's interpreter directly (not through ``uv run``), so
start-to-ready measures the server, not the launcher.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving_kit.processes import HOST, Launch
from serving_kit.project import BenchProject, RegisteredModel

BASELINES = Path(__file__).resolve().parent.parent / "serving_baselines"
REPO = BASELINES.parent.parent
VENV_BIN = Path(sys.executable).parent
CLEARED_PREFIXES = ("MLKEEL_", "MLFLOW_", "BENTOML_", "BENCH_")


@dataclass(frozen=True)
class Variant:
    """One contender: a server kind with its options."""

    key: str
    kind: str  # plain | mlflow | bentoml | mlkeel
    batching: bool = False
    log: bool = False
    strict: bool = False  # prediction_log.durability = "strict": answers wait for the flush


VARIANTS = {
    v.key: v
    for v in (
        Variant("plain", "plain"),
        Variant("mlflow", "mlflow"),
        Variant("bentoml", "bentoml"),
        Variant("bentoml+batch", "bentoml", batching=True),
        Variant("mlkeel", "mlkeel"),
        Variant("mlkeel+log", "mlkeel", log=True),
        Variant("mlkeel+strict", "mlkeel", log=True, strict=True),
        Variant("mlkeel+batch", "mlkeel", batching=True),
        Variant("mlkeel+batch+log", "mlkeel", batching=True, log=True),
    )
}


@dataclass(frozen=True)
class Recipe:
    """A launch plus the request shape: the predict path and the JSON key holding the rows."""

    launch: Launch
    predict_path: str
    rows_key: str

    def body(self, rows: list[dict[str, object]]) -> bytes:
        return json.dumps({self.rows_key: rows}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Context:
    project: BenchProject
    scratch: Path
    port: int


Builder = Callable[[Variant, RegisteredModel, Context], Recipe]


def recipe(variant: Variant, model: RegisteredModel, context: Context) -> Recipe:
    builders: dict[str, Builder] = {
        "plain": _plain,
        "mlflow": _mlflow,
        "bentoml": _bentoml,
        "mlkeel": _mlkeel,
    }
    return builders[variant.kind](variant, model, context)


def base_env(**extra: str) -> dict[str, str]:
    """This process's environment without MLKEEL_/MLFLOW_/BENTOML_ settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED_PREFIXES)}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow shells out to uvicorn
    env.update(extra)
    return env


def _log_file(variant: Variant, model: RegisteredModel, context: Context) -> Path:
    return context.scratch / f"{variant.key}-{model.name}.log"


def _plain(variant: Variant, model: RegisteredModel, context: Context) -> Recipe:
    argv = [
        sys.executable, "-m", "uvicorn", "plain_app:app", "--host", HOST,
        "--port", str(context.port), "--workers", "1",
    ]  # fmt: skip
    env = base_env(BENCH_MODEL_FILE=str(model.pickle_path))
    launch = Launch(
        argv, env, BASELINES, context.port, "/health", _log_file(variant, model, context)
    )
    return Recipe(launch, "/predict", "instances")


def _mlflow(variant: Variant, model: RegisteredModel, context: Context) -> Recipe:
    argv = [
        str(VENV_BIN / "mlflow"), "models", "serve", "-m", f"models:/{model.name}/{model.version}",
        "--env-manager", "local", "-h", HOST, "-p", str(context.port),
    ]  # fmt: skip
    env = base_env(
        MLFLOW_TRACKING_URI=context.project.tracking_uri,
        MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true",  # MLflow 3.17 refuses pickles otherwise
    )
    launch = Launch(
        argv, env, context.project.root, context.port, "/ping", _log_file(variant, model, context)
    )
    return Recipe(launch, "/invocations", "dataframe_records")


def _bentoml(variant: Variant, model: RegisteredModel, context: Context) -> Recipe:
    argv = [
        "uv", "run", "--frozen", "--project", str(REPO), "--with", "bentoml",
        "bentoml", "serve", "bento_service:Classifier", "--host", HOST, "--port", str(context.port),
    ]  # fmt: skip
    env = base_env(
        BENCH_MODEL_FILE=str(model.pickle_path),
        BENCH_BENTO_BATCHING="1" if variant.batching else "0",
        BENTOML_HOME=str(context.scratch / "bentoml-home"),
        BENTOML_DO_NOT_TRACK="true",
    )
    launch = Launch(
        argv, env, BASELINES, context.port, "/readyz", _log_file(variant, model, context)
    )
    return Recipe(launch, "/predict", "instances")


def _mlkeel(variant: Variant, model: RegisteredModel, context: Context) -> Recipe:
    argv = [
        sys.executable, "-m", "mlkeel", "serve", "-p", str(context.project.root),
        "--host", HOST, "--port", str(context.port), "--model", model.name,
    ]  # fmt: skip
    env = base_env(
        MLKEEL_SERVING__BATCHING=str(variant.batching).lower(),
        MLKEEL_PREDICTION_LOG__ENABLED=str(variant.log).lower(),
        MLKEEL_PREDICTION_LOG__DURABILITY="strict" if variant.strict else "batch",
    )
    launch = Launch(
        argv, env, context.project.root, context.port, "/ready", _log_file(variant, model, context)
    )
    return Recipe(launch, f"/v1/models/{model.name}/predict", "instances")
