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

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

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


class RolloutConfig(BaseModel):
    """How a canary or shadow version is served and judged (``mlkeel rollout``).

    A canary gets ``canary_percent`` of the requests, sticky per routing key: the
    ``routing_header`` of the request, else the value of ``routing_feature`` in its first row,
    else the request id. Its analysis compares it with the champion over the canary's window
    and gives no verdict before ``min_requests`` canary requests; it rolls back at once when
    the error rate or the latency ratio is over its limit, and promotes once ``duration`` has
    passed with every check within its limit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    canary_percent: float = Field(default=10, gt=0, lt=100)
    routing_header: str = Field(default="X-Routing-Key", min_length=1)
    routing_feature: str | None = Field(default=None, description="feature whose value routes")
    duration: str = Field(default="30m", description="canary window before promotion: 30m, 2h")
    min_requests: int = Field(default=200, ge=1, description="no verdict on fewer")
    max_error_rate: float = Field(default=0.02, ge=0, le=1)
    max_latency_p95_ratio: float = Field(default=1.5, gt=0, description="canary p95 / champion")
    # Jensen-Shannon distance (base 2, in [0, 1]) between the predicted-value distributions.
    max_prediction_divergence: float = Field(default=0.1, gt=0, le=1)
    accuracy_margin: float = Field(default=0.02, ge=0, description="allowed accuracy loss")
    # In-process guard: a server stops routing to a canary whose failures over its last
    # `breaker_window` requests exceed max_error_rate, without waiting for the analysis.
    breaker_window: int = Field(default=100, ge=10)
    shadow_queue: int = Field(default=1000, ge=1, description="shadow requests waiting, at most")

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?[smhdw]", value.strip()):
            raise ValueError("must be a number and a unit (s, m, h, d, w), e.g. '30m'")
        return value.strip()


class RetrainConfig(BaseModel):
    """How ``mlkeel retrain`` judges a challenger and what it does with one that passes.

    The gate compares the challenger with the champion on the same fresh test set (and on
    ``golden_data`` when set): every ``min_metrics`` threshold must hold, the primary metric
    may be worse than the champion's by at most ``max_regression`` (a share of the champion's
    value, so it means the same for roc_auc and for rmse), per slice too, and the version
    must load from the registry and predict the schema's example rows.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The least acceptable value of each metric on the test set (and the golden set): a floor
    # for metrics where higher is better, a ceiling for rmse, mae and log_loss. Empty by
    # default: no threshold suits every problem, and no-regression already guards production.
    min_metrics: dict[str, float] = Field(default_factory=dict)
    # 1%: test-set noise between two fits on a few hundred rows is of that order, so a
    # stricter margin blocks refreshes on noise; a real regression is far larger.
    max_regression: float = Field(default=0.01, ge=0)
    slices: list[str] = Field(default_factory=list, description="columns for per-slice gates")
    # Fewer rows than this make a slice's metric noise: reported, not gated.
    min_slice_rows: int = Field(default=30, ge=1)
    golden_data: str | None = Field(default=None, description="a fixed test file, also gated")
    # Off by default: production labels arrive late and reflect the model's own decisions
    # (feedback loops); adding them is a choice the team makes knowingly.
    include_production: bool = False
    production_window: str = Field(default="30d", description="labelled records this recent")
    # "champion": a challenger that passes the gate serves at once (the gate is the safety);
    # "approval": it waits for 'mlkeel approve NAME VERSION'.
    deploy: Literal["champion", "approval"] = "champion"

    @field_validator("min_metrics")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
        return value

    @field_validator("production_window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?[smhdw]", value.strip()):
            raise ValueError("must be a number and a unit (s, m, h, d, w), e.g. '30d'")
        return value.strip()


CRON = re.compile(r"^\S+( \S+){4,5}$")


