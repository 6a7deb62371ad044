"""The retraining data: the configured source, plus labelled production records when asked,
split the way ``mlkeel train`` splits, snapshotted and hashed.

The snapshot (``.mlkeel/snapshots/MODEL/HASH/{train,test}.parquet``) is what the model is
trained and judged on, kept by content hash so identical data is stored once: a version's
data can be re-read even after the source file was overwritten or the query's table changed.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from mlkeel.datasource import Dataset, load_dataset, load_files, require_columns
from mlkeel.errors import ConfigError, DataError
from mlkeel.lineage import sha256_bytes
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.settings import ModelConfig, Settings
from mlkeel.training import split_dataset

SNAPSHOT_DIR = ".mlkeel/snapshots"
_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class TrainingData:
    """Everything one retrain reads: the data (its hash and source), the split, the golden set."""

    dataset: Dataset
    train: pd.DataFrame
    test: pd.DataFrame
    golden: pd.DataFrame | None = None
    golden_sha256: str | None = None
    production_rows: int = 0
    production_range: tuple[float, float] | None = None  # first and last record, epoch s
    loaded_at: float = 0.0
    snapshot: Path | None = None

    def lineage(self) -> dict[str, Any]:
        """What a version records about its data beyond training's own lineage."""
        found: dict[str, Any] = {
            "data_loaded_at": _iso(self.loaded_at),
            "data_snapshot": None if self.snapshot is None else str(self.snapshot),
            "production_rows": self.production_rows,
            "golden_sha256": self.golden_sha256,
        }
        if self.production_range is not None:
            first, last = self.production_range
            found["data_time_range"] = {"first": _iso(first), "last": _iso(last)}
        return found


def load_training_data(
    settings: Settings,
    config: ModelConfig,
    predictions: PredictionRepository | None = None,
    now: float | None = None,
) -> TrainingData:
    """The source data (+ labelled production records when configured), split and golden."""
    now = time.time() if now is None else now
    base = load_dataset(settings, config)
    require_columns(base, [config.target])
    dataset, added, time_range = base, 0, None
    if config.retrain.include_production:
        if predictions is None:
            raise ConfigError(
                f"model {config.name!r} has retrain.include_production = true, which needs "
                "the prediction log's database (database_url)"
            )
        since = now - window_seconds(config.retrain.production_window)
        records, times = production_frame(predictions.window(config.name, since, now), base, config)
        dataset, added, time_range = _append(base, records, times, since, now)
    train, test = split_dataset(settings, config, dataset)
    golden, golden_sha = load_golden(settings, config, list(dataset.frame.columns))
    return TrainingData(dataset, train, test, golden, golden_sha, added, time_range, loaded_at=now)


def load_test_data(
    settings: Settings, config: ModelConfig
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The project's test split (as ``mlkeel train`` makes it) and golden set, for a gate."""
    dataset = load_dataset(settings, config)
    require_columns(dataset, [config.target])
    _, test = split_dataset(settings, config, dataset)
    golden, _ = load_golden(settings, config, list(dataset.frame.columns))
    return test, golden


def load_golden(
    settings: Settings, config: ModelConfig, columns: list[str]
) -> tuple[pd.DataFrame | None, str | None]:
    if config.retrain.golden_data is None:
        return None, None
    golden = load_files(settings, config.retrain.golden_data)
    require_columns(golden, columns)
    return golden.frame[columns], golden.sha256


def production_frame(
    records: Iterable[Mapping[str, Any]], base: Dataset, config: ModelConfig
) -> tuple[pd.DataFrame, list[float]]:
    """Labelled records as rows shaped like `base` (its columns and dtypes) and their times:
    one row per served row (a shadow's duplicate of a request counts once), unlabelled
    records left out."""
    rows: list[dict[str, Any]] = []
    times: list[float] = []
    seen: set[tuple[str, int]] = set()
    for record in records:
        key = (str(record["request_id"]), int(record["row"]))
        if record.get("label") is None or key in seen:
            continue
        seen.add(key)
        features = record["features"] if isinstance(record["features"], dict) else {}
        rows.append({**features, config.target: record["label"]})
        times.append(float(record["ts"]))
    columns = list(base.frame.columns)
    frame = pd.DataFrame(rows, columns=columns)
    for column in columns:
        try:
            frame[column] = frame[column].astype(base.frame[column].dtype)
        except (TypeError, ValueError):
            continue  # missing values in an int column, say: keep pandas' own choice
    return frame, times


def _append(
    base: Dataset, records: pd.DataFrame, times: list[float], since: float, until: float
) -> tuple[Dataset, int, tuple[float, float] | None]:
    if records.empty:
        return base, 0, None
    frame = pd.concat([base.frame, records], ignore_index=True)
    rendered = records.to_csv(index=False, lineterminator="\n").encode()
    digest = sha256_bytes(f"{base.sha256}\n{sha256_bytes(rendered)}\n".encode())
    source = (
        f"{base.source} + {len(records)} labelled production records "
        f"({_iso(since)} .. {_iso(until)})"
    )
    return Dataset(frame, source, digest, base.dvc_md5), len(records), (min(times), max(times))


def write_snapshot(settings: Settings, config: ModelConfig, data: TrainingData) -> TrainingData:
    """Store the split under its content hash (once) and return `data` pointing at it."""
    folder = settings.path(SNAPSHOT_DIR) / config.name / data.dataset.sha256[:16]
    if not (folder / "train.parquet").is_file() or not (folder / "test.parquet").is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
        try:
            data.train.to_parquet(staging / "train.parquet", index=False)
            data.test.to_parquet(staging / "test.parquet", index=False)
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
        except (ValueError, TypeError, OSError) as exc:
            raise DataError(
                f"cannot snapshot the training data of {config.name!r} to {folder}: "
                f"{exc.__class__.__name__}: {exc}"
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return TrainingData(
        data.dataset, data.train, data.test, data.golden, data.golden_sha256,
        data.production_rows, data.production_range, data.loaded_at, folder,
    )  # fmt: skip


def window_seconds(text: str) -> float:
    """``30d``, ``12h``, ``2w`` as seconds (settings validated the spelling)."""
    match = _AGE.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"{text!r} is not an age; use a number and a unit: 30d, 12h, 2w")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)]).total_seconds()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
