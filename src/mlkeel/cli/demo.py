"""``mlkeel demo``: the whole loop on bundled data, narrated, in a scratch project.

v1 is trained, promoted and served; live traffic arrives with its ground truth; the traffic
drifts and the label relationship changes; monitoring alerts (log and a local webhook);
retraining on the fresh labelled data passes the gate; v2 runs as a 20% canary and is
promoted; a deliberately broken v3 canary is rolled back automatically. Any failure exits
non-zero naming the step.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from mlkeel.cli.compose import registry_for, settings_for
from mlkeel.cli.console import Steps, console

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from mlkeel.cli.demo_world import Sent, Traffic
    from mlkeel.history import HistoryRepository
    from mlkeel.registry import Registry
    from mlkeel.rollout import Rollout, Verdict
    from mlkeel.serving.background import BackgroundServer
    from mlkeel.settings import Settings

EXAMPLE = "breast_cancer"
ACTOR = "mlkeel-demo"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


@dataclass
class Story:
    """What happened, for the closing table (and the tests, which read the stores)."""

    root: Path
    fast: bool
    scratch: bool
    url: str = ""
    notes: list[tuple[str, str]] = field(default_factory=list)
    report: Path | None = None

    @property
    def rows(self) -> int:
        return 120 if self.fast else 300


@dataclass
class World:
    """The running parts of the demo, built by its first steps."""

    settings: Settings
    registry: Registry
    engine: Engine
    history: HistoryRepository
    traffic: Traffic
    sent: Sent
    server: BackgroundServer


def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Keep the demo project here instead of a temporary folder."),
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Exit at the end instead of serving until Ctrl-C.")
    ] = False,
    fast: Annotated[bool, typer.Option("--fast", help="A shorter story (less traffic).")] = False,
) -> None:
    """Show the loop end to end on scikit-learn's breast-cancer data, in a scratch project."""
    from mlkeel.cli.demo_world import Webhook

    scratch = directory is None
    root = Path(tempfile.mkdtemp(prefix="mlkeel-demo-")) if directory is None else directory
    story = Story(root, fast, scratch)
    webhook = Webhook()
    console.print(Panel.fit(f"mlkeel demo: a model from notebook to production, in {root}"))
    world: World | None = None
    try:
        with Steps(console) as step:
            world = _setup(story, step, webhook.start())
            _live(story, step, world, webhook)
            _retrain_and_canary(story, step, world)
            _broken_canary(story, step, world)
            step("11. write a report of the week")
            story.report = _report(story, world)
        _summary(story, world)
        if not no_wait:
            _serve_until_interrupted(story)
    finally:
        if world is not None:
            world.server.stop()
            world.engine.dispose()
        webhook.stop()
        if scratch:
            shutil.rmtree(root, ignore_errors=True)


def _setup(story: Story, step: Steps, webhook_url: str) -> World:
    from mlkeel.cli.demo_world import DEMO_CONFIG, Sent, Traffic
    from mlkeel.db import make_engine, upgrade
    from mlkeel.history import HistoryRepository
    from mlkeel.prediction_log.runtime import open_prediction_log
    from mlkeel.retraining.deploy import promote
    from mlkeel.scaffold import init_project
    from mlkeel.serving.app import create_app
    from mlkeel.serving.background import BackgroundServer
    from mlkeel.training import to_candidate, train_model

    step("1. scaffold a project from scikit-learn's bundled breast-cancer data")
    init_project(story.root, EXAMPLE)
    config = DEMO_CONFIG.format(webhook=webhook_url, canary_for="2s",
                               canary_requests=40)  # fmt: skip
    with (story.root / "mlkeel.toml").open("a") as toml:
        toml.write(config)
    settings = settings_for(story.root)
    registry = registry_for(settings)
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    history = HistoryRepository(engine)

    step("2. train v1 and register it with its lineage (data hash, commit, metrics)")
    info = registry.register(to_candidate(train_model(settings, settings.model(EXAMPLE))))
    story.notes.append((f"v{info.version} trained", f"roc_auc {info.metrics['roc_auc']:.4f}"))

    step(f"3. promote v{info.version} to champion (the gate has no champion to beat)")
    promote(settings, registry, history, EXAMPLE, info.version, actor=ACTOR)

    step("4. serve it over HTTP, logging every prediction")
    prediction_log = open_prediction_log(settings, registry)
    server = BackgroundServer(create_app(settings, registry, prediction_log=prediction_log))
    story.url = server.start().url
    return World(settings, registry, engine, history, Traffic.load(story.root), Sent(), server)


