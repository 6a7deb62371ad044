"""The prediction log of one server process: its writer, its repository, its metrics.

The server opens it at start (replaying any spool a crashed predecessor left, then starting
the writer thread) and closes it at shutdown (draining every queued record).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from mlkeel.db import VERSION_TABLE, make_engine, upgrade
from mlkeel.errors import DatabaseError
from mlkeel.monitoring.summaries import SummaryFolder, SummaryKey, hour_of
from mlkeel.monitoring.summary_store import SummaryStore
from mlkeel.prediction_log.record import FeatureColumns, LoggedRequest, PredictionRecord
from mlkeel.prediction_log.repository import Label, PredictionRepository
from mlkeel.prediction_log.spool import Spool
from mlkeel.prediction_log.writer import PredictionLogWriter, WriterStats
from mlkeel.settings import Settings

if TYPE_CHECKING:
    from mlkeel.monitoring.profile import BaselineProfile
    from mlkeel.registry import Registry

log = logging.getLogger(__name__)


class PredictionLog:
    """Where a server's predictions go, and where their labels arrive."""

    def __init__(self, repository: PredictionRepository, writer: PredictionLogWriter,
                 strict: bool = False) -> None:  # fmt: skip
        self.repository = repository
        self.writer = writer
        self.strict = strict

    def submit(
        self, records: Sequence[PredictionRecord], columns: FeatureColumns | None = None
    ) -> None:
        self.writer.submit(records, columns)

    def submit_durable(
        self, records: Sequence[PredictionRecord], columns: FeatureColumns | None = None
    ) -> Future[None]:
        return self.writer.submit_durable(records, columns)

    def count_error(self, model: str, version: int, variant: str) -> None:
        """A request that failed after its model was chosen: counted in the summaries."""
        self.writer.count_error(model, version, variant)

    def open(self) -> None:
        """Replay what an earlier process left in the spool, then start writing."""
        try:
            replayed, _ = self.writer.replay_pending()
            if replayed:
                log.warning("replayed %d predictions spooled by an earlier process", replayed)
        except Exception as exc:  # the database is down: the spool waits for it
            log.warning("spool not replayed yet (%s); will retry", exc.__class__.__name__)
        self.writer.start()

    def close(self) -> None:
        self.writer.stop()
        self.repository.engine.dispose()

    def label(self, model: str, items: Sequence[Label]) -> list[Label]:
        """Store labels; return the items whose request was never served by `model`."""
        unknown = self.repository.record_labels(model, items)
        if unknown and self.writer.stats.queue_depth:
            # The prediction may still be queued: flush, then try the unknown ones again.
            self.writer.flush(timeout=10)
            unknown = self.repository.record_labels(model, unknown)
        return unknown

    def collector(self) -> Collector:
        return WriterCollector(self.writer.stats, self.writer.spool)


def open_prediction_log(settings: Settings, registry: Registry | None = None) -> PredictionLog:
    """Build the prediction log from settings: SQLite is migrated here; PostgreSQL must be
    migrated by ``mlkeel db upgrade``, but may be down (the writer spools until it is back).
    The writer folds every batch into hourly summaries against each version's baseline
    (read from `registry`; without one, summaries keep moments and categories, no bins)."""
    config = settings.prediction_log
    engine = make_engine(settings.resolved_database_url)
    if engine.dialect.name == "sqlite":
        upgrade(engine)
    else:
        _check_schema(engine)
    writer = PredictionLogWriter(
        PredictionRepository(engine),
        Spool(settings.path(config.spool_dir)),
        batch_size=config.batch_size,
        flush_seconds=config.flush_seconds,
        queue_limit=config.queue_limit,
        folder=SummaryFolding(
            SummaryFolder(_no_baseline if registry is None else BaselineLookup(registry))
        ),  # fmt: skip
        summaries=SummaryStore(engine),
        summary_seconds=config.summary_seconds,
    )
    return PredictionLog(writer.repository, writer, strict=config.durability == "strict")


def _check_schema(engine: Engine) -> None:
    try:
        with engine.connect() as connection:
            present = sa.inspect(connection).has_table(VERSION_TABLE)
    except sa.exc.OperationalError as exc:
        log.warning("prediction log database unreachable at start (%s); spooling until it is "
                    "back", str(exc).splitlines()[0])  # fmt: skip
        return
    if not present:
        raise DatabaseError(
            f"the prediction log tables do not exist in {engine.url!r}; "
            "create them with 'mlkeel db upgrade' (once, before starting servers)"
        )


class BaselineLookup:
    """Each version's baseline profile, read from the registry once (None when it cannot be)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __call__(self, model: str, version: int) -> BaselineProfile | None:
        from mlkeel.monitoring.profile import BaselineProfile

        try:
            return BaselineProfile.from_dict(self.registry.profile(model, version))
        except Exception as exc:
            log.warning("no baseline for %s v%d (%s): its summaries get no bins", model,
                        version, exc.__class__.__name__)  # fmt: skip
            return None


def _no_baseline(model: str, version: int) -> BaselineProfile | None:
    return None


class SummaryFolding:
    """The writer's view of a SummaryFolder: payloads to save, and back when saving failed."""

    KEEP_HOURS = 3  # live hours kept in memory; older ones are saved and forgotten

    def __init__(self, folder: SummaryFolder) -> None:
        self.folder = folder
        self._unsaved: dict[SummaryKey, dict[str, Any]] = {}

    def fold(self, requests: Sequence[LoggedRequest], records: Sequence[PredictionRecord]) -> None:
        self.folder.fold_requests(requests, records)

    def count_error(self, model: str, version: int, variant: str, when: float) -> None:
        self.folder.count_error(model, version, variant, when)

    def take_payloads(self) -> dict[SummaryKey, dict[str, Any]]:
        payloads = {**self._unsaved}
        payloads.update({key: s.to_payload() for key, s in self.folder.take_dirty().items()})
        self._unsaved = {}
        self.folder.evict(hour_of(time.time()) - self.KEEP_HOURS * 3600)
        return payloads

    def restore_payloads(self, payloads: dict[SummaryKey, dict[str, Any]]) -> None:
        self._unsaved = {**payloads, **self._unsaved}


class WriterCollector(Collector):
    """The writer's totals as Prometheus metrics."""

    def __init__(self, stats: WriterStats, spool: Spool) -> None:
        self.stats = stats
        self.spool = spool

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        s = self.stats
        for name, value, text in (
            ("submitted", s.submitted, "Prediction records handed to the log."),
            ("written", s.written, "Records inserted into the database."),
            ("spooled", s.spooled, "Records written to the local spool file."),
            ("replayed", s.replayed, "Spooled records inserted once the database was back."),
            ("duplicates", s.duplicates, "Records already stored (replays, repeated ids)."),
            ("dropped", s.dropped, "Records lost: queue overflow or unwritable spool."),
            ("write_failures", s.failures, "Failed database writes (each then spooled)."),
        ):
            yield CounterMetricFamily(f"mlkeel_prediction_log_{name}", text, value=value)
        yield GaugeMetricFamily(
            "mlkeel_prediction_log_queue_depth", "Records waiting in memory.", value=s.queue_depth
        )
        yield GaugeMetricFamily(
            "mlkeel_prediction_log_database_up", "1 while inserts succeed.", value=s.database_up
        )
        yield GaugeMetricFamily(
            "mlkeel_prediction_log_spool_bytes", "Bytes waiting in spool files.",
            value=self.spool.pending(),
        )  # fmt: skip
