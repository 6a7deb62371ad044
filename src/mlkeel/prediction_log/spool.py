"""The spool: an append-only local file that holds records while the database cannot.

One file per writer process, JSON lines, flushed and fsynced per batch, held under an
exclusive ``flock`` while its writer lives. Replay takes every file no live writer holds
(including a crashed process's), inserts its records idempotently, then deletes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from mlkeel.prediction_log.record import PredictionRecord

log = logging.getLogger(__name__)
SUFFIX = ".spool"


def encode(record: PredictionRecord) -> bytes:
    return orjson.dumps(
        {
            "t": record.time.timestamp(),
            "m": record.model,
            "v": record.version,
            "va": record.variant,
            "id": record.request_id,
            "r": record.row,
            "f": record.features,
            "p": record.prediction,
            "pr": record.probabilities,
            "l": record.latency_ms,
            "rv": record.record_version,
        },
        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE,
    )


def decode(line: bytes) -> PredictionRecord:
    data: dict[str, Any] = orjson.loads(line)
    return PredictionRecord(
        time=datetime.fromtimestamp(data["t"], UTC),
        model=data["m"],
        version=data["v"],
        variant=data["va"],
        request_id=data["id"],
        row=data["r"],
        features=data["f"],
        prediction=data["p"],
        probabilities=data["pr"],
        latency_ms=data["l"],
        record_version=data["rv"],
    )


class Spool:
    """Append-only overflow files under `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self.records = 0  # in the current file

    def append(self, records: Sequence[PredictionRecord]) -> None:
        """Write `records` durably (flush + fsync) before returning."""
        handle = self._open()
        descriptor = handle.fileno()
        start = os.lseek(descriptor, 0, os.SEEK_END)
        data = memoryview(b"".join(encode(record) for record in records))
        try:
            while data:  # unbuffered: a full disk shows as a short write or an error, here
                written = os.write(descriptor, data)
                data = data[written:]
            os.fsync(descriptor)
            self.records += len(records)
        except OSError:
            # A full disk leaves half a batch: cut it off, so the file holds whole records.
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, start)
            raise

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            self._path = self.directory / f"{stamp}-{os.getpid()}{SUFFIX}"
            self._file = self._path.open("ab", buffering=0)
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return self._file

    def seal(self) -> None:
        """Close the current file so replay can take it; the next append starts a new one."""
        if self._file is not None:
            self._file.close()
            self._file = self._path = None
            self.records = 0

    @property
    def active(self) -> bool:
        return self._file is not None

    def replay(
        self,
        insert: Callable[[list[PredictionRecord]], int],
        batch: int = 1000,
        pause: Callable[[], bool] | None = None,
    ) -> tuple[int, int]:
        """Insert every record of every file no live writer holds; return (replayed, already
        stored). A file is deleted only after all its records are in the database. Before
        each file, `pause()` true stops here: the rest waits for the next replay."""
        replayed = duplicates = 0
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self._path:
                continue
            if pause is not None and pause():
                break
            for chunk in _locked_chunks(path, batch):
                inserted = insert(chunk)
                replayed += inserted
                duplicates += len(chunk) - inserted
        return replayed, duplicates

    def pending(self) -> int:
        """Bytes waiting in spool files (the active one included)."""
        if not self.directory.is_dir():
            return 0
        return sum(path.stat().st_size for path in self.directory.glob(f"*{SUFFIX}"))


def _locked_chunks(path: Path, batch: int) -> Iterator[list[PredictionRecord]]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return  # another process replayed and removed it
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a live writer (or another replayer) holds it
        chunk: list[PredictionRecord] = []
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                # The process died mid-write: this record was never acknowledged as durable.
                log.warning("spool %s: dropping a torn last line (%d bytes)", path, len(line))
                break
            try:
                chunk.append(decode(line))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                log.error("spool %s line %d is corrupt; kept in %s.bad", path, number, path)
                _keep_bad(path, line)
                continue
            if len(chunk) >= batch:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        path.unlink()


def _keep_bad(path: Path, line: bytes) -> None:
    with path.with_suffix(".bad").open("ab") as bad:
        bad.write(line)