def _live(story: Story, step: Steps, world: World, webhook: Any) -> None:
    from mlkeel.cli.demo_world import send

    step(f"5. {story.rows} live requests; their ground truth arrives as feedback")
    rows, labels = world.traffic.sample(story.rows, seed=1)
    send(story.url, rows, labels, "clean", world.sent)
    clean = _monitor(world)
    story.notes.append(("monitoring, clean traffic", _verdict(clean.report)))
    if clean.report.alerts:
        raise _failed("clean traffic raised alerts: " + "; ".join(clean.report.alerts))

    step("6. the world changes: four features drift, large tumours' labels flip")
    rows, labels = world.traffic.sample(story.rows * 2, seed=2, shift=1.6, flip=True)
    send(story.url, rows, labels, "drifted", world.sent)

    step("7. monitoring detects it and alerts (log, and a webhook to a local receiver)")
    drifted = _monitor(world)
    story.notes.append(("monitoring, drifted traffic", _verdict(drifted.report)))
    story.notes.append(("alerts received by the webhook", str(len(webhook.received))))
    if not drifted.report.alerts or not drifted.retrain:
        raise _failed("the drift did not raise an alert that asks for retraining")


def _retrain_and_canary(story: Story, step: Steps, world: World) -> None:
    from mlkeel.cli.demo_world import send
    from mlkeel.retraining.pipeline import retrain

    step("8. retrain on fresh labelled production data; the gate compares it with v1")
    result = retrain(world.settings, world.registry, world.history, EXAMPLE, actor=ACTOR,
                     trigger="drift", reason="drift alert in the demo")  # fmt: skip
    version = result.version
    if result.outcome != "awaiting_approval" or version is None:
        raise _failed(f"retraining ended {result.outcome!r}, not with a version that passed")
    story.notes.append((f"v{version} retrained", f"gate passed ({result.run.trigger} trigger)"))

    step(f"9. v{version} serves 20% of the traffic as a canary, then is analysed")
    rollout, _ = _rollout(world)
    config = world.settings.model(EXAMPLE).rollout
    rollout.start_canary(EXAMPLE, version, config, reason="demo canary")
    _wait_for_canary(world, version)
    verdict = _analyse_until_decided(
        world, rollout, lambda n: send(story.url, *world.traffic.sample(
            story.rows, seed=10 + n, shift=1.6, flip=True), f"canary{n}", world.sent))  # fmt: skip
    story.notes.append((f"v{version} canary", f"{verdict.decision}: {'; '.join(verdict.reasons)}"))
    if verdict.decision != "promote":
        raise _failed(f"the healthy canary was not promoted: {verdict.reasons}")


def _broken_canary(story: Story, step: Steps, world: World) -> None:
    from mlkeel.cli.demo_world import Broken, send
    from mlkeel.training import to_candidate, train_model

    step("10. a deliberately broken v3 goes out as a canary")
    trained = train_model(world.settings, world.settings.model(EXAMPLE))
    broken = replace(trained, model=Broken(trained.model))
    version = world.registry.register(to_candidate(broken, trigger="manual")).version
    rollout, _ = _rollout(world)
    rollout.start_canary(EXAMPLE, version, world.settings.model(EXAMPLE).rollout,
                         reason="demo: a broken build")  # fmt: skip
    _wait_for_canary(world, version)
    failed_before = world.sent.failed
    verdict = _analyse_until_decided(
        world, rollout, lambda n: send(story.url, *world.traffic.sample(
            story.rows, seed=50 + n, shift=1.6), f"broken{n}", world.sent))  # fmt: skip
    story.notes.append((f"v{version} canary (broken)", f"{verdict.decision}: "
                        f"{'; '.join(verdict.reasons)}"))  # fmt: skip
    if verdict.decision != "rollback":
        raise _failed(f"the broken canary was not rolled back: {verdict.reasons}")
    if world.sent.failed != failed_before:
        raise _failed("clients saw errors while the broken canary served")


