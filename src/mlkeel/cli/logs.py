"""``mlkeel logs``, ``mlkeel feedback`` and ``mlkeel db``: the prediction log from the shell."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from mlkeel.cli.compose import ProjectOption, open_repository, settings_for
from mlkeel.cli.console import console, err_console
from mlkeel.durations import parse_age, parse_moment
from mlkeel.errors import ConfigError, DataError, MlkeelError
from mlkeel.prediction_log.repository import Label

logs_app = typer.Typer(help="Follow, export and prune the prediction log.", no_args_is_help=True)
feedback_app = typer.Typer(help="Ground truth for served predictions.", no_args_is_help=True)
db_app = typer.Typer(help="The operational database.", no_args_is_help=True)

ModelOption = Annotated[str | None, typer.Option(help="Only this model.")]


def register(app: typer.Typer) -> None:
    app.add_typer(logs_app, name="logs")
    app.add_typer(feedback_app, name="feedback")
    app.add_typer(db_app, name="db")


@logs_app.command("tail")
def tail(
    project: ProjectOption = Path("."),
    model: ModelOption = None,
    lines: Annotated[int, typer.Option("-n", help="How many recent predictions.", min=1)] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new ones.")] = False,
) -> None:
    """Show the most recent predictions."""
    with open_repository(settings_for(project)) as repository:
        rows = list(reversed(repository.latest(model, lines)))
        console.print(_table(rows))
        last = rows[-1]["id"] if rows else 0
        while follow:
            time.sleep(1.0)
            fresh = repository.after(last, model)
            if fresh:
                console.print(_table(fresh, header=False))
                last = fresh[-1]["id"]


def _table(rows: list[dict[str, Any]], header: bool = True) -> Table:
    table = Table("time", "model", "version", "variant", "request_id", "row", "prediction",
                  "latency_ms", "features", show_header=header)  # fmt: skip
    for row in rows:
        features = ", ".join(f"{k}={v}" for k, v in list(row["features"].items())[:4])
        table.add_row(
            datetime.fromtimestamp(row["ts"], UTC).isoformat(timespec="milliseconds"),
            row["model"], str(row["version"]), row["variant"], row["request_id"],
            str(row["row"]), str(row["prediction"]), f"{row['latency_ms']:.2f}", features,
        )  # fmt: skip
    return table


@logs_app.command("export")
def export(
    out: Annotated[Path, typer.Option(help="Output file: .parquet or .csv.")],
    project: ProjectOption = Path("."),
    model: ModelOption = None,
    since: Annotated[str | None, typer.Option(help="ISO time or age (7d).")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time or age.")] = None,
) -> None:
    """Write a window of predictions, one row each, with features, outputs and labels."""
    import pandas as pd

    if out.suffix.lower() not in {".parquet", ".csv"}:
        raise ConfigError(f"--out {out} must end in .parquet or .csv")
    start = parse_moment(since).timestamp() if since else None
    end = parse_moment(until).timestamp() if until else None
    with open_repository(settings_for(project)) as repository:
        frame = pd.DataFrame([flatten(row) for row in repository.window(model, start, end)])
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    console.print(f"Wrote {len(frame):,} predictions to {out}")


def flatten(row: dict[str, Any]) -> dict[str, Any]:
    """One export row: fixed columns, then ``feature.NAME`` and ``proba.CLASS`` columns."""
    flat = {
        "time": datetime.fromtimestamp(row["ts"], UTC),
        "model": row["model"],
        "version": row["version"],
        "variant": row["variant"],
        "request_id": row["request_id"],
        "row": row["row"],
        "prediction": row["prediction"],
        "label": row.get("label"),
        "latency_ms": row["latency_ms"],
    }
    flat.update({f"feature.{key}": value for key, value in row["features"].items()})
    for key, value in (row.get("probabilities") or {}).items():
        flat[f"proba.{key}"] = value
    return flat


@logs_app.command("prune")
def prune(
    older_than: Annotated[str, typer.Option(help="Retention, e.g. 90d.")],
    project: ProjectOption = Path("."),
) -> None:
    """Delete predictions (and their labels) older than the retention period."""
    cutoff = datetime.now(UTC) - parse_age(older_than)
    with open_repository(settings_for(project)) as repository:
        deleted = repository.prune(cutoff.timestamp())
    console.print(f"Deleted {deleted:,} predictions logged before {cutoff.isoformat()}")


@feedback_app.command("import")
def import_labels(
    file: Annotated[Path, typer.Argument(help="CSV or Parquet with request ids and labels.")],
    project: ProjectOption = Path("."),
    model: Annotated[str | None, typer.Option(help="Model the labels belong to.")] = None,
    id_column: Annotated[str, typer.Option(help="Column with the request id.")] = "request_id",
    label_column: Annotated[str, typer.Option(help="Column with the label.")] = "label",
    row_column: Annotated[str, typer.Option(help="Column with the row (default 0).")] = "row",
) -> None:
    """Attach ground truth to logged predictions; unknown request ids are listed."""
    settings = settings_for(project)
    name = settings.model(model).name
    items = _read_labels(file, id_column, label_column, row_column)
    with open_repository(settings) as repository:
        unknown = repository.record_labels(name, items)
    console.print(f"Labelled {len(items) - len(unknown):,} of {len(items):,} predictions of {name}")
    if unknown:
        shown = ", ".join(f"{u.request_id}#{u.row}" for u in unknown[:10])
        more = f" and {len(unknown) - 10:,} more" if len(unknown) > 10 else ""
        err_console.print(f"[yellow]{len(unknown):,} unknown request ids[/]: {shown}{more}")
    if items and len(unknown) == len(items):
        raise MlkeelError(f"none of the {len(items):,} request ids in {file} were served by {name}")


def _read_labels(path: Path, id_column: str, label_column: str, row_column: str) -> list[Label]:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"label file {path} does not exist")
    reader = pd.read_parquet if path.suffix.lower() in {".parquet", ".pq"} else pd.read_csv
    frame = reader(path)
    missing = [c for c in (id_column, label_column) if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; has {list(frame.columns)}")
    rows = frame[row_column] if row_column in frame.columns else pd.Series(0, index=frame.index)
    return [
        Label(str(request_id), _plain(label), int(row))
        for request_id, label, row in zip(frame[id_column], frame[label_column], rows, strict=True)
    ]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


@db_app.command("upgrade")
def db_upgrade(project: ProjectOption = Path(".")) -> None:
    """Create or upgrade mlkeel's tables in the configured database."""
    from mlkeel.db import make_engine, upgrade

    settings = settings_for(project)
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    console.print(f"Database {engine.url!r} is at the newest schema")
