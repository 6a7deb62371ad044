"""Alerts kept over time: deduplicated, quiet during a cooldown, resolved when they clear.

One open alert per ``(model, rule, subject)``. For each monitoring run :meth:`AlertStore.process`

- opens an alert for a condition that has none, and notifies;
- updates a still-firing one (last seen, message, evidence) and notifies again only once the
  cooldown has passed since its last delivered notification;
- resolves an open alert whose rule was evaluated and did not fire for its subject, and
  notifies that it resolved. A rule with no verdict (too few rows) resolves nothing.

State changes commit in one transaction, taken under a per-model lock so two overlapping runs
cannot open the same alert twice; notifications go out after the commit (no transaction is held
across the network), and ``notified_at`` records only deliveries that reached at least one sink,
so a notification every sink failed is retried by the next run.
"""

from __future__ import annotations

import builtins
import dataclasses
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlkeel.errors import DatabaseError
from mlkeel.monitoring.alert_sinks import Sink
from mlkeel.monitoring.alerts import Alert, AlertCandidate
from mlkeel.monitoring.tables import alerts

OPEN = "open"
RESOLVED = "resolved"


@dataclasses.dataclass(frozen=True)
class Delivery:
    """A notification that did not arrive."""

    sink: str
    alert_id: int


@dataclasses.dataclass(frozen=True)
class AlertOutcome:
    """What one :meth:`AlertStore.process` call changed and sent."""

    opened: list[Alert] = dataclasses.field(default_factory=list)
    renotified: list[Alert] = dataclasses.field(default_factory=list)  # still firing, cooldown over
    ongoing: list[Alert] = dataclasses.field(
        default_factory=list
    )  # still firing, within the cooldown
    resolved: list[Alert] = dataclasses.field(default_factory=list)
    failed: list[Delivery] = dataclasses.field(default_factory=list)
    # A newly opened alert came from a rule that rules.retrain_on asks to retrain on. Only new
    # alerts count, so a condition that persists does not retrain again on every run.
    retrain: bool = False

    @property
    def notified(self) -> list[Alert]:
        return [*self.opened, *self.renotified, *self.resolved]

    @property
    def firing(self) -> list[Alert]:
        return [*self.opened, *self.renotified, *self.ongoing]


class AlertStore:
    """The ``mlkeel_alerts`` table; one code path for SQLite and PostgreSQL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def process(
        self,
        model: str,
        candidates: Sequence[AlertCandidate],
        evaluated_rules: Iterable[str],
        sinks: Sequence[Sink],
        cooldown: timedelta,
        now: datetime | None = None,
    ) -> AlertOutcome:
        """Record one run's `candidates` for `model`, notify `sinks`; see the module doc."""
        moment = _epoch(now)
        firing: dict[tuple[str, str], AlertCandidate] = {c.key: c for c in candidates}
        evaluated = set(evaluated_rules)
        try:
            with self.engine.begin() as connection:
                _lock(connection, model)
                known = _open_alerts(connection, model)
                opened, renotified, ongoing = _record_firing(
                    connection, model, firing, known, moment, cooldown.total_seconds()
                )
                cleared = [
                    a for key, a in known.items() if key not in firing and a.rule in evaluated
                ]
                resolved = _resolve(connection, cleared, moment)
        except sa.exc.SQLAlchemyError as exc:
            raise _database_error(self.engine, f"record alerts of {model} in", exc) from exc
        failed, delivered = self._notify([*opened, *renotified, *resolved], sinks, moment)
        return AlertOutcome(
            opened=[_stamped(a, moment, delivered) for a in opened],
            renotified=[_stamped(a, moment, delivered) for a in renotified],
            ongoing=ongoing,
            resolved=[_stamped(a, moment, delivered) for a in resolved],
            failed=failed,
            retrain=any(firing[a.rule, a.subject].retrain for a in opened),
        )

    def _notify(
        self, due: builtins.list[Alert], sinks: Sequence[Sink], moment: float
    ) -> tuple[builtins.list[Delivery], set[int]]:
        """Send each alert to every sink; mark those that reached at least one as notified.
        A partial failure is reported but counts as notified (the others did hear of it)."""
        failed: builtins.list[Delivery] = []
        reached: set[int] = set()
        for alert in due:
            for sink in sinks:
                if sink.send(alert):
                    reached.add(alert.id)
                else:
                    failed.append(Delivery(sink.name, alert.id))
        if reached:
            update = sa.update(alerts).where(alerts.c.id.in_(reached)).values(notified_at=moment)
            try:
                with self.engine.begin() as connection:
                    connection.execute(update)
            except sa.exc.SQLAlchemyError as exc:
                raise _database_error(self.engine, "mark notified alerts in", exc) from exc
        return failed, reached

    def list(
        self, model: str | None = None, open_only: bool = False, limit: int = 100
    ) -> builtins.list[Alert]:
        """Alerts, newest first; only `model`'s, only open ones, at most `limit`."""
        query = sa.select(alerts).order_by(alerts.c.opened_at.desc(), alerts.c.id.desc())
        if model is not None:
            query = query.where(alerts.c.model == model)
        if open_only:
            query = query.where(alerts.c.status == OPEN)
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(query.limit(limit)).mappings().all()
        except sa.exc.SQLAlchemyError as exc:
            raise _database_error(self.engine, "list alerts in", exc) from exc
        return [_alert(row) for row in rows]


