"""The leader lock: one holder at a time, released by death, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlkeel.db import make_engine
from mlkeel.errors import ConfigError
from mlkeel.scheduling.leader import AdvisoryLock, FileLock, advisory_key, leader_lock


def test_file_lock_has_one_holder_and_passes_on_release(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "db.leader"), FileLock(tmp_path / "db.leader")

    assert first.try_acquire()
    assert not second.try_acquire()
    assert "pid" in (tmp_path / "db.leader").read_text()
    first.release()
    assert second.try_acquire()
    second.release()


def test_file_lock_is_released_when_its_process_dies(tmp_path: Path) -> None:
    path = tmp_path / "db.leader"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from mlkeel.scheduling.leader import FileLock\n"
         f"lock = FileLock(Path({str(path)!r}))\nassert lock.try_acquire()\n"
         "print('held', flush=True)\n"
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        waiting = FileLock(path)
        assert not waiting.try_acquire()
        holder.kill()
        holder.wait(10)
        assert waiting.try_acquire()
        waiting.release()
    finally:
        holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_sqlite_elects_by_a_file_beside_the_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'mlkeel.db'}")

    lock = leader_lock(engine, "p")

    assert isinstance(lock, FileLock)
    assert lock.path == tmp_path / "mlkeel.db.leader"
    with pytest.raises(ConfigError, match=":memory:"):
        leader_lock(make_engine("sqlite:///:memory:"), "p")


def test_advisory_lock_has_one_holder_and_is_lost_with_its_connection(postgres_url: str) -> None:
    first_engine, second_engine = make_engine(postgres_url), make_engine(postgres_url)
    key = advisory_key("advisory test")
    first, second = AdvisoryLock(first_engine, key), AdvisoryLock(second_engine, key)
    try:
        assert isinstance(leader_lock(first_engine, "x"), AdvisoryLock)
        assert first.try_acquire()
        assert first.still_held()
        assert not second.try_acquire()

        with second_engine.connect() as connection:  # the leader's session dies
            connection.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = "
                        "'advisory' AND objid = (:key & 4294967295)::oid"), {"key": key},
            )  # fmt: skip
        assert not first.still_held()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()
        first_engine.dispose()
        second_engine.dispose()


def test_advisory_keys_are_stable_signed_64_bit() -> None:
    key = advisory_key("mlkeel up demo")

    assert key == advisory_key("mlkeel up demo") != advisory_key("mlkeel up other")
    assert -(2**63) <= key < 2**63
