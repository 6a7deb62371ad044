from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(120)
def test_serve_with_unreachable_tracking_server_exits_1_with_a_clear_error(project: Path) -> None:
    environment = {**os.environ, "MLKEEL_TRACKING_URI": "http://127.0.0.1:9"}

    result = subprocess.run(
        [sys.executable, "-m", "mlkeel", "serve", "-p", str(project), "--port", "0"],
        capture_output=True, text=True, timeout=110, env=environment,
    )  # fmt: skip

    assert result.returncode == 1
    message = " ".join(result.stderr.split())
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:9" in message
    assert "Traceback" not in result.stderr
