"""A named lock in the operational database, so two retrains of one model never overlap.

One row per held lock (``mlkeel_locks``): acquiring is an INSERT that the primary key lets
only one process win, on SQLite and PostgreSQL alike. A holder renews its expiry from a
background thread while it works; a process that dies stops renewing, so its lock expires
after `ttl` seconds and the next acquirer deletes it. No waiting: the second caller is told
who holds the lock and since when.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from mlkeel.errors import DatabaseError, LockedError
from mlkeel.history import locks

DEFAULT_TTL = 120.0

log = logging.getLogger(__name__)


def holder_name(actor: str) -> str:
    """Who holds a lock, as people read it: ``alice@build-host pid 4242``."""
    return f"{actor}@{socket.gethostname()} pid {os.getpid()}"[:200]


class DatabaseLock:
    """`name` held by `holder` while the ``with`` block runs, renewed every `ttl` / 4 s.

    `what` describes the guarded work in the refusal: "retrain of 'churn' already running".
    """

    def __init__(
        self, engine: Engine, name: str, holder: str, what: str, ttl: float = DEFAULT_TTL
    ) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder
        self.what = what
        self.ttl = ttl
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.lost = False

    def acquire(self) -> None:
        """Take the lock, or raise `LockedError` naming its holder."""
        now = time.time()
        try:
            with self.engine.begin() as connection:
                stale = locks.delete().where(locks.c.name == self.name, locks.c.expires < now)
                if connection.execute(stale).rowcount:
                    log.warning("took over the expired lock %r (its holder stopped)", self.name)
            with self.engine.begin() as connection:
                connection.execute(
                    locks.insert().values(
                        name=self.name, token=self.token, holder=self.holder,
                        acquired=now, expires=now + self.ttl,
                    )
                )  # fmt: skip
        except sa.exc.IntegrityError:
            raise self._refusal() from None
        except sa.exc.SQLAlchemyError as exc:
            raise _database_error(self.engine, exc) from exc

    def renew(self) -> bool:
        """Push the expiry out by `ttl`; False when the lock is no longer ours."""
        query = (
            locks.update()
            .where(locks.c.name == self.name, locks.c.token == self.token)
            .values(expires=time.time() + self.ttl)
        )
        with self.engine.begin() as connection:
            held = bool(connection.execute(query).rowcount)
        if not held:
            self.lost = True
        return held

    def ensure_held(self) -> None:
        """Raise `LockedError` if the lock expired and another process took it."""
        try:
            if self.renew():
                return
        except sa.exc.SQLAlchemyError as exc:
            raise _database_error(self.engine, exc) from exc
        raise LockedError(
            f"lost the lock {self.name!r}: it expired (no renewal for {self.ttl:.0f} s, the "
            "process stalled or lost the database) and may now be held by another process"
        )

    def release(self) -> None:
        query = locks.delete().where(locks.c.name == self.name, locks.c.token == self.token)
        try:
            with self.engine.begin() as connection:
                connection.execute(query)
        except sa.exc.SQLAlchemyError:
            log.exception("could not release lock %r; it expires in %.0f s", self.name, self.ttl)

    def __enter__(self) -> DatabaseLock:
        self.acquire()
        self._heartbeat = threading.Thread(
            target=self._renew_until_stopped, name=f"mlkeel-lock-{self.name}", daemon=True
        )
        self._heartbeat.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
        self.release()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                if not self.renew():
                    log.error("lock %r was lost: it expired and was taken over", self.name)
                    return
            except sa.exc.SQLAlchemyError as exc:
                log.warning("could not renew lock %r (will retry): %s", self.name, exc)

    def _refusal(self) -> LockedError:
        query = sa.select(locks.c.holder, locks.c.acquired, locks.c.expires).where(
            locks.c.name == self.name
        )
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:  # released between our insert and this read: say so plainly
            return LockedError(f"{self.what} was running a moment ago; try again")
        since = datetime.fromtimestamp(row.acquired, UTC).isoformat(timespec="seconds")
        age = time.time() - row.acquired
        return LockedError(
            f"{self.what} already running since {since} ({age:.0f} s ago), started by "
            f"{row.holder}; wait for it to finish. If that process is gone, its lock "
            f"expires by itself within {self.ttl:.0f} s of its last renewal."
        )


def _database_error(engine: Engine, exc: sa.exc.SQLAlchemyError) -> DatabaseError:
    detail = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    hint = "; run 'mlkeel db upgrade'" if "no such table" in detail else ""
    return DatabaseError(f"cannot take a lock in {engine.url!r}: {detail}{hint}")
