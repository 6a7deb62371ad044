from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(300)
def test_demo_tells_the_story_and_exits_zero(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlkeel", "demo", "--no-wait", "--dir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=280,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    out = " ".join(result.stdout.split())
    assert "breast_cancer v1" in out
    assert "400 (0 failed)" in out
    assert "predictions logged │ 400" in out
    assert (tmp_path / "demo" / "mlkeel.toml").is_file()
