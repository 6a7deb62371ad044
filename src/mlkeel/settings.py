"""Project settings: ``mlkeel.toml`` overlaid with ``MLKEEL_*`` environment variables.

Precedence, highest first: an ``MLKEEL_*`` environment variable, then ``mlkeel.toml``, then
the defaults below. A nested key is spelled with double underscores:
``MLKEEL_MODELS__BREAST_CANCER__TEST_SIZE=0.3`` overrides ``[models.breast_cancer] test_size``.
This is the only module that reads the environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlkeel.errors import ConfigError
from mlkeel.metrics import METRICS, Task, metric_names

CONFIG_FILE = "mlkeel.toml"
ENV_PREFIX = "MLKEEL_"
# Names double as environment-variable segments, so they are restricted to what survives that.
MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class DriftConfig(BaseModel):
    """When a feature counts as drifted. A feature drifts when its shift is both large
    (effect size over the threshold) and real (the test's p-value under ``p_value``, which
    only matters for small samples: at large ones any shift is "significant")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Normalised Wasserstein distance: the mean shift of mass in baseline standard
    # deviations. 0.1 flags a tenth of a std, below what moves most models' outputs.
    numeric_threshold: float = Field(default=0.1, gt=0)
    # Jensen-Shannon distance (base 2, in [0, 1]) between category frequencies.
    categorical_threshold: float = Field(default=0.1, gt=0)
    # Reported alongside; 0.2 is the conventional "significant shift" level of PSI.
    psi_threshold: float = Field(default=0.2, gt=0)
    p_value: float = Field(default=0.05, gt=0, lt=1)
    # The dataset drifts when at least this share of its features drift.
    drift_share: float = Field(default=0.3, gt=0, le=1)
    # Per-feature overrides of the effect-size threshold: {feature = threshold}.
    features: dict[str, float] = Field(default_factory=dict)


