"""The model registry: MLflow, and the only module that imports it.

A version carries its lineage as tags (``mlkeel.*``), its metrics, and beside the model files
two JSON documents: the input schema and the baseline profile. The artifact digest recorded
at registration is checked on every load, so a tampered or corrupted model is refused.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import re
import shutil
import sqlite3
import sys
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mlkeel.errors import ArtifactIntegrityError, ModelNotFoundError, RegistryError
from mlkeel.lineage import sha256_tree
from mlkeel.schema import InputSchema

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

TAG = "mlkeel."
SCHEMA_FILE = "input_schema.json"
PROFILE_FILE = "baseline_profile.json"
MODEL_DIR = "model"
ALIASES = ("champion", "challenger", "canary", "shadow")
# MLflow writes this into a model folder it serves (`mlflow models serve -m models:/…`); only
# MLflow reads it, never our loader, so it is left out of the digest.
NOT_DIGESTED = frozenset({"registered_model_meta"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionInfo:
    """One registered model version and its lineage, as scripts see it (``--json``)."""

    name: str
    version: int
    aliases: list[str]
    created_at: str
    metrics: dict[str, float]
    data_hash: str | None
    code_commit: str | None
    run_id: str | None
    lineage: dict[str, Any]


@dataclass(frozen=True)
class LoadedModel:
    """A model loaded from the registry, ready to predict."""

    info: VersionInfo
    model: Any
    schema: InputSchema
    profile: dict[str, Any]
    path: Path


@dataclass(frozen=True)
class Candidate:
    """What training hands the registry to store as a new version."""

    name: str
    model: Any
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    lineage: Mapping[str, Any]
    schema: InputSchema
    profile: Mapping[str, Any]
    pip_requirements: list[str]
    code_module: ModuleType | None = None


class Registry:
    """Register, list, alias and load model versions in one MLflow store."""

    def __init__(
        self, tracking_uri: str, experiment: str, artifact_location: str | None, cache_dir: Path
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location
        self.cache_dir = cache_dir
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            _check_reachable(self.tracking_uri)
            with _resident_heap():
                self._client = self._connect()
        return self._client

    def _connect(self) -> MlflowClient:
        from mlflow import MlflowClient

        _quiet_mlflow_logs()  # after the import, which configures MLflow's loggers
        with (
            _registry_errors("connecting to", self.tracking_uri),
            _fresh_store_template(self.tracking_uri),
        ):
            client = MlflowClient(self.tracking_uri, self.tracking_uri)
            client.search_experiments(max_results=1)  # creates the store now
        return client

    # ---- writing -------------------------------------------------------------------------
    def register(self, candidate: Candidate) -> VersionInfo:
        """Log one run and one new model version; on any failure leave neither behind."""
        client = self.client
        with _registry_errors("registering a model in", self.tracking_uri):
            experiment_id = self._experiment_id()
            run = client.create_run(experiment_id, run_name=f"train-{candidate.name}")
        run_id = run.info.run_id
        version: str | None = None
        try:
            with tempfile.TemporaryDirectory(prefix="mlkeel-") as scratch:
                model_dir = Path(scratch) / MODEL_DIR
                _save_model(candidate, model_dir)
                digest = sha256_tree(model_dir, NOT_DIGESTED)
                self._log_run(run_id, candidate)
                client.log_artifacts(run_id, str(model_dir), MODEL_DIR)
            tags = _lineage_tags(candidate, digest)
            self._ensure_registered_model(candidate.name)
            created = client.create_model_version(
                candidate.name, f"{run.info.artifact_uri}/{MODEL_DIR}", run_id, tags=tags
            )
            version = str(created.version)
            client.set_terminated(run_id, "FINISHED")
        except Exception as exc:
            self._abandon(candidate.name, version, run_id)
            if isinstance(exc, RegistryError):
                raise
            raise RegistryError(
                f"registering {candidate.name!r} in {display_uri(self.tracking_uri)} failed "
                f"({exc.__class__.__name__}: {exc}); nothing was registered"
            ) from exc
        return self.version(candidate.name, int(version))

    def set_alias(self, name: str, alias: str, version: int) -> VersionInfo:
        """Point `alias` of `name` at `version` and record when it moved."""
        info = self.version(name, version)
        with _registry_errors("moving an alias in", self.tracking_uri):
            self.client.set_registered_model_alias(name, alias, str(version))
            self.client.set_model_version_tag(name, str(version), f"{TAG}{alias}_since", _now())
        return info

    def set_tags(self, name: str, version: int, tags: Mapping[str, Any]) -> None:
        """Set ``mlkeel.*`` tags on `version` (verdicts, rollout state)."""
        with _registry_errors(f"tagging {name} version {version} in", self.tracking_uri):
            for key, value in tags.items():
                self.client.set_model_version_tag(name, str(version), f"{TAG}{key}", _text(value))

    def delete_tags(self, name: str, version: int, keys: Iterable[str]) -> None:
        """Remove these ``mlkeel.*`` tags from `version` where present."""
        present = self.version(name, version).lineage
        with _registry_errors(f"clearing tags of {name} version {version} in", self.tracking_uri):
            for key in keys:
                if key in present:
                    self.client.delete_model_version_tag(name, str(version), f"{TAG}{key}")

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove `alias` from model `name` (a canary or shadow that ended)."""
        with _registry_errors(f"removing the {alias!r} alias of {name} in", self.tracking_uri):
            self.client.delete_registered_model_alias(name, alias)

    def _log_run(self, run_id: str, candidate: Candidate) -> None:
        from mlflow.entities import Metric, Param, RunTag

        stamp = int(datetime.now(UTC).timestamp() * 1000)
        params = [Param(key, _text(value)[:6000]) for key, value in candidate.params.items()]
        metrics = [Metric(key, value, stamp, 0) for key, value in candidate.metrics.items()]
        tags = [RunTag(f"{TAG}{key}", _text(value)) for key, value in candidate.lineage.items()]
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(self.experiment)
        if experiment is not None:
            return str(experiment.experiment_id)
        return str(self.client.create_experiment(self.experiment, self.artifact_location))

    def _ensure_registered_model(self, name: str) -> None:
        client = self.client  # first: MLflow is imported while connecting (_resident_heap)
        from mlflow.exceptions import MlflowException

        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)

    def _abandon(self, name: str, version: str | None, run_id: str) -> None:
        """Undo a half-finished registration; failures here are logged, the cause is raised."""
        try:
            if version is not None:
                self.client.delete_model_version(name, version)
            self.client.set_terminated(run_id, "FAILED")
        except Exception:
            log.exception("could not clean up the failed registration of %s (run %s)", name, run_id)

    # ---- reading -------------------------------------------------------------------------
    def names(self) -> list[str]:
        with _registry_errors("listing models in", self.tracking_uri):
            return sorted(model.name for model in self.client.search_registered_models())

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of `name`, newest first."""
        with _registry_errors("listing versions in", self.tracking_uri):
            found = self.client.search_model_versions(f"name = '{_quote(name)}'")
        if not found:
            raise ModelNotFoundError(
                f"no registered model {name!r} in {display_uri(self.tracking_uri)}; "
                f"registered: {', '.join(self.names()) or 'none'} (train one with 'mlkeel train')"
            )
        aliases = self._aliases(name)
        infos = [_info(v, aliases.get(str(v.version), [])) for v in found]
        return sorted(infos, key=lambda info: info.version, reverse=True)

    def version(self, name: str, version: int) -> VersionInfo:
        client = self.client  # first: MLflow is imported while connecting (_resident_heap)
        from mlflow.exceptions import MlflowException

        try:
            found = client.get_model_version(name, str(version))
        except MlflowException:
            known = [str(info.version) for info in self.versions(name)]
            raise ModelNotFoundError(
                f"model {name!r} has no version {version}; versions: {', '.join(known)}"
            ) from None
        return _info(found, self._aliases(name).get(str(version), []))

    def resolve(self, name: str, alias: str) -> VersionInfo:
        """The version `alias` points at."""
        client = self.client  # first: MLflow is imported while connecting (_resident_heap)
        from mlflow.exceptions import MlflowException

        try:
            found = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            self.versions(name)  # raises a clear error when the model itself is unknown
            raise ModelNotFoundError(
                f"model {name!r} has no {alias!r} version yet; "
                f"promote one with 'mlkeel promote {name} VERSION'"
            ) from None
        return _info(found, self._aliases(name).get(str(found.version), []))

    def latest(self, name: str) -> VersionInfo:
        return self.versions(name)[0]

    def aliases(self, name: str) -> dict[str, int]:
        """Each alias of `name` and the version it points at, in one registry call: what a
        server polls (resolving champion, canary and shadow took ~8 calls, 21 ms of CPU)."""
        client = self.client  # first: MLflow is imported while connecting (_resident_heap)
        from mlflow.exceptions import MlflowException

        try:
            model = client.get_registered_model(name)
        except MlflowException as exc:
            self.versions(name)  # raises a clear error when the model itself is unknown
            with _registry_errors("reading aliases in", self.tracking_uri):
                raise exc
        return {alias: int(version) for alias, version in (model.aliases or {}).items()}

    def load(self, name: str, version: int) -> LoadedModel:
        """Download (once) and load `version`, refusing it if its digest does not match."""
        info, path = self._verified(name, version)
        schema = InputSchema.from_dict(json.loads((path / SCHEMA_FILE).read_text()))
        profile = json.loads((path / PROFILE_FILE).read_text())
        return LoadedModel(info, _load_pickled(path), schema, profile, path)

    def profile(self, name: str, version: int) -> dict[str, Any]:
        """The baseline profile of `version`, without loading (unpickling) the model."""
        _, path = self._verified(name, version)
        document: dict[str, Any] = json.loads((path / PROFILE_FILE).read_text())
        return document

    def _verified(self, name: str, version: int) -> tuple[VersionInfo, Path]:
        """The version's artifact folder, downloaded once and checked against its digest."""
        info = self.version(name, version)
        expected = info.lineage.get("artifact_sha256")
        root = self.cache_dir / info.name / str(info.version)
        if not (root.is_dir() and sha256_tree(root / MODEL_DIR, NOT_DIGESTED) == expected):
            root = self._download(info, root)
        path = root / MODEL_DIR
        actual = sha256_tree(path, NOT_DIGESTED)
        if expected != actual:
            shutil.rmtree(root, ignore_errors=True)
            raise ArtifactIntegrityError(
                f"model {name!r} version {version}: artifact digest {actual} does not match "
                f"{expected} recorded at registration; the files were changed after they were "
                "registered, so they are not loaded. Retrain or restore the artifact."
            )
        return info, path

    def _download(self, info: VersionInfo, target: Path) -> Path:
        import mlflow.artifacts

        with _registry_errors("downloading a model from", self.tracking_uri):
            source = self.client.get_model_version_download_uri(info.name, str(info.version))
            staging = Path(tempfile.mkdtemp(prefix="download-", dir=_mkdir(self.cache_dir)))
            mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(staging), tracking_uri=self.tracking_uri
            )
        # Downloads land beside the cache and are renamed in, so a reader never sees half;
        # a stale copy is renamed away first (processes sharing the cache may race: the
        # loser keeps the winner's copy, which the caller's digest check then judges).
        _mkdir(target.parent)
        if target.exists():
            stale = target.with_name(f".{target.name}-{uuid.uuid4().hex[:8]}.stale")
            with contextlib.suppress(OSError):
                target.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def _aliases(self, name: str) -> dict[str, list[str]]:
        with _registry_errors("reading aliases in", self.tracking_uri):
            model = self.client.get_registered_model(name)
        by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        return by_version


