from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from mlkeel.db import make_engine, upgrade
from mlkeel.prediction_log.record import PredictionRecord
from mlkeel.prediction_log.repository import (
    ROWS_PER_INSERT,
    Label,
    PredictionRepository,
    _statements,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def record(request_id: str, row: int = 0, *, model: str = "m", minutes: int = 0,
           variant: str = "champion") -> PredictionRecord:  # fmt: skip
    return PredictionRecord(
        time=T0 + timedelta(minutes=minutes),
        model=model,
        version=3,
        variant=variant,  # type: ignore[arg-type]
        request_id=request_id,
        row=row,
        features={"x": 1.5, "n": 2, "c": "a", "missing": None},
        prediction=1,
        probabilities={"0": 0.25, "1": 0.75},
        latency_ms=1.25,
    )


@pytest.fixture
def repository(database_url: str) -> Iterator[PredictionRepository]:
    engine = make_engine(database_url)
    yield PredictionRepository(engine)
    engine.dispose()


def test_insert_round_trips_typed_values(repository: PredictionRepository) -> None:

    assert repository.insert([record("a"), record("a", 1)]) == 2

    (newest, oldest) = repository.latest("m")
    assert (oldest["request_id"], oldest["row"], newest["row"]) == ("a", 0, 1)
    assert oldest["features"] == {"x": 1.5, "n": 2, "c": "a", "missing": None}
    assert oldest["probabilities"] == {"0": 0.25, "1": 0.75}
    assert oldest["prediction"] == 1
    assert oldest["ts"] == T0.timestamp()
    assert (oldest["version"], oldest["variant"]) == (3, "champion")


def test_insert_is_idempotent_on_request_row_and_variant(repository: PredictionRepository) -> None:
    repository.insert([record("a"), record("b")])

    again = repository.insert(
        [record("a"), record("b"), record("c"), record("a", variant="shadow")]
    )

    assert again == 2
    assert repository.count() == 4


def test_a_batch_of_many_rows_stores_each_once_and_counts_only_new_ones(
    repository: PredictionRepository,
) -> None:
    many = 2 * ROWS_PER_INSERT + 20  # two full multi-row statements and a shorter one
    first = [record(f"r{i}") for i in range(many)]

    assert repository.insert(first) == many
    assert repository.insert([*first[:-3], *(record(f"n{i}") for i in range(13))]) == 13
    assert repository.count() == many + 13
    assert {row["request_id"] for row in repository.window("m")} == {
        *(f"r{i}" for i in range(many)),
        *(f"n{i}" for i in range(13)),
    }


@given(st.integers(0, 5 * ROWS_PER_INSERT))
def test_any_batch_is_inserted_with_statements_of_a_few_sizes(rows: int) -> None:
    # sqlite3 keeps every distinct statement it compiled: one per batch size grew RSS by MBs.
    plan = _statements(rows)

    assert sum(size * count for size, count in plan) == rows
    assert {size for size, _ in plan} <= {ROWS_PER_INSERT, *(1 << bit for bit in range(9))}
    assert len(plan) <= 10


def test_labels_attach_to_served_rows_and_unknown_ids_come_back(
    repository: PredictionRepository,
) -> None:
    repository.insert([record("a"), record("b", 0), record("b", 1), record("z", model="other")])

    unknown = repository.record_labels(
        "m", [Label("a", 1), Label("b", 0, row=1), Label("nope", 1), Label("z", 0)]
    )
    repository.record_labels("m", [Label("a", 0)])  # a corrected label replaces the first

    assert unknown == [Label("nope", 1), Label("z", 0)]
    labelled = {(r["request_id"], r["row"]): r["label"] for r in repository.window("m")}
    assert labelled == {("a", 0): 0, ("b", 0): None, ("b", 1): 0}


def test_window_selects_model_and_half_open_time_range(repository: PredictionRepository) -> None:
    repository.insert([record(f"r{i}", minutes=i) for i in range(10)] + [record("o", model="x")])

    since = (T0 + timedelta(minutes=3)).timestamp()
    until = (T0 + timedelta(minutes=6)).timestamp()
    rows = list(repository.window("m", since, until))

    assert [row["request_id"] for row in rows] == ["r3", "r4", "r5"]


def test_window_reads_through_the_time_index_not_a_table_scan(
    repository: PredictionRepository,
) -> None:
    engine = repository.engine
    repository.insert([record(f"r{i}", minutes=i) for i in range(10)])
    seen: list[tuple[str, object]] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda *args: seen.append((args[2], args[3])))  # fmt: skip
    list(repository.window("m", T0.timestamp(), (T0 + timedelta(hours=1)).timestamp()))
    ((statement, parameters),) = seen

    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        if engine.dialect.name == "postgresql":
            cursor.execute("SET enable_seqscan = off")  # a 10-row table: force the choice
            cursor.execute("EXPLAIN " + statement, parameters)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        plan = "\n".join(str(line) for line in cursor.fetchall())

    assert "ix_mlkeel_predictions_model_ts" in plan, plan


def test_postgresql_time_index_is_brin(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    with engine.connect() as connection:
        definition = connection.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_mlkeel_predictions_model_ts'"
        ).scalar_one()
    engine.dispose()

    assert "USING brin (model, ts)" in definition, definition


def test_prune_deletes_old_predictions_and_their_labels(repository: PredictionRepository) -> None:
    repository.insert([record("old"), record("new", minutes=60)])
    repository.record_labels("m", [Label("old", 1), Label("new", 0)])

    deleted = repository.prune((T0 + timedelta(minutes=30)).timestamp())

    assert deleted == 1
    assert [(r["request_id"], r["label"]) for r in repository.window()] == [("new", 0)]
