"""Loading a model's data from its configured source, with the digest of what was read."""

from __future__ import annotations

import glob
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlkeel.errors import DataError
from mlkeel.lineage import dvc_md5, sha256_bytes
from mlkeel.settings import ModelConfig, Settings

SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame
    source: str
    sha256: str
    dvc_md5: str | None = None

    @property
    def rows(self) -> int:
        return len(self.frame)


def load_dataset(settings: Settings, config: ModelConfig) -> Dataset:
    """The model's data from a file, a glob of files, or a SQL query."""
    if config.data_query is not None:
        return _load_query(config)
    pattern = config.data
    if pattern is None:  # settings guarantee one of data / data_query
        raise DataError(f"model {config.name!r} has no data source")
    return load_files(settings, pattern)


def load_files(settings: Settings, pattern: str) -> Dataset:
    """Every file matching `pattern` (relative to the project), concatenated in name order."""
    path = settings.path(pattern)
    if glob.has_magic(str(path)):
        paths = sorted(Path(p) for p in glob.glob(str(path)))
        if not paths:
            raise DataError(f"no file matches data pattern {pattern!r} (looked in {path.parent})")
    elif not path.is_file():
        raise DataError(
            f"data file {path} does not exist; set 'data' in mlkeel.toml to a CSV or Parquet "
            "file relative to the project folder"
        )
    else:
        paths = [path]
    contents = [_read_bytes(p) for p in paths]
    frames = [_parse(p, data) for p, data in zip(paths, contents, strict=True)]
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    if len(paths) == 1:
        digest = sha256_bytes(contents[0])
    else:
        manifest = "".join(
            f"{p.name}\0{sha256_bytes(d)}\n" for p, d in zip(paths, contents, strict=True)
        )
        digest = sha256_bytes(manifest.encode())
    return Dataset(frame, str(path), digest, dvc_md5(paths[0]) if len(paths) == 1 else None)


def _read_bytes(path: Path) -> bytes:
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"data file {path} has suffix {path.suffix!r}; supported: {SUFFIXES}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror}") from None


def _parse(path: Path, data: bytes) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(io.BytesIO(data))
        return pd.read_parquet(io.BytesIO(data))
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot parse data file {path}: {exc}") from None


def _load_query(config: ModelConfig) -> Dataset:
    import sqlalchemy

    url, query = config.data_url, config.data_query
    if url is None or query is None:
        raise DataError(f"model {config.name!r} needs both data_query and data_url")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            frame = pd.read_sql_query(sqlalchemy.text(query), connection)
    except (sqlalchemy.exc.SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, sqlalchemy.exc.SQLAlchemyError) else exc
        detail = (str(getattr(cause, "orig", None) or cause).strip().splitlines() or [""])[0]
        raise DataError(
            f"data query on {engine.url!r} failed: {cause.__class__.__name__}: {detail}"
        ) from None
    finally:
        engine.dispose()
    # A query has no file to hash; hash a canonical rendering of the rows instead.
    digest = sha256_bytes(frame.to_csv(index=False, lineterminator="\n").encode())
    return Dataset(frame, f"{engine.url!r}: {query}", digest)


def require_columns(dataset: Dataset, columns: list[str]) -> None:
    missing = [c for c in columns if c not in dataset.frame.columns]
    if missing:
        raise DataError(
            f"column(s) {missing} not found in {dataset.source}; "
            f"available: {list(dataset.frame.columns)}"
        )
