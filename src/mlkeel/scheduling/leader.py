"""Who runs the jobs: one leader per database, elected by a lock the database (or the OS)
releases by itself when the leader dies, so a standby takes over without a timeout.

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) held on a connection of its
  own. The server drops it when that connection closes (process killed, network gone); the
  leader checks the connection on every poll and stands down if it is gone.
- SQLite: an exclusive ``flock`` on a file beside the database (``mlkeel.db.leader``). SQLite
  serves one machine, so an OS file lock is exact; the kernel releases it when the process dies.

Every ``mlkeel up`` process serves; only the one holding the lock runs jobs.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlkeel.errors import ConfigError

log = logging.getLogger(__name__)


class LeaderLock(Protocol):
    """A non-blocking, process-lifetime lock."""

    @property
    def description(self) -> str: ...

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits."""
        ...

    def still_held(self) -> bool:
        """False once the lock may have been lost (the connection holding it is gone)."""
        ...

    def release(self) -> None: ...


def runner_name() -> str:
    """This process, as job-run records name it: ``host pid 4242``."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def leader_lock(engine: Engine, name: str) -> LeaderLock:
    """The lock that elects `name`'s leader on `engine`'s database."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return AdvisoryLock(engine, advisory_key(name))
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            raise ConfigError(
                "mlkeel up needs a database that outlives the process to record job runs; "
                "set database_url to a SQLite file or a PostgreSQL URL, not :memory:"
            )
        return FileLock(Path(f"{database}.leader"))
    raise ConfigError(
        f"no leader election for {url.get_backend_name()!r} databases; use SQLite (one "
        "machine) or PostgreSQL (several)"
    )


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (advisory locks are keyed by bigint)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a dedicated AUTOCOMMIT connection."""

    def __init__(self, engine: Engine, key: int) -> None:
        self.engine = engine
        self.key = key
        self._connection: Connection | None = None

    @property
    def description(self) -> str:
        return f"PostgreSQL advisory lock {self.key}"

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return self.still_held()
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            taken = connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar_one()
        except Exception:
            connection.close()
            raise
        if not taken:
            connection.close()  # a standby holds no connection between attempts
            return False
        self._connection = connection
        return True

    def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError as exc:
            log.error("lost the connection holding the leader lock: %s", exc)
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except sa.exc.SQLAlchemyError:
            log.warning("could not unlock the leader lock; closing its connection releases it")
        self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()  # never back to the pool: the session held the lock
            finally:
                connection.close()


class FileLock:
    """An exclusive ``flock`` on `path`; the file says who holds it, for people."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    @property
    def description(self) -> str:
        return f"file lock {self.path}"

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{runner_name()}\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