class ModelSchedules(BaseModel):
    """When ``mlkeel up`` runs one model's jobs: cron expressions (minute hour day month
    weekday; a sixth field in front is seconds), in ``schedules.timezone``; ``off`` disables
    a job. `retrain_on_alert`: also retrain when a monitoring run opens an alert that the
    model's ``alerts.retrain_on`` marks as asking for it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    monitor: str = "0 6 * * *"
    monitor_window: str = Field(default="1d", description="traffic each monitoring run judges")
    canary: str = "*/5 * * * *"
    retrain: str = "0 3 * * 1"
    retrain_on_alert: bool = True

    @field_validator("monitor", "canary", "retrain")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _cron_or_off(value)

    @field_validator("monitor_window")
    @classmethod
    def _window(cls, value: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?[smhdw]", value.strip()):
            raise ValueError("must be a number and a unit (s, m, h, d, w), e.g. '1d'")
        return value.strip()


def _cron_or_off(value: str) -> str:
    """Shape only (5 or 6 fields, or ``off``); mlkeel.scheduling.cron parses the fields."""
    text = " ".join(value.split())
    if text != "off" and not CRON.match(text):
        raise ValueError("must be a cron expression such as '0 6 * * *' (5 fields, or 6 with "
                         "seconds first), or 'off'")  # fmt: skip
    return text


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
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    schedules: ModelSchedules = Field(default_factory=ModelSchedules)

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
    # Longest string a categorical value may be: a guard against memory abuse, far above
    # any real category.
    max_string_length: int = Field(default=1024, ge=1)
    # A prediction slower than this answers 503 with Retry-After (the model keeps running).
    predict_timeout_seconds: float = Field(default=30.0, gt=0)
    # Prediction requests in progress at once per worker; beyond, 503 with Retry-After.
    max_concurrent_requests: int = Field(default=512, ge=1)
    # uvicorn's line on stderr per request. Off: every prediction is in the prediction log and
    # every request in /metrics already, and the line (a write per request) cost 10-15% of the
    # throughput of one-row requests (measured, logistic regression: ~516 -> ~592 req/s).
    access_log: bool = False


class PredictionLogConfig(BaseModel):
    """How served predictions reach the database (``database_url``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    batch_size: int = Field(default=1000, ge=1)
    flush_seconds: float = Field(default=1.0, gt=0)
    queue_limit: int = Field(default=200_000, ge=1)
    spool_dir: str = ".mlkeel/spool"
    # How often each process writes its hourly summaries (what monitoring reads).
    summary_seconds: float = Field(default=10.0, gt=0)
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


class SchedulesConfig(BaseModel):
    """How ``mlkeel up`` runs the jobs (each model's times are ``models.NAME.schedules``).

    Only one ``mlkeel up`` per database runs jobs: the leader, elected by a PostgreSQL
    advisory lock or, on SQLite, a file lock beside the database; the others only serve.
    `misfire`: what a run that could not start on time becomes (downtime, no leader):
    ``skip`` records it as skipped, ``run_once`` runs it once, late, however many were missed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="false: mlkeel up only serves")
    timezone: str = "UTC"
    misfire: Literal["skip", "run_once"] = "run_once"
    retention: str = Field(default="90d", description="prune logged predictions this old")
    prune: str = Field(default="30 4 * * *", description="when the retention job runs")
    leader_poll: float = Field(default=5.0, gt=0, description="seconds between lock attempts")
    stop_timeout: float = Field(default=30.0, ge=0, description="seconds jobs get to end")

    @field_validator("prune")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _cron_or_off(value)

    @field_validator("retention")
    @classmethod
    def _age(cls, value: str) -> str:
        if not re.fullmatch(r"\d+(\.\d+)?[smhdw]", value.strip()):
            raise ValueError("must be a number and a unit (s, m, h, d, w), e.g. '90d'")
        return value.strip()


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
    # Bearer tokens (MLKEEL_ADMIN_TOKEN, MLKEEL_PREDICT_TOKEN). The admin token guards what
    # changes the server or its data (/admin/*, feedback); the predict token, when set, guards
    # predictions. Secrets: never printed, logged or shown in errors.
    admin_token: SecretStr | None = None
    predict_token: SecretStr | None = None
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    schedules: SchedulesConfig = Field(default_factory=SchedulesConfig)

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
        if not all(keys):
            raise ConfigError(
                f"{variable} has an empty key: nested keys are joined by exactly two "
                "underscores, e.g. MLKEEL_MODELS__NAME__TEST_SIZE"
            )
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
        secret = any(word in key for word in ("token", "password"))
        hidden = secret or isinstance(got, dict) or error["type"] == "missing"
        shown = "" if hidden else f" (got {got!r})"
        lines.append(f"  {where}: {message}{shown}")
    return "\n".join(lines)
