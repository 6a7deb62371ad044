"""Database down and the spool's disk full: records are counted as dropped and logged,
and serving goes on answering."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlkeel.prediction_log.runtime import open_prediction_log
from mlkeel.serving.app import create_app
from mlkeel.settings import PredictionLogConfig
from mlkeel.training import TrainedModel
from serving_support import MODEL, Project, live, wait_until

pytestmark = pytest.mark.timeout(120)
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB filesystem: the spool fills it within a few batches."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_spool_disk_counts_drops_and_serving_continues(
    champion_project: Project,
    trained: TrainedModel,
    full_disk: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = PredictionLogConfig(
        spool_dir=str(full_disk / "spool"), flush_seconds=0.1, batch_size=20
    )  # a batch per request: the first ones fit on the disk, the later ones do not
    settings = champion_project.settings.model_copy(
        update={"database_url": UNREACHABLE, "prediction_log": config}
    )
    prediction_log = open_prediction_log(settings)
    app = create_app(settings, champion_project.registry, prediction_log=prediction_log)
    rows = {"instances": trained.schema.examples * 4}
    with live(app) as client:
        statuses = [client.post(f"/v1/models/{MODEL}/predict", json=rows).status_code
                    for _ in range(40)]  # fmt: skip
        wait_until(lambda: prediction_log.writer.stats.dropped > 0, 30, "records to be dropped")
        metrics = client.get("/metrics").text

    assert set(statuses) == {200}
    assert prediction_log.writer.stats.spooled > 0
    stats = prediction_log.writer.stats
    assert stats.spooled + stats.dropped == stats.submitted
    families = {family.name: family for family in text_string_to_metric_families(metrics)}
    assert families["mlkeel_prediction_log_dropped"].samples[0].value > 0
    assert "records lost, spool unwritable" in caplog.text
    spooled = b"".join(path.read_bytes() for path in (full_disk / "spool").glob("*.spool"))
    assert spooled.count(b"\n") == stats.spooled  # whole records only, no torn tail