def _save_model(candidate: Candidate, model_dir: Path) -> None:
    """Save with MLflow's scikit-learn flavour, so ``mlflow models serve`` can load it too.

    cloudpickle, not skops: the user's model may hold their own classes, which skops refuses
    unless trusted by a list stored in the model itself (no protection). Integrity comes from
    the digest recorded at registration instead; model files are code, see the README.
    """
    import cloudpickle
    import mlflow.sklearn

    # By value, so the artifact runs without the project's train.py on the import path.
    if candidate.code_module is not None:
        cloudpickle.register_pickle_by_value(candidate.code_module)
    try:
        with warnings.catch_warnings():
            # MLflow's pyfunc module warns about its own type hints when first imported.
            warnings.filterwarnings("ignore", ".*type hint is inferred as AnyType", UserWarning)
            mlflow.sklearn.save_model(
                candidate.model,
                str(model_dir),
                serialization_format="cloudpickle",
                pip_requirements=candidate.pip_requirements,
            )
    finally:
        if candidate.code_module is not None:
            cloudpickle.unregister_pickle_by_value(candidate.code_module)
    (model_dir / SCHEMA_FILE).write_text(json.dumps(candidate.schema.to_dict(), indent=1))
    (model_dir / PROFILE_FILE).write_text(json.dumps(candidate.profile, indent=1))


