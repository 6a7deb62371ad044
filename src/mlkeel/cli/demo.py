"""``mlkeel demo``: the whole loop on bundled data, narrated; it grows with each capability."""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from mlkeel.cli.compose import registry_for, settings_for
from mlkeel.cli.console import Steps, console, err_console

if TYPE_CHECKING:
    from mlkeel.serving.background import BackgroundServer

EXAMPLE = "breast_cancer"
TRAFFIC = 400  # requests of live traffic, one row each


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@dataclass
class Story:
    """What the demo did, for the closing summary."""

    root: Path
    url: str = ""
    versions: list[tuple[int, str]] = field(default_factory=list)
    requests: int = 0
    failed: int = 0
    seconds: float = 0.0
    logged: int = 0
    labelled: int = 0


def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Keep the demo project here instead of a temporary folder."),
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Exit at the end instead of serving until Ctrl-C.")
    ] = False,
) -> None:
    """Show the loop end to end on scikit-learn's breast-cancer data, in a scratch project."""
    scratch = directory is None
    root = Path(tempfile.mkdtemp(prefix="mlkeel-demo-")) if directory is None else directory
    story = Story(root)
    console.print(Panel.fit(f"mlkeel demo: a model from notebook to production, in {root}"))
    try:
        with Steps(console) as step:
            server = _run(story, step)
        try:
            _summary(story)
            if not no_wait:
                _serve_until_interrupted(story)
        finally:
            server.stop()
    finally:
        if scratch:
            shutil.rmtree(root, ignore_errors=True)


def _run(story: Story, step: Steps) -> BackgroundServer:
    """Every step of the story; returns the server, still up."""
    from mlkeel.prediction_log.runtime import open_prediction_log
    from mlkeel.scaffold import init_project
    from mlkeel.serving.app import create_app
    from mlkeel.serving.background import BackgroundServer
    from mlkeel.training import to_candidate, train_model

    step("1. scaffold a project from scikit-learn's bundled breast-cancer data")
    init_project(story.root, EXAMPLE)
    settings = settings_for(story.root)
    registry = registry_for(settings)

    step("2. train v1 and register it with its lineage (data hash, commit, metrics)")
    trained = train_model(settings, settings.model(EXAMPLE))
    info = registry.register(to_candidate(trained))
    story.versions.append((info.version, f"roc_auc {info.metrics['roc_auc']:.4f}"))

    step(f"3. promote v{info.version} to champion")
    registry.set_alias(EXAMPLE, "champion", info.version)

    step("4. serve it over HTTP, logging every prediction")
    prediction_log = open_prediction_log(settings, registry)
    server = BackgroundServer(create_app(settings, registry, prediction_log=prediction_log))
    story.url = server.start().url
    try:
        step(f"5. send {TRAFFIC} live requests, then their ground truth as feedback")
        rows, labels = _traffic(trained.dataset.frame, settings.model(EXAMPLE).target)
        _send(story, rows, labels)
        prediction_log.writer.flush()
        story.logged = prediction_log.repository.count(EXAMPLE)
    except BaseException:
        server.stop()
        raise
    return server


def _serve_until_interrupted(story: Story) -> None:
    console.print(
        f"The model is served at [bold]{story.url}/v1/models/{EXAMPLE}/predict[/] "
        f"(API docs: {story.url}/docs). Ctrl-C stops."
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping")


def _traffic(frame: Any, target: str) -> tuple[list[dict[str, Any]], list[int]]:
    sample = frame.sample(n=TRAFFIC, replace=True, random_state=7)
    rows = sample.drop(columns=[target]).to_dict(orient="records")
    return rows, [int(label) for label in sample[target]]


def _send(story: Story, rows: list[dict[str, Any]], labels: list[int]) -> None:
    import httpx

    predict = f"{story.url}/v1/models/{EXAMPLE}/predict"
    with httpx.Client(timeout=30) as client:

        def one(index: int) -> int:
            response = client.post(predict, json={"instances": [rows[index]]},
                                   headers={"X-Request-ID": f"demo-{index}"})  # fmt: skip
            return response.status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(one, range(len(rows))))
        story.seconds = time.perf_counter() - started
        story.requests = len(statuses)
        story.failed = sum(status != 200 for status in statuses)
        feedback = [{"request_id": f"demo-{i}", "label": label} for i, label in enumerate(labels)]
        answer = client.post(f"{story.url}/v1/models/{EXAMPLE}/feedback", json=feedback)
        story.labelled = int(answer.json().get("accepted", 0)) if answer.is_success else 0


def _summary(story: Story) -> None:
    table = Table(title="What happened", show_header=False)
    for version, note in story.versions:
        table.add_row(f"{EXAMPLE} v{version}", note)
    rate = story.requests / story.seconds if story.seconds else 0.0
    table.add_row("live requests", f"{story.requests} ({story.failed} failed), {rate:,.0f} req/s")
    table.add_row("predictions logged", str(story.logged))
    table.add_row("labels received", str(story.labelled))
    console.print(table)
    if story.failed:
        err_console.print(f"[red]{story.failed} requests failed[/]")
        raise typer.Exit(1)