def _epoch(now: datetime | None) -> float:
    if now is None:
        return datetime.now(UTC).timestamp()
    return (now if now.tzinfo else now.replace(tzinfo=UTC)).timestamp()


def _lock(connection: Connection, model: str) -> None:
    """Serialise runs for one model until the transaction ends."""
    if connection.dialect.name == "postgresql":
        key = zlib.crc32(f"mlkeel_alerts:{model}".encode())
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
    else:
        # A write, even one that matches nothing, takes SQLite's write lock now; reading
        # first and writing later could fail with SQLITE_BUSY under a concurrent writer.
        connection.execute(sa.update(alerts).where(sa.false()).values(status=alerts.c.status))


def _open_alerts(connection: Connection, model: str) -> dict[tuple[str, str], Alert]:
    query = (
        sa.select(alerts)
        .where(alerts.c.model == model, alerts.c.status == OPEN)
        .order_by(alerts.c.id)
    )
    known: dict[tuple[str, str], Alert] = {}
    for row in connection.execute(query).mappings():
        alert = _alert(row)
        known.setdefault((alert.rule, alert.subject), alert)
    return known


def _record_firing(
    connection: Connection,
    model: str,
    firing: Mapping[tuple[str, str], AlertCandidate],
    known: Mapping[tuple[str, str], Alert],
    moment: float,
    cooldown_seconds: float,
) -> tuple[list[Alert], list[Alert], list[Alert]]:
    opened: list[Alert] = []
    renotified: list[Alert] = []
    ongoing: list[Alert] = []
    for key, candidate in firing.items():
        existing = known.get(key)
        if existing is None:
            opened.append(_insert(connection, model, candidate, moment))
            continue
        connection.execute(
            sa.update(alerts)
            .where(alerts.c.id == existing.id)
            .values(last_seen_at=moment, message=candidate.message, evidence=candidate.evidence)
        )
        alert = _replace(
            existing, last_seen_at=moment, message=candidate.message, evidence=candidate.evidence
        )
        last = existing.notified_at
        due = last is None or moment - last >= cooldown_seconds
        (renotified if due else ongoing).append(alert)
    return opened, renotified, ongoing


def _insert(connection: Connection, model: str, candidate: AlertCandidate, moment: float) -> Alert:
    values: dict[str, Any] = {
        "model": model,
        "rule": candidate.rule,
        "subject": candidate.subject,
        "status": OPEN,
        "message": candidate.message,
        "evidence": candidate.evidence,
        "opened_at": moment,
        "last_seen_at": moment,
        "notified_at": None,
        "resolved_at": None,
    }
    result = connection.execute(sa.insert(alerts).values(values))
    (alert_id,) = result.inserted_primary_key or (None,)
    return _alert({"id": alert_id, **values})


def _resolve(connection: Connection, cleared: list[Alert], moment: float) -> list[Alert]:
    if cleared:
        connection.execute(
            sa.update(alerts)
            .where(alerts.c.id.in_([a.id for a in cleared]))
            .values(status=RESOLVED, resolved_at=moment)
        )
    return [_replace(a, status=RESOLVED, resolved_at=moment) for a in cleared]


def _replace(alert: Alert, **changes: Any) -> Alert:
    return dataclasses.replace(alert, **changes)


def _stamped(alert: Alert, moment: float, delivered: set[int]) -> Alert:
    return _replace(alert, notified_at=moment) if alert.id in delivered else alert


def _alert(row: Mapping[Any, Any]) -> Alert:
    return Alert(
        id=int(row["id"]),
        model=row["model"],
        rule=row["rule"],
        subject=row["subject"],
        status=row["status"],
        message=row["message"],
        evidence=dict(row["evidence"] or {}),
        opened_at=float(row["opened_at"]),
        last_seen_at=float(row["last_seen_at"]),
        notified_at=None if row["notified_at"] is None else float(row["notified_at"]),
        resolved_at=None if row["resolved_at"] is None else float(row["resolved_at"]),
    )


def _database_error(engine: Engine, doing: str, exc: Exception) -> DatabaseError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return DatabaseError(
        f"cannot {doing} {engine.url!r}: {exc.__class__.__name__}: {first}; "
        "is the database reachable and migrated ('mlkeel db upgrade')?"
    )
