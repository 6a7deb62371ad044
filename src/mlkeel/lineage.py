"""Where a model came from: data digest, DVC entry, git commit, Python environment."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

KEY_PACKAGES = ("mlkeel", "mlflow", "scikit-learn", "numpy", "pandas", "scipy")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CodeVersion:
    commit: str | None
    dirty: bool | None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """The file's SHA-256, as `sha256sum` prints it."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(root: Path, ignore: frozenset[str] = frozenset()) -> str:
    """One digest for every file under `root` (but those named in `ignore`): relative paths
    and contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in ignore):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def dvc_md5(path: Path) -> str | None:
    """The md5 DVC recorded for `path` in its ``.dvc`` file, if the file is DVC-tracked."""
    pointer = path.with_name(path.name + ".dvc")
    if not pointer.is_file():
        return None
    try:
        document = yaml.safe_load(pointer.read_text(encoding="utf-8"))
        outs = document.get("outs", []) if isinstance(document, dict) else []
    except yaml.YAMLError:
        return None
    for out in outs:
        if isinstance(out, dict) and out.get("md5"):
            return str(out["md5"])
    return None


def code_version(directory: Path) -> CodeVersion:
    """The git commit checked out at `directory` and whether the tree has uncommitted changes."""
    try:
        commit = _git(directory, "rev-parse", "HEAD")
        status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return CodeVersion(commit=None, dirty=None)
    return CodeVersion(commit=commit, dirty=bool(status))


def _git(directory: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],  # noqa: S607 - git from PATH is what the user runs too
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return result.stdout.strip()


def environment() -> dict[str, str]:
    """Python and key package versions, for reproducing a training run."""
    versions = {"python": platform.python_version()}
    for package in KEY_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions
