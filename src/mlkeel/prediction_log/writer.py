"""The log writer: takes records off the request path and stores them, losing nothing.

``submit`` appends to an in-memory queue (O(1), never raises). One thread drains it in
batches of up to ``batch_size`` at least every ``flush_seconds``: into the database while it
answers and keeps up, else into the spool, which is replayed once the database is back and
the queue has drained. The database is too slow when more records wait than it inserts in
``SPILL_SECONDS`` at its recent rate (or than half the queue's limit): the next batches go to
the spool (appending is several times faster than inserting), so a burst the database absorbs
stays in memory while a lasting overload neither grows the queue nor reaches its limit. Only
when the queue itself overflows (the thread cannot even reach the disk) are records dropped,
each one counted and logged.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from mlkeel.prediction_log.record import FeatureColumns, LoggedRequest, PredictionRecord
from mlkeel.prediction_log.repository import PredictionRepository
from mlkeel.prediction_log.spool import Spool

log = logging.getLogger(__name__)
SPILL_SECONDS = 1.0  # a backlog the database needs longer than this to insert is spooled


@dataclass
class WriterStats:
    """Running totals, exported as Prometheus metrics by the server."""

    submitted: int = 0
    written: int = 0
    duplicates: int = 0
    spooled: int = 0
    replayed: int = 0
    dropped: int = 0
    failures: int = 0
    fold_failures: int = 0
    queue_depth: int = 0
    database_up: bool = True


class Folder(Protocol):
    """Folds written records into per-hour summaries (monitoring's SummaryFolder)."""

    def fold(
        self, requests: Sequence[LoggedRequest], records: Sequence[PredictionRecord]
    ) -> None: ...

    def count_error(self, model: str, version: int, variant: str, when: float) -> None: ...

    def take_payloads(self) -> dict[Any, dict[str, Any]]: ...

    def restore_payloads(self, payloads: dict[Any, dict[str, Any]]) -> None: ...


class SummarySaver(Protocol):
    def save(self, writer: str, payloads: Mapping[Any, dict[str, Any]]) -> None: ...


@dataclass(frozen=True, slots=True)
class _Item(LoggedRequest):
    done: Future[None] | None = None


class PredictionLogWriter:
    """Batches records into the database, or the spool while the database cannot take them."""

    def __init__(
        self,
        repository: PredictionRepository,
        spool: Spool,
        *,
        batch_size: int = 1000,
        flush_seconds: float = 1.0,
        queue_limit: int = 200_000,
        retry_seconds: float = 2.0,
        folder: Folder | None = None,
        summaries: SummarySaver | None = None,
        summary_seconds: float = 10.0,
    ) -> None:
        self.repository = repository
        self.spool = spool
        self.batch_size = batch_size
        self.flush_seconds = flush_seconds
        self.queue_limit = queue_limit
        self.retry_seconds = retry_seconds
        self.stats = WriterStats()
        self._queue: deque[_Item] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._counting = threading.Lock()  # submit runs on many threads, the writer on one
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0
        self.folder = folder
        self.summaries = summaries
        self.summary_seconds = summary_seconds
        self.writer_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._folding = threading.Lock()  # the writer folds; request threads count errors
        self._saved_at = time.monotonic()
        self._insert_rate = float("inf")  # records/s of recent inserts (unknown: no spilling)
        self._inserts = 0
        self._spilling = False
        self._unreplayed = False  # this process spooled records not replayed yet

    # ---- the request side ----------------------------------------------------------------
    def submit(
        self, records: Sequence[PredictionRecord], columns: FeatureColumns | None = None
    ) -> None:
        """Queue `records` (with their request's `columns`, if known) for writing. O(1); never
        raises, never blocks."""
        self._enqueue(_Item(records, columns))

    def submit_durable(
        self, records: Sequence[PredictionRecord], columns: FeatureColumns | None = None
    ) -> Future[None]:
        """Queue `records`; the future completes once they are in the database or spool."""
        done: Future[None] = Future()
        self._enqueue(_Item(records, columns, done))
        self._wake.set()
        return done

    def count_error(self, model: str, version: int, variant: str) -> None:
        """Count one failed request in this hour's summary. Cheap; never raises."""
        if self.folder is None:
            return
        try:
            with self._folding:
                self.folder.count_error(model, version, variant, time.time())
        except Exception:
            log.exception("could not count a failed request of %s", model)

    def _enqueue(self, item: _Item) -> None:
        count = len(item.records)
        with self._counting:
            full = self.stats.queue_depth + count > self.queue_limit
            if full:
                self.stats.dropped += count
            else:
                self.stats.submitted += count
                self.stats.queue_depth += count
                self._queue.append(item)
        if full:
            log.error("prediction log queue full (%d records): dropped %d", self.queue_limit, count)
            if item.done is not None:
                item.done.set_exception(OverflowError("prediction log queue is full"))
            return
        if self.stats.queue_depth >= self.batch_size:
            self._wake.set()

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="mlkeel-log-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Drain everything queued (to the database or the spool), then stop."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("prediction log writer did not drain within %.0f s", timeout)
        self.spool.seal()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is stored; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.stats.queue_depth > 0:
                self._wake.set()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
        return True

    # ---- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            stopping = self._stopping.is_set()
            while self._queue:
                self._write(self._take())
            self._maybe_replay()
            if stopping or time.monotonic() - self._saved_at >= self.summary_seconds:
                self._save_summaries()
            with self._idle:
                self._idle.notify_all()
            if stopping:
                return

    def _take(self) -> list[_Item]:
        items, count = [], 0
        while self._queue and count < self.batch_size:
            item = self._queue.popleft()
            items.append(item)
            count += len(item.records)
        return items

    def _write(self, items: list[_Item]) -> None:
        records = [record for item in items for record in item.records]
        self._fold(items, records)
        try:
            if self.stats.database_up and not self._behind(len(records)):
                self._insert(records)
            else:
                self._to_spool(records)
            for item in items:
                if item.done is not None:
                    item.done.set_result(None)
        except Exception as exc:  # the spool itself failed: nothing left to put them in
            with self._counting:
                self.stats.dropped += len(records)
            log.exception("prediction log: %d records lost, spool unwritable", len(records))
            for item in items:
                if item.done is not None:
                    item.done.set_exception(exc)
        finally:
            with self._counting:
                self.stats.queue_depth -= len(records)

    def _insert(self, records: list[PredictionRecord]) -> None:
        started = time.perf_counter()
        try:
            inserted = self.repository.insert(records)
        except Exception as exc:
            self.stats.failures += 1
            self.stats.database_up = False
            self._retry_at = time.monotonic() + self.retry_seconds
            log.warning(
                "prediction log database unavailable (%s: %s); spooling to %s",
                exc.__class__.__name__, str(exc).splitlines()[0] if str(exc) else "",
                self.spool.directory,
            )  # fmt: skip
            self._to_spool(records)
            return
        self.stats.written += inserted
        self.stats.duplicates += len(records) - inserted
        self._measure(len(records), time.perf_counter() - started)

    def _measure(self, count: int, seconds: float) -> None:
        """Follow the insert rate (an EWMA); the first insert, which connects and warms the
        database's caches, is no sample."""
        self._inserts += 1
        if self._inserts == 1:
            return
        rate = count / max(seconds, 1e-6)
        previous = self._insert_rate
        self._insert_rate = rate if previous == float("inf") else 0.7 * previous + 0.3 * rate

    @property
    def spill_depth(self) -> int:
        """Records waiting past which batches go to the spool: what the database inserts in
        SPILL_SECONDS, within [2 batches, half the queue's limit]."""
        depth = min(self._insert_rate * SPILL_SECONDS, self.queue_limit / 2)
        return int(max(depth, 2 * self.batch_size))

    def _behind(self, taken: int) -> bool:
        """Whether more records still wait than the database can take soon."""
        behind = self.stats.queue_depth - taken > self.spill_depth
        if behind != self._spilling:
            self._spilling = behind
            if behind:
                log.warning("prediction log database too slow (%d records waiting); spooling "
                            "to %s until the queue drains", self.stats.queue_depth,
                            self.spool.directory)  # fmt: skip
            else:
                log.info("prediction log caught up; spooled records are replayed when idle")
        return behind

    def _to_spool(self, records: list[PredictionRecord]) -> None:
        self.spool.append(records)
        self.stats.spooled += len(records)
        self._unreplayed = True
        if self.spool.records >= self.spill_depth:
            self.spool.seal()  # files of bounded size: replay can pause between them

    def _maybe_replay(self) -> None:
        if self.stats.database_up and not self._unreplayed and self._retry_at == 0.0:
            return
        if time.monotonic() < self._retry_at:
            return
        self.spool.seal()
        paused = False

        def pause() -> bool:  # new records wait: the replay yields to them between files
            nonlocal paused
            paused = self.stats.queue_depth > self.batch_size
            return paused

        try:
            replayed, duplicates = self.spool.replay(
                self.repository.insert, self.batch_size, pause=pause
            )
        except Exception as exc:
            self.stats.failures += 1
            self.stats.database_up = False
            self._retry_at = time.monotonic() + self.retry_seconds
            log.info("prediction log database still unavailable: %s", exc.__class__.__name__)
            return
        self.stats.replayed += replayed
        self.stats.duplicates += duplicates
        self.stats.database_up = True
        self._retry_at = 0.0
        self._unreplayed = paused
        if replayed or duplicates:
            log.warning("prediction log: replayed %d spooled records", replayed)

    def _fold(self, items: list[_Item], records: list[PredictionRecord]) -> None:
        # Folded once, when first accepted (stored or spooled): a replay does not fold again.
        if self.folder is None:
            return
        try:
            with self._folding:
                self.folder.fold(items, records)
        except Exception:
            self.stats.fold_failures += 1
            log.exception("could not fold %d records into the hourly summaries", len(records))

    def _save_summaries(self) -> None:
        self._saved_at = time.monotonic()
        if self.folder is None or self.summaries is None:
            return
        with self._folding:
            payloads = self.folder.take_payloads()
        if not payloads:
            return
        try:
            self.summaries.save(self.writer_id, payloads)
        except Exception as exc:
            with self._folding:
                self.folder.restore_payloads(payloads)  # saved with the next attempt
            log.info("hourly summaries not saved yet (%s)", exc.__class__.__name__)

    def replay_pending(self) -> tuple[int, int]:
        """Replay spool files left by an earlier process (after a crash); call before start.
        If it raises (the database is down), the writer thread retries once started."""
        self._unreplayed = True
        replayed, duplicates = self.spool.replay(self.repository.insert, self.batch_size)
        self._unreplayed = False
        self.stats.replayed += replayed
        self.stats.duplicates += duplicates
        return replayed, duplicates
