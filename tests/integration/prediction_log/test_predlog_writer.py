from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy

from mlkeel.db import make_engine, upgrade
from mlkeel.prediction_log.record import PredictionRecord
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.prediction_log.spool import Spool
from mlkeel.prediction_log.writer import PredictionLogWriter
from private_postgres import PrivateCluster


def records(prefix: str, count: int) -> list[PredictionRecord]:
    now = datetime.now(UTC)
    return [
        PredictionRecord(now, "m", 1, "champion", f"{prefix}-{i}", 0, {"x": float(i)}, 0, None, 1.0)
        for i in range(count)
    ]


@pytest.fixture
def repository(database_url: str) -> Iterator[PredictionRepository]:
    engine = make_engine(database_url)
    yield PredictionRepository(engine)
    engine.dispose()


def test_every_submitted_record_is_stored_once_after_stop(
    repository: PredictionRepository, tmp_path: Path
) -> None:
    writer = PredictionLogWriter(repository, Spool(tmp_path / "spool"), batch_size=500)
    writer.start()

    def client(name: str) -> None:
        batch = records(name, 3000)
        for start in range(0, len(batch), 3):
            writer.submit(batch[start : start + 3])

    threads = [threading.Thread(target=client, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.stop()

    assert repository.count() == 12_000
    # Stored directly, or spooled and replayed had the database fallen behind the burst.
    assert (writer.stats.written + writer.stats.replayed, writer.stats.dropped) == (12_000, 0)
    assert writer.stats.queue_depth == 0


def test_flush_makes_records_visible_without_stopping(
    repository: PredictionRepository, tmp_path: Path
) -> None:
    writer = PredictionLogWriter(repository, Spool(tmp_path), flush_seconds=30)
    writer.start()
    writer.submit(records("a", 10))

    assert writer.flush(timeout=10)
    assert repository.count() == 10
    writer.stop()


def test_durable_submit_completes_once_stored(
    repository: PredictionRepository, tmp_path: Path
) -> None:
    writer = PredictionLogWriter(repository, Spool(tmp_path), flush_seconds=30)
    writer.start()

    writer.submit_durable(records("d", 3)).result(timeout=10)

    assert repository.count() == 3
    writer.stop()


def test_queue_overflow_is_counted_not_silent(
    repository: PredictionRepository, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = PredictionLogWriter(repository, Spool(tmp_path), queue_limit=5)  # not started

    writer.submit(records("a", 4))
    writer.submit(records("b", 4))

    assert (writer.stats.submitted, writer.stats.dropped) == (4, 4)
    assert "dropped 4" in caplog.text
    writer.start()
    writer.stop()
    assert repository.count() == 4


class SlowRepository(PredictionRepository):
    """A real database that takes `delay` s per insert while `slow`: too slow for the traffic."""

    def __init__(self, repository: PredictionRepository, delay: float) -> None:
        super().__init__(repository.engine)
        self.delay = delay
        self.slow = True

    def insert(self, records: Sequence[PredictionRecord]) -> int:
        if self.slow:
            time.sleep(self.delay)
        return super().insert(records)


def test_a_database_too_slow_for_the_traffic_gets_spooled_records_not_dropped_ones(
    repository: PredictionRepository, tmp_path: Path
) -> None:
    slow = SlowRepository(repository, delay=0.05)  # 100 records per 50 ms: 2,000 a second
    writer = PredictionLogWriter(
        slow, Spool(tmp_path / "spool"), batch_size=100, queue_limit=3000, flush_seconds=0.05
    )
    writer.start()
    for i in range(150):  # 15,000 records at up to 20,000 a second
        writer.submit(records(f"r{i}", 100))
        time.sleep(0.005)
    slow.slow = False
    writer.stop()  # drains the queue, then replays the spool

    assert writer.stats.dropped == 0
    assert writer.stats.spooled > 0
    assert writer.stats.written + writer.stats.replayed == 15_000
    assert repository.count() == 15_000
    assert list((tmp_path / "spool").glob("*.spool")) == []


def test_spool_left_by_a_killed_process_is_replayed_once(
    repository: PredictionRepository, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    script = (
        "import os, sys\n"
        "from datetime import UTC, datetime\n"
        "from pathlib import Path\n"
        "from mlkeel.prediction_log.record import PredictionRecord\n"
        "from mlkeel.prediction_log.spool import Spool\n"
        "now = datetime.now(UTC)\n"
        "def batch(prefix):\n"
        "    return [PredictionRecord(now, 'm', 1, 'champion', f'{prefix}-{i}', 0, {'x': 1.0},\n"
        "                             0, None, 1.0) for i in range(50)]\n"
        "spool = Spool(Path(sys.argv[1]))\n"
        "spool.append(batch('k'))\n"
        "spool.append(batch('j'))\n"
        "os.kill(os.getpid(), 9)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(spool_dir)], timeout=60)
    assert result.returncode == -9
    repository.insert(records("k", 10))  # some of them had reached the database already

    writer = PredictionLogWriter(repository, Spool(spool_dir))
    replayed, duplicates = writer.replay_pending()

    assert (replayed, duplicates) == (90, 10)
    assert repository.count() == 100
    assert list(spool_dir.glob("*.spool")) == []


@pytest.fixture
def cluster_repository(private_cluster: PrivateCluster) -> Iterator[PredictionRepository]:
    """The log on the private cluster, which a test may stop and start."""
    engine = make_engine(private_cluster.url, connect_args={"connect_timeout": 2})
    upgrade(engine)
    yield PredictionRepository(engine)
    engine.dispose()


def test_a_spool_left_while_the_database_is_down_is_replayed_once_it_is_back(
    private_cluster: PrivateCluster, cluster_repository: PredictionRepository, tmp_path: Path
) -> None:
    repository = cluster_repository
    left = [replace(record, model="crashed") for record in records("left", 100)]
    earlier = Spool(tmp_path / "spool")
    earlier.append(left)
    earlier.seal()  # that process ended: its file is closed, its lock released
    writer = PredictionLogWriter(
        repository, Spool(tmp_path / "spool"), flush_seconds=0.2, retry_seconds=0.5
    )
    private_cluster.stop()
    try:
        with pytest.raises(sqlalchemy.exc.OperationalError):
            writer.replay_pending()  # at start, with the database down
        writer.start()
        private_cluster.start()
        deadline = time.monotonic() + 30
        while writer.stats.replayed < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        writer.stop()
        if not private_cluster.running:
            private_cluster.start()

    assert writer.stats.replayed == 100
    assert repository.count(model="crashed") == 100
    assert list((tmp_path / "spool").glob("*.spool")) == []


def test_database_outage_spools_then_replays_exactly_once(
    private_cluster: PrivateCluster, cluster_repository: PredictionRepository, tmp_path: Path
) -> None:
    repository = cluster_repository
    writer = PredictionLogWriter(
        repository, Spool(tmp_path / "spool"), flush_seconds=0.2, retry_seconds=0.5
    )
    writer.start()
    try:
        writer.submit(records("before", 100))
        assert writer.flush(timeout=20)
        private_cluster.stop()
        for i in range(20):
            writer.submit(records(f"during{i}", 50))
            time.sleep(0.05)
        assert writer.flush(timeout=30)
        assert writer.stats.spooled == 1000
        assert not writer.stats.database_up
        private_cluster.start()
        deadline = time.monotonic() + 30
        while writer.stats.replayed < 1000 and time.monotonic() < deadline:
            time.sleep(0.2)
        writer.submit(records("after", 100))
    finally:
        writer.stop()
        if not private_cluster.running:
            private_cluster.start()

    assert repository.count(model="m") == 1200
    assert writer.stats.replayed == 1000
    assert writer.stats.dropped == 0
    assert list((tmp_path / "spool").glob("*.spool")) == []
