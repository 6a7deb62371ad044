from __future__ import annotations

import subprocess
from pathlib import Path

from mlkeel.lineage import code_version, dvc_md5, environment, sha256_file, sha256_tree


def test_sha256_file_equals_sha256sum(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,b\n1,2\n" * 100_000)

    expected = subprocess.run(
        ["sha256sum", str(path)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    assert sha256_file(path) == expected


def test_tree_digest_changes_with_content_or_name(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("1")
    before = sha256_tree(tmp_path)
    (tmp_path / "a").write_text("2")
    changed = sha256_tree(tmp_path)
    (tmp_path / "a").rename(tmp_path / "b")

    assert len({before, changed, sha256_tree(tmp_path)}) == 3


def test_dvc_md5_read_from_pointer_file(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x\n1\n")
    (tmp_path / "train.csv.dvc").write_text(
        "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 4\n  path: train.csv\n"
    )

    assert dvc_md5(data) == "0123456789abcdef0123456789abcdef"
    assert dvc_md5(tmp_path / "other.csv") is None


def test_code_version_reports_commit_and_dirty_tree(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("add", "train.py")
    git("commit", "-qm", "first")

    clean = code_version(tmp_path)
    (tmp_path / "train.py").write_text("x = 2\n")
    dirty = code_version(tmp_path)

    assert clean.commit == git("rev-parse", "HEAD")
    assert clean.dirty is False
    assert dirty.dirty is True


def test_code_version_outside_git_is_unknown(tmp_path: Path) -> None:
    version = code_version(tmp_path)

    assert (version.commit, version.dirty) == (None, None)


def test_environment_names_python_and_key_packages() -> None:
    versions = environment()

    assert {"python", "mlflow", "scikit-learn", "numpy"} <= set(versions)