class AlertRules(BaseModel):
    """What raises an alert for one model; a rule left unset is off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset_drift: bool = True
    features: list[str] = Field(default_factory=list, description="alert when these drift")
    performance_drop: float | None = Field(
        default=0.05, ge=0, description="primary metric worse than training by this much"
    )
    error_rate: float | None = Field(default=0.05, ge=0, le=1)
    latency_p99_ms: float | None = Field(default=None, gt=0)
    volume_drop: float | None = Field(
        default=None, gt=0, le=1, description="share fewer rows than the previous window"
    )
    missing_rate: float | None = Field(default=None, ge=0, le=1)
    out_of_range_rate: float | None = Field(default=None, ge=0, le=1)
    unseen_rate: float | None = Field(default=None, ge=0, le=1)
    min_rows: int = Field(default=100, ge=1, description="no verdict on fewer rows")
    retrain_on: list[Literal["drift", "performance"]] = Field(default_factory=list)


class ModelConfig(BaseModel):
    """One model of the project: how to train it and how to judge it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    train: str = Field(description="training entry point, 'module:function'")
    data: str | None = Field(default=None, description="CSV or Parquet file, or a glob of them")
    data_query: str | None = Field(default=None, description="SQL query returning the data")
    data_url: str | None = Field(default=None, description="SQLAlchemy URL for data_query")
    target: str
    task: Task
    metric: str
    test_size: float = Field(default=0.2, gt=0, lt=1)
    test_data: str | None = Field(default=None, description="a fixed test file instead of a split")
    seed: int = 42
    params: dict[str, Any] = Field(default_factory=dict)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    alerts: AlertRules = Field(default_factory=AlertRules)

    @field_validator("train")
    @classmethod
    def _entry_point(cls, value: str) -> str:
        if not ENTRY_POINT.match(value):
            raise ValueError("must be 'module:function', e.g. 'train:train'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if (self.data is None) == (self.data_query is None):
            raise ValueError("set exactly one of 'data' (a file or glob) or 'data_query' (SQL)")
        if self.data_query is not None and self.data_url is None:
            raise ValueError("'data_query' needs 'data_url', the database to run it on")
        allowed = metric_names(self.task)
        if self.metric not in allowed:
            raise ValueError(
                f"metric {self.metric!r} does not fit task {self.task!r}; allowed: {allowed}"
            )
        return self

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better


class ServingConfig(BaseModel):
    """How ``mlkeel serve`` listens, what it accepts, and how it follows the registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_batch_rows: int = Field(default=10_000, ge=1)
    reload_seconds: float = Field(default=2.0, gt=0, description="registry poll interval")
    batching: bool = Field(default=False, description="adaptive micro-batching of requests")
    batch_max_rows: int = Field(default=256, ge=1)
    batch_max_wait_ms: float = Field(default=2.0, ge=0)


class PredictionLogConfig(BaseModel):
    """How served predictions reach the database (``database_url``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    batch_size: int = Field(default=1000, ge=1)
    flush_seconds: float = Field(default=1.0, gt=0)
    queue_limit: int = Field(default=200_000, ge=1)
    spool_dir: str = ".mlkeel/spool"
    # "batch": a response does not wait for its record (a crash can lose at most the records
    # of one unflushed batch); "strict": it waits until its record is in the database or spool.
    durability: Literal["batch", "strict"] = "batch"


class AlertSink(BaseModel):
    """Where alerts go: ``log``, ``webhook`` (JSON with a Slack-compatible ``text``) or
    ``email`` (SMTP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["log", "webhook", "email"]
    url: str | None = None
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_tls: bool = False
    sender: str = "mlkeel@localhost"
    to: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> AlertSink:
        if self.type == "webhook" and not self.url:
            raise ValueError("a webhook sink needs 'url'")
        if self.type == "email" and not self.to:
            raise ValueError("an email sink needs 'to', a list of addresses")
        return self


class AlertsConfig(BaseModel):
    """Alert delivery, shared by every model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sinks: list[AlertSink] = Field(default_factory=lambda: [AlertSink(type="log")])
    cooldown: str = Field(default="1h", description="no repeat notification within this age")


class Settings(BaseModel):
    """Everything mlkeel reads from the project: stores and models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project_dir: Path
    project: str
    tracking_uri: str = "sqlite:///.mlkeel/mlflow.db"
    database_url: str = "sqlite:///.mlkeel/mlkeel.db"
    artifact_root: str = ".mlkeel/artifacts"
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    prediction_log: PredictionLogConfig = Field(default_factory=PredictionLogConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @field_validator("models", mode="before")
    @classmethod
    def _named(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for name, body in value.items():
            if not MODEL_NAME.match(name):
                raise ValueError(
                    f"model name {name!r} must be lower-case letters, digits and '_', "
                    "starting with a letter"
                )
            if isinstance(body, dict):
                body.setdefault("name", name)
        return value

    def model(self, name: str | None = None) -> ModelConfig:
        """The named model, or the only one when `name` is None."""
        if name is None:
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            raise ConfigError(
                f"{self.project_dir / CONFIG_FILE} defines {len(self.models)} models "
                f"({', '.join(self.models) or 'none'}); choose one with --model NAME"
            )
        try:
            return self.models[name]
        except KeyError:
            raise ConfigError(
                f"no model {name!r} in {self.project_dir / CONFIG_FILE}; "
                f"defined: {', '.join(self.models) or 'none'}"
            ) from None

    def path(self, value: str) -> Path:
        """A path from the config, relative to the project folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.project_dir / path

    def store_url(self, url: str) -> str:
        """`url` with a relative SQLite path anchored at the project folder, not the cwd."""
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rest = url[len(prefix) :]
            if rest and rest != ":memory:":
                return prefix + str(self.path(rest))
        return url

    @property
    def resolved_tracking_uri(self) -> str:
        return self.store_url(self.tracking_uri)

    @property
    def resolved_database_url(self) -> str:
        return self.store_url(self.database_url)


def load_settings(project_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``project_dir/mlkeel.toml`` and overlay ``MLKEEL_*`` variables from `environ`."""
    environ = os.environ if environ is None else environ
    project_dir = project_dir.resolve()
    config_path = project_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ConfigError(
            f"no {CONFIG_FILE} in {project_dir}; run 'mlkeel init {project_dir}' to create one, "
            "or pass --project DIR"
        )
    try:
        raw: dict[str, Any] = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path} is not valid TOML: {exc}") from None
    origins = _overlay_environment(raw, environ)
    raw.setdefault("project", project_dir.name)
    try:
        return Settings(project_dir=project_dir, **raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_path, origins)) from None


def _overlay_environment(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Write every ``MLKEEL_*`` value into `raw`; return key path -> variable name."""
    origins: dict[str, str] = {}
    for variable, value in sorted(environ.items()):
        if not variable.startswith(ENV_PREFIX) or variable in _NOT_CONFIG:
            continue
        keys = variable[len(ENV_PREFIX) :].lower().split("__")
        node = raw
        for index, key in enumerate(keys[:-1]):
            keys[index] = key = _existing_key(node, key)
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{variable} sets a key below {key!r}, which is not a table")
            node = child
        keys[-1] = _existing_key(node, keys[-1])
        node[keys[-1]] = _env_value(value) if "params" in keys[:-1] else value
        origins[".".join(keys)] = variable
    return origins


# Variables with the prefix that are not config keys (read by the CLI through Typer).
_NOT_CONFIG = frozenset({"MLKEEL_PROJECT", "MLKEEL_SERVE_MODELS"})


def _existing_key(table: dict[str, Any], key: str) -> str:
    """The file's spelling of `key`: variables are upper-case, parameters like ``C`` are not."""
    return next((existing for existing in table if existing.lower() == key), key)


def _env_value(text: str) -> Any:
    """A training parameter from the environment: a TOML literal if it parses, else the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _describe(exc: ValidationError, config_path: Path, origins: Mapping[str, str]) -> str:
    lines = [f"invalid configuration in {config_path}:"]
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        key = ".".join(loc) or "(top level)"
        source = origins.get(key)
        where = f"{key} (from {source})" if source else key
        message = error["msg"].removeprefix("Value error, ")
        got = error.get("input")
        shown = "" if isinstance(got, dict) or error["type"] == "missing" else f" (got {got!r})"
        lines.append(f"  {where}: {message}{shown}")
    return "\n".join(lines)
