"""Hypothesis properties of the config loader: any file or environment override either loads
with the value it names or is refused as a ConfigError, never another exception."""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlkeel.errors import ConfigError
from mlkeel.settings import Settings, load_settings

CONFIG = """
[models.churn]
train = "train:train"
data = "data.csv"
target = "y"
task = "classification"
metric = "roc_auc"
"""
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=40)  # fmt: skip
FIXTURES_OK = settings(
    max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def load(root: Path, document: str, environ: dict[str, str]) -> Settings | ConfigError:
    (root / "mlkeel.toml").write_text(document)
    try:
        return load_settings(root, environ)
    except ConfigError as exc:  # the only error the loader may raise
        return exc


@FIXTURES_OK
@given(value=st.one_of(TEXT, st.floats(allow_nan=True).map(repr), st.integers().map(str)))
def test_test_size_override_loads_in_range_or_names_the_variable(
    tmp_path: Path, value: str
) -> None:
    loaded = load(tmp_path, CONFIG, {"MLKEEL_MODELS__CHURN__TEST_SIZE": value})

    if isinstance(loaded, ConfigError):
        assert "MLKEEL_MODELS__CHURN__TEST_SIZE" in str(loaded)
    else:
        assert 0 < loaded.model().test_size < 1
        assert math.isclose(loaded.model().test_size, float(value))


@FIXTURES_OK
@given(key=st.from_regex(r"[A-Z][A-Z0-9]{0,12}(_[A-Z0-9]+)?", fullmatch=True), value=TEXT)
def test_any_param_override_reaches_params(tmp_path: Path, key: str, value: str) -> None:
    loaded = load(tmp_path, CONFIG, {f"MLKEEL_MODELS__CHURN__PARAMS__{key}": value})

    assert isinstance(loaded, Settings)
    assert key.lower() in loaded.model().params


@FIXTURES_OK
@given(suffix=st.sampled_from(["__", "____X", "MODELS____TEST_SIZE"]))
def test_empty_key_segments_are_refused(tmp_path: Path, suffix: str) -> None:
    loaded = load(tmp_path, CONFIG, {f"MLKEEL_{suffix}": "1"})

    assert isinstance(loaded, ConfigError)
    assert "empty key" in str(loaded)


@FIXTURES_OK
@given(document=TEXT)
def test_any_file_content_loads_or_is_a_config_error(tmp_path: Path, document: str) -> None:
    loaded = load(tmp_path, document, {})

    assert isinstance(loaded, Settings | ConfigError)
    assert isinstance(loaded, Settings) or str(loaded)
