"""``mlkeel init``: write a new, runnable project folder.

A project is ``mlkeel.toml``, a ``train.py`` defining ``train(data, params)``, a ``data/``
folder and a ``.gitignore`` keeping mlkeel's local stores (``.mlkeel/``) out of git. The
texts live in ``templates/`` (one folder per kind: ``blank`` and each example) and are
filled in with :class:`string.Template`. The examples also write their data set, taken from
the copies bundled with scikit-learn (no download).

Nothing a user wrote is ever overwritten: every target is checked before the first write,
and files are created in exclusive mode. The one exception is ``.gitignore``, to which the
``.mlkeel/`` line is appended when it is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from importlib.resources import files
from pathlib import Path
from string import Template
from typing import Any

from mlkeel.errors import ConfigError
from mlkeel.settings import CONFIG_FILE, MODEL_NAME

EXAMPLES: tuple[str, ...] = ("breast_cancer", "diabetes")

_BLANK = "blank"  # the template folder used without an example
_FALLBACK_NAME = "model"
_TRAIN_FILE = "train.py"
_DATA_DIR = "data"
_GITIGNORE = ".gitignore"
_STORE_DIR = ".mlkeel/"


def init_project(directory: Path, example: str | None = None) -> list[Path]:
    """Write a runnable project into `directory`; return the files written.

    `directory` is created when missing. With `example` (one of :data:`EXAMPLES`) the
    project trains on a data set bundled with scikit-learn; without, it is a commented
    template whose model is named after the folder. Raises :class:`ConfigError` for an
    unknown example, or when `directory` already holds a file the project would write.
    """
    if example is not None and example not in EXAMPLES:
        raise ConfigError(
            f"unknown example {example!r}; allowed: {', '.join(EXAMPLES)} "
            "(or no example for a blank project)"
        )
    name = _identifier(directory.resolve().name)
    model = example or name or _FALLBACK_NAME
    values = {"project": name or model, "model": model, "model_env": model.upper()}
    kind = example or _BLANK
    contents = {
        CONFIG_FILE: _render(kind, "mlkeel.toml.tmpl", values),
        _TRAIN_FILE: _render(kind, "train.py.tmpl", values),
    }
    if example is not None:
        contents[f"{_DATA_DIR}/{example}.csv"] = _EXAMPLE_DATA[example]()
    _refuse_existing(directory, contents)

    try:
        (directory / _DATA_DIR).mkdir(parents=True, exist_ok=True)
        written = [_create(directory / relative, text) for relative, text in contents.items()]
        if _ensure_gitignore(directory / _GITIGNORE):
            written.append(directory / _GITIGNORE)
    except OSError as exc:
        raise ConfigError(f"cannot write the project into {directory}: {exc}") from None
    return written


def _identifier(text: str) -> str:
    """`text` as a config name (lower-case, '_' between words), or '' if none fits."""
    candidate = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return candidate if MODEL_NAME.match(candidate) else ""


def _render(kind: str, template: str, values: Mapping[str, str]) -> str:
    text = files("mlkeel").joinpath("templates", kind, template).read_text(encoding="utf-8")
    return Template(text).substitute(values)


def _refuse_existing(directory: Path, contents: Mapping[str, str]) -> None:
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a folder; choose a new or empty folder")
    config = directory / CONFIG_FILE
    if config.exists():
        raise ConfigError(
            f"{config} already exists; nothing was written. "
            "Edit it, or run 'mlkeel init' on a new or empty folder"
        )
    data_dir = directory / _DATA_DIR
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"{data_dir} is a file, not a folder; nothing was written")
    clashes = sorted(relative for relative in contents if (directory / relative).exists())
    if clashes:
        raise ConfigError(
            f"{directory} already has {', '.join(clashes)}; nothing was written. "
            "Move them away, or run 'mlkeel init' on a new or empty folder"
        )


def _create(path: Path, text: str) -> Path:
    """Write `text` to a new file (never replacing one) with '\\n' line ends."""
    with path.open("x", encoding="utf-8", newline="\n") as stream:
        stream.write(text)
    return path


def _ensure_gitignore(path: Path) -> bool:
    """Make `path` ignore mlkeel's local stores; return whether it was written to."""
    if not path.exists():
        _create(path, _gitignore_text())
        return True
    current = path.read_text(encoding="utf-8")
    if any(line.strip() in {_STORE_DIR, _STORE_DIR.rstrip("/")} for line in current.splitlines()):
        return False
    separator = "" if current.endswith("\n") or not current else "\n"
    with path.open("a", encoding="utf-8", newline="\n") as stream:
        stream.write(separator + _gitignore_text())
    return True


def _gitignore_text() -> str:
    return files("mlkeel").joinpath("templates", "gitignore.tmpl").read_text(encoding="utf-8")


def _breast_cancer_csv() -> str:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    # "mean concave points" -> "mean_concave_points": names that work as identifiers.
    frame = frame.rename(columns=_identifier).astype({"target": "int64"})
    return _csv(frame)


def _diabetes_csv() -> str:
    from sklearn.datasets import load_diabetes

    return _csv(load_diabetes(as_frame=True, scaled=False).frame)


def _csv(frame: Any) -> str:
    """The same bytes on every run: pandas prints floats by their shortest repr."""
    return str(frame.to_csv(index=False, lineterminator="\n"))


_EXAMPLE_DATA: dict[str, Callable[[], str]] = {
    "breast_cancer": _breast_cancer_csv,
    "diabetes": _diabetes_csv,
}