def _load_pickled(model_dir: Path) -> Any:
    import pickle

    import yaml

    spec = yaml.safe_load((model_dir / "MLmodel").read_text())
    filename = spec["flavors"]["sklearn"]["pickled_model"]
    with (model_dir / filename).open("rb") as handle:
        # Trusted: the digest of these exact bytes was checked against the registry above.
        return pickle.load(handle)  # noqa: S301


def _lineage_tags(candidate: Candidate, digest: str) -> dict[str, str]:
    tags = {f"{TAG}{key}": _text(value) for key, value in candidate.lineage.items()}
    tags[f"{TAG}artifact_sha256"] = digest
    tags[f"{TAG}metrics"] = json.dumps(dict(candidate.metrics), sort_keys=True)
    return tags


def _info(version: ModelVersion, aliases: list[str]) -> VersionInfo:
    tags = dict(version.tags or {})
    lineage = {
        key[len(TAG) :]: _untext(value) for key, value in tags.items() if key.startswith(TAG)
    }
    metrics = lineage.pop("metrics", {}) or {}
    created = datetime.fromtimestamp(version.creation_timestamp / 1000, UTC)
    return VersionInfo(
        name=version.name,
        version=int(version.version),
        aliases=sorted(aliases),
        created_at=created.isoformat(timespec="seconds"),
        metrics={key: float(value) for key, value in metrics.items()},
        data_hash=lineage.get("data_sha256"),
        code_commit=lineage.get("code_commit"),
        run_id=version.run_id,
        lineage=lineage,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _untext(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _quote(name: str) -> str:
    return name.replace("'", "''")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_reachable(tracking_uri: str) -> None:
    """Fail in seconds, not after MLflow's minutes of retries, when the store is unreachable."""
    if tracking_uri.startswith(("http://", "https://")):
        import httpx

        try:
            httpx.get(tracking_uri.rstrip("/") + "/health", timeout=5.0)
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"cannot reach the MLflow tracking server at {display_uri(tracking_uri)} "
                f"({exc.__class__.__name__}); start it or set MLKEEL_TRACKING_URI"
            ) from None
    elif (database := _sqlite_path(tracking_uri)) is not None:
        try:
            _mkdir(database.parent)
        except OSError as exc:
            raise RegistryError(
                f"cannot create the MLflow store folder {database.parent}: {exc.strerror}; "
                "set tracking_uri in mlkeel.toml or MLKEEL_TRACKING_URI"
            ) from None


@contextmanager
def _resident_heap() -> Iterator[None]:
    """Import MLflow (and build its store) as residents the cyclic collector no longer scans.

    The import adds ~220,000 objects (MLflow, its SQLAlchemy models) to a heap of ~170,000
    (pandas, scikit-learn), all living as long as the process. With the collector running,
    CPython rescans the whole heap each time it grows by a quarter: ~0.3 s of a ~2 s
    ``mlkeel train`` here, and ~0.5 s more at interpreter exit. Paused during the import and
    frozen after it (with what was alive before), they are never scanned again. Only at the
    first import in a process, so later work is never frozen; frozen objects are still freed
    by reference counting, only cycles among them stay uncollected.
    """
    if "mlflow" in sys.modules:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


@contextmanager
def _fresh_store_template(tracking_uri: str) -> Iterator[None]:
    """Create a new local SQLite store by copying an empty one, not by migrating.

    MLflow builds a new store by running its whole migration history (~1.7 s here, paid by
    every new project, demo and test). The first store made on this machine for an MLflow
    version is kept as a template; later new stores start as a copy of it.
    """
    database = _sqlite_path(tracking_uri)
    if database is None or database.exists():
        yield
        return
    from mlflow.version import VERSION

    template = Path.home() / ".cache" / "mlkeel" / f"mlflow-{VERSION}-empty-store.db"
    if template.is_file():
        shutil.copyfile(template, database)
        yield
        return
    yield
    try:
        _mkdir(template.parent)
        staging = template.with_suffix(f".{uuid.uuid4().hex}.tmp")
        with sqlite3.connect(database) as source, sqlite3.connect(staging) as copy:
            source.backup(copy)
        staging.replace(template)
    except (OSError, sqlite3.Error) as exc:
        log.debug("not caching an empty MLflow store at %s: %s", template, exc)


def _sqlite_path(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri.endswith(":memory:"):
        return None
    return Path(tracking_uri[len(prefix) :])


def _quiet_mlflow_logs() -> None:
    # MLflow narrates store migrations and warns about pickle on every save; we decided both.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextmanager
def _registry_errors(action: str, uri: str) -> Iterator[None]:
    """Turn MLflow and database failures into one RegistryError naming the store."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if (
            not isinstance(exc, MlflowException | OSError)
            and "sqlalchemy" not in type(exc).__module__
        ):
            raise
        raise RegistryError(
            f"{action} the MLflow store {display_uri(uri)} failed: "
            f"{exc.__class__.__name__}: {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def display_uri(uri: str) -> str:
    """`uri` with any password masked, for messages and logs."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", uri)
