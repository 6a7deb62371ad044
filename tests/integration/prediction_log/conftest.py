"""Fixtures for the prediction-log tests."""

from __future__ import annotations

import contextlib
import glob
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from private_postgres import PrivateCluster


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[PrivateCluster]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not found or shutil.which("runuser") is None:
        pytest.fail("PostgreSQL server binaries are needed for the outage tests")
    root = Path(tempfile.mkdtemp(prefix="mlkeel-pg-"))
    shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    subprocess.run(
        ["runuser", "-u", "postgres", "--", f"{found[-1]}/initdb", "-D", str(data), "-A", "trust",
         "-U", "postgres"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cluster = PrivateCluster(data, port, Path(found[-1]))
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