def _rollout(world: World) -> tuple[Rollout, Any]:
    from mlkeel.prediction_log.repository import PredictionRepository
    from mlkeel.rollout import Rollout

    return Rollout(world.registry, world.history, actor=ACTOR), PredictionRepository(world.engine)


def _wait_for_canary(world: World, version: int) -> None:
    """Until the server routes to `version` (it follows the registry every reload_seconds)."""
    import httpx

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = httpx.get(f"{world.server.url}/v1/models/{EXAMPLE}", timeout=10).json()
        if body.get("canary_version") == version:
            return
        time.sleep(0.3)
    raise _failed(f"the server did not pick up canary v{version} within 30 s")


def _analyse_until_decided(
    world: World, rollout: Rollout, traffic: Callable[[int], None]
) -> Verdict:
    """Send rounds of traffic (each with new request ids) until the analysis decides."""
    from mlkeel.prediction_log.repository import PredictionRepository
    from mlkeel.rollout import check

    repository = PredictionRepository(world.engine)
    deadline = time.monotonic() + 90
    round_ = 0
    while time.monotonic() < deadline:
        traffic(round_)
        round_ += 1
        time.sleep(1.2)  # the writer saves its hourly summaries every second
        verdict = check(world.settings, rollout, repository, EXAMPLE)
        if verdict is not None and verdict.decision != "wait":
            return verdict
    raise _failed("the canary analysis reached no verdict within 90 s")


def _monitor(world: World) -> Any:
    from mlkeel.monitoring.pipeline import monitor

    time.sleep(1.5)  # the writer saves its hourly summaries every second
    now = datetime.now(UTC)
    return monitor(world.settings, world.registry, world.engine, EXAMPLE,
                   now - timedelta(hours=1), now + timedelta(hours=1))  # fmt: skip


def _verdict(report: Any) -> str:
    drifted = [f.name for f in report.features if f.drifted]
    text = f"{report.rows} rows, drift share {report.drift_share:.0%}"
    if drifted:
        text += f", drifted: {', '.join(drifted)}"
    if report.performance is not None:
        live = report.performance.metrics.get("accuracy")
        if live is not None:
            text += f", live accuracy {live:.2f}"
    return text + (f"; {len(report.alerts)} alert(s)" if report.alerts else "; healthy")


def _report(story: Story, world: World) -> Path:
    """The week's report; outside a scratch project, which is deleted at the end."""
    from mlkeel.dashboard.report import write_report

    target = Path.cwd() / "mlkeel-demo-report.html" if story.scratch else story.root / "report.html"
    write_report(world.settings, world.registry, world.engine, EXAMPLE, "7d", target)
    return target


def _summary(story: Story, world: World) -> None:
    table = Table(title="What happened", show_header=False)
    for what, outcome in story.notes:
        table.add_row(what, outcome)
    sent = world.sent
    table.add_row("live requests", f"{sent.requests} ({sent.failed} failed); by variant: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(sent.variants.items())))  # fmt: skip
    champion = world.registry.resolve(EXAMPLE, "champion").version
    table.add_row("champion now", f"v{champion}")
    if story.report is not None:
        table.add_row("report", str(story.report))
    table.add_row("dashboard", f"{story.url}/dashboard")
    console.print(table)
    if sent.failed:
        raise _failed(f"{sent.failed} requests failed")


def _serve_until_interrupted(story: Story) -> None:
    console.print(
        f"The model is served at [bold]{story.url}/v1/models/{EXAMPLE}/predict[/] "
        f"(dashboard {story.url}/dashboard, API docs {story.url}/docs). Ctrl-C stops."
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping")


def _failed(reason: str) -> Exception:
    from mlkeel.errors import MlkeelError

    return MlkeelError(f"demo step failed: {reason}")
