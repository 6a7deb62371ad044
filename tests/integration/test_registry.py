from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlkeel.errors import ArtifactIntegrityError, ModelNotFoundError, RegistryError
from mlkeel.registry import Registry
from mlkeel.settings import Settings
from mlkeel.training import to_candidate, train_model


def register(settings: Settings, registry: Registry, **overrides: object) -> int:
    trained = train_model(settings, settings.model(), dict(overrides))
    return registry.register(to_candidate(trained)).version


def test_registered_version_carries_lineage_matching_sha256sum(
    settings: Settings, registry: Registry, project: Path
) -> None:
    version = register(settings, registry)

    info = registry.version("breast_cancer", version)
    data_file = project / "data" / "breast_cancer.csv"
    sha256sum = subprocess.run(
        ["sha256sum", str(data_file)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert info.data_hash == sha256sum
    assert info.lineage["data_rows"] == 569
    assert info.lineage["train_rows"] + info.lineage["test_rows"] == 569
    assert info.lineage["environment"]["scikit-learn"]
    assert set(info.metrics) == {"accuracy", "f1", "roc_auc", "log_loss"}
    assert info.metrics["roc_auc"] > 0.95
    assert info.run_id


def test_same_data_and_seed_give_same_hash_and_metrics(
    settings: Settings, registry: Registry
) -> None:
    first = registry.version("breast_cancer", register(settings, registry))
    second = registry.version("breast_cancer", register(settings, registry))

    assert (first.version, second.version) == (1, 2)
    assert first.data_hash == second.data_hash
    assert first.metrics == second.metrics


def test_loaded_model_predicts_like_the_trained_one(settings: Settings, registry: Registry) -> None:
    trained = train_model(settings, settings.model())
    version = registry.register(to_candidate(trained)).version

    loaded = registry.load("breast_cancer", version)

    rows = pd.DataFrame(loaded.schema.examples)
    np.testing.assert_allclose(loaded.model.predict_proba(rows), trained.model.predict_proba(rows))
    assert loaded.schema.names == list(rows.columns)
    assert loaded.profile["rows"] == trained.train_rows


def test_tampered_artifact_is_refused(settings: Settings, registry: Registry) -> None:
    version = register(settings, registry)
    source = registry.client.get_model_version_download_uri("breast_cancer", str(version))
    model_file = Path(source.removeprefix("file://")) / "model.pkl"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")

    with pytest.raises(ArtifactIntegrityError, match="does not match"):
        registry.load("breast_cancer", version)


def test_alias_resolves_and_records_when_it_moved(settings: Settings, registry: Registry) -> None:
    first, second = register(settings, registry), register(settings, registry)

    registry.set_alias("breast_cancer", "champion", first)
    registry.set_alias("breast_cancer", "champion", second)

    champion = registry.resolve("breast_cancer", "champion")
    assert champion.version == second
    assert champion.aliases == ["champion"]
    assert "champion_since" in champion.lineage
    assert registry.version("breast_cancer", first).aliases == []


def test_aliases_map_each_alias_to_its_version_in_one_read(
    settings: Settings, registry: Registry
) -> None:
    first, second = register(settings, registry), register(settings, registry)
    assert registry.aliases("breast_cancer") == {}

    registry.set_alias("breast_cancer", "champion", first)
    registry.set_alias("breast_cancer", "canary", second)

    assert registry.aliases("breast_cancer") == {"champion": first, "canary": second}
    with pytest.raises(ModelNotFoundError, match="no registered model 'nope'"):
        registry.aliases("nope")


def test_unknown_model_version_and_alias_are_named(settings: Settings, registry: Registry) -> None:
    with pytest.raises(ModelNotFoundError, match="no registered model 'nope'"):
        registry.versions("nope")
    register(settings, registry)
    with pytest.raises(ModelNotFoundError, match="no version 7; versions: 1"):
        registry.version("breast_cancer", 7)
    with pytest.raises(ModelNotFoundError, match="mlkeel promote breast_cancer VERSION"):
        registry.resolve("breast_cancer", "champion")


def test_failed_registration_leaves_no_version(
    settings: Settings, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(settings, registry)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(registry.client, "log_artifacts", refuse)
    with pytest.raises(RegistryError, match="nothing was registered"):
        register(settings, registry)

    assert [info.version for info in registry.versions("breast_cancer")] == [1]
    runs = registry.client.search_runs(
        [registry.client.get_experiment_by_name(settings.project).experiment_id]
    )
    assert sorted(run.info.status for run in runs) == ["FAILED", "FINISHED"]


def test_unreachable_tracking_server_fails_fast(tmp_path: Path) -> None:
    registry = Registry("http://127.0.0.1:9", "p", None, tmp_path)

    with pytest.raises(RegistryError, match="cannot reach the MLflow tracking server"):
        registry.names()


def test_artifact_holds_schema_and_profile_beside_model(
    settings: Settings, registry: Registry
) -> None:
    version = register(settings, registry)

    loaded = registry.load("breast_cancer", version)

    assert (loaded.path / "MLmodel").is_file()
    schema = json.loads((loaded.path / "input_schema.json").read_text())
    assert schema["target"] == {"name": "target", "task": "classification", "classes": [0, 1]}
    assert len(schema["features"]) == 30


def test_new_store_starts_from_cached_empty_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    first = Registry(f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}", "p", None, tmp_path / "c")
    assert first.names() == []
    templates = list((tmp_path / "home" / ".cache" / "mlkeel").glob("mlflow-*-empty-store.db"))
    assert len(templates) == 1

    second = Registry(f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}", "p", None, tmp_path / "c")
    second.client.create_registered_model("copied")

    assert second.names() == ["copied"]
    assert first.names() == []


def test_mlflow_serving_metadata_does_not_break_the_digest(
    settings: Settings, registry: Registry
) -> None:
    version = register(settings, registry)
    source = registry.client.get_model_version_download_uri("breast_cancer", str(version))
    # What `mlflow models serve -m models:/breast_cancer/1` leaves in the artifact folder.
    (Path(source.removeprefix("file://")) / "registered_model_meta").write_text(
        "model_name: breast_cancer\nmodel_version: '1'\n"
    )

    loaded = registry.load("breast_cancer", version)

    assert loaded.info.version == version


@pytest.mark.parametrize("first_call", ["names()", "version('m', 1)", "resolve('m', 'champion')"])
def test_first_connection_freezes_mlflow_out_of_the_collectors_scans(
    tmp_path: Path, first_call: str
) -> None:
    # A fresh interpreter (this one imported MLflow long ago); serving's first call is resolve.
    script = (
        "import gc, sys\n"
        "from mlkeel.errors import ModelNotFoundError\n"
        "from mlkeel.registry import Registry\n"
        f"registry = Registry('sqlite:///{tmp_path / 'mlflow.db'}', 'p', None, sys.argv[1])\n"
        f"try:\n    registry.{first_call}\nexcept ModelNotFoundError:\n    pass\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 100_000)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "cache")],
        capture_output=True,
        text=True,
        check=True,
    )

    assert result.stdout.split() == ["True", "True"]
