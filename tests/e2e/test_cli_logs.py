from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from mlkeel.cli.compose import open_repository
from mlkeel.prediction_log.record import PredictionRecord
from mlkeel.settings import Settings
from support import run_cli

NOW = datetime.now(UTC)


def log_predictions(settings: Settings, count: int, *, days_ago: float = 0) -> None:
    moment = NOW - timedelta(days=days_ago)
    with open_repository(settings) as repository:
        repository.insert([
        PredictionRecord(moment, "breast_cancer", 1, "champion", f"r{days_ago}-{i}", 0,
                         {"mean_radius": 10.0 + i, "flag": "a"}, i % 2,
                         {"0": 0.4, "1": 0.6}, 2.0)
        for i in range(count)
        ])  # fmt: skip


def test_export_writes_one_row_per_prediction_with_features_and_labels(
    project: Path, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_predictions(settings, 5)
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["r0-0", "r0-1", "ghost"], "label": [1, 0, 1]}).to_csv(
        labels, index=False
    )

    code, out, err = run_cli(capsys, "feedback", "import", str(labels), "-p", str(project))
    assert code == 0
    assert "Labelled 2 of 3" in out
    assert "1 unknown request ids" in err
    assert "ghost#0" in err

    for suffix in (".parquet", ".csv"):
        out_file = tmp_path / f"export{suffix}"
        code, out, _ = run_cli(capsys, "logs", "export", "--out", str(out_file), "-p", str(project),
                           "--since", "1d")  # fmt: skip
        assert code == 0, out
        frame = pd.read_parquet(out_file) if suffix == ".parquet" else pd.read_csv(out_file)
        assert len(frame) == 5
        assert {"feature.mean_radius", "feature.flag", "proba.1", "label", "version"} <= set(
            frame.columns
        )
        by_id = frame.set_index("request_id")
        assert by_id.loc["r0-0", "label"] == 1
        assert pd.isna(by_id.loc["r0-2", "label"])
        assert by_id.loc["r0-3", "feature.mean_radius"] == 13.0


def test_feedback_with_only_unknown_ids_fails(
    project: Path, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_predictions(settings, 1)
    labels = tmp_path / "labels.parquet"
    pd.DataFrame({"request_id": ["x", "y"], "label": [1, 0]}).to_parquet(labels)

    code, _, err = run_cli(capsys, "feedback", "import", str(labels), "-p", str(project))

    assert code == 1
    assert "none of the 2 request ids" in err


def test_prune_keeps_the_retention_window(
    project: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    log_predictions(settings, 3, days_ago=100)
    log_predictions(settings, 2, days_ago=1)

    code, out, _ = run_cli(capsys, "logs", "prune", "--older-than", "90d", "-p", str(project))

    assert code == 0
    assert "Deleted 3 predictions" in out
    with open_repository(settings) as repository:
        assert repository.count() == 2


def test_tail_shows_latest_predictions(
    project: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    log_predictions(settings, 30)

    code, out, _ = run_cli(capsys, "logs", "tail", "-n", "3", "-p", str(project))

    assert code == 0
    assert "r0-29" in out
    assert "r0-27" in out
    assert "r0-26" not in out


def test_bad_age_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "logs", "prune", "--older-than", "ninety", "-p", str(project))

    assert code == 2
    assert "'ninety' is not an age" in err


def test_db_upgrade_on_postgresql(
    project: Path, postgres_url: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("MLKEEL_DATABASE_URL", postgres_url)

    code, out, _ = run_cli(capsys, "db", "upgrade", "-p", str(project))

    assert code == 0
    assert "newest schema" in out
    engine = sa.create_engine(postgres_url)
    assert {"mlkeel_predictions", "mlkeel_labels"} <= set(sa.inspect(engine).get_table_names())
    engine.dispose()
