from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy

from mlkeel.datasource import load_dataset, load_files
from mlkeel.errors import DataError
from mlkeel.settings import Settings, load_settings

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def settings_with(tmp_path: Path, data_lines: str) -> Settings:
    (tmp_path / "mlkeel.toml").write_text(
        f'[models.m]\ntrain = "train:train"\ntarget = "y"\ntask = "regression"\n'
        f'metric = "rmse"\n{data_lines}\n'
    )
    return load_settings(tmp_path, environ={})


def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"], "y": [0.5, 1.5, 2.5]})


def test_csv_and_parquet_load_with_file_digest(tmp_path: Path) -> None:
    frame().to_csv(tmp_path / "d.csv", index=False)
    frame().to_parquet(tmp_path / "d.parquet")
    settings = settings_with(tmp_path, 'data = "d.csv"')

    for name in ("d.csv", "d.parquet"):
        dataset = load_files(settings, name)
        pd.testing.assert_frame_equal(dataset.frame, frame())
        assert dataset.sha256 == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()


def test_glob_concatenates_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    frame().iloc[2:].to_csv(tmp_path / "parts" / "b.csv", index=False)
    frame().iloc[:2].to_csv(tmp_path / "parts" / "a.csv", index=False)
    settings = settings_with(tmp_path, 'data = "parts/*.csv"')

    dataset = load_dataset(settings, settings.model())

    pd.testing.assert_frame_equal(dataset.frame, frame())
    assert dataset.rows == 3


def test_missing_file_and_empty_glob_are_data_errors(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, 'data = "nope.csv"')

    with pytest.raises(DataError, match=r"nope.csv does not exist"):
        load_dataset(settings, settings.model())
    with pytest.raises(DataError, match="no file matches"):
        load_files(settings, "parts/*.csv")


def test_unsupported_suffix_is_named(tmp_path: Path) -> None:
    (tmp_path / "d.xlsx").write_bytes(b"x")
    settings = settings_with(tmp_path, 'data = "d.xlsx"')

    with pytest.raises(DataError, match=r"suffix '.xlsx'; supported"):
        load_dataset(settings, settings.model())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sql_query_loads_rows_with_stable_digest(tmp_path: Path, backend: str) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}" if backend == "sqlite" else POSTGRES
    table = f"mlkeel_source_{tmp_path.name[-8:].replace('-', '_')}"
    engine = sqlalchemy.create_engine(url)
    frame().to_sql(table, engine, index=False, if_exists="replace")
    try:
        settings = settings_with(
            tmp_path, f'data_query = "SELECT x, c, y FROM {table} ORDER BY x"\ndata_url = "{url}"'
        )
        first = load_dataset(settings, settings.model())
        second = load_dataset(settings, settings.model())
    finally:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(f"DROP TABLE {table}"))
        engine.dispose()

    pd.testing.assert_frame_equal(first.frame, frame())
    assert first.sha256 == second.sha256
    assert "SELECT x, c, y" in first.source


def test_failing_query_is_a_data_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    settings = settings_with(tmp_path, f'data_query = "SELECT * FROM missing"\ndata_url = "{url}"')

    with pytest.raises(DataError, match="data query .* failed: OperationalError"):
        load_dataset(settings, settings.model())
