"""The jobs of ``mlkeel up``, written out for other schedulers (``mlkeel export``).

Each file runs the same jobs through the CLI, on the same cron times:

==========  ==================================================  ===========================
job         command                                             exit status
==========  ==================================================  ===========================
monitor     mlkeel monitor --model NAME --window W              1 when alerting
canary      mlkeel rollout status NAME                          1 when rolled back
retrain     mlkeel retrain --model NAME --trigger schedule      1 when the gate blocks
retention   mlkeel logs prune --older-than AGE                  0
==========  ==================================================  ===========================

every command with ``--project DIR``. Targets and what each guarantees:

- ``airflow``: one DAG per job (BashOperator), ``max_active_runs=1`` (no overlap),
  ``catchup=False`` (after downtime Airflow runs the latest missed interval once).
- ``github-actions``: one workflow, a ``schedule`` cron per distinct time plus
  ``workflow_dispatch`` (choose a job); one job per mlkeel job, selected by
  ``github.event.schedule``; a ``concurrency`` group per job (no overlap). GitHub runs cron in
  UTC on 5 fields, at most every 5 minutes, and runners are ephemeral: the stores must be
  servers, given as the secrets ``MLKEEL_DATABASE_URL`` and ``MLKEEL_TRACKING_URI``.
- ``cron``: a crontab; each line under ``flock -n`` (no overlap), output appended to
  ``.mlkeel/logs/JOB.log``. ``CRON_TZ`` is honoured by cronie; other crons use the system zone.
- ``systemd``: a oneshot service and a timer per job (a running oneshot is never started
  twice); ``OnCalendar=`` translated from the cron fields, in ``schedules.timezone``;
  ``Persistent=`` true for ``misfire = "run_once"`` (a missed time runs once at boot).

Retrains on a monitoring alert are ``mlkeel up``'s alone: exported monitors exit 1 instead.
Seconds fields are refused by every target except systemd.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mlkeel.errors import ConfigError
from mlkeel.scheduling.cron import Cron
from mlkeel.scheduling.jobs import JobSpec

if TYPE_CHECKING:
    from mlkeel.settings import Settings

Target = Literal["airflow", "github-actions", "cron", "systemd"]
TARGETS: tuple[Target, ...] = ("airflow", "github-actions", "cron", "systemd")
HEADER = "Written by 'mlkeel export {target}' for project {project!r}; re-export after editing "
HEADER += "mlkeel.toml rather than editing this file."


@dataclass(frozen=True)
class ExportJob:
    """One job as the exported files run it."""

    name: str  # monitor-churn, retention
    cron: Cron
    command: tuple[str, ...]  # the whole argv, mlkeel invocation included
    key: str  # where its schedule is set, for error messages

    @property
    def shell(self) -> str:
        return shlex.join(self.command)


@dataclass(frozen=True)
class ExportPlan:
    project: str
    project_dir: str
    timezone: str
    misfire: str
    jobs: tuple[ExportJob, ...]

    @property
    def slug(self) -> str:
        """The project's name as identifiers allow it: letters, digits, ``_``."""
        return re.sub(r"[^A-Za-z0-9_]+", "_", self.project).strip("_").lower() or "project"


def export_plan(
    settings: Settings, specs: list[JobSpec], mlkeel: list[str], project_dir: str
) -> ExportPlan:
    """The jobs of `specs` as commands: `mlkeel` is how to invoke the CLI (``mlkeel`` or
    ``/venv/bin/python -m mlkeel``), `project_dir` the ``--project`` they pass."""
    jobs = []
    for spec in specs:
        if spec.cron is None:
            continue
        command = (*mlkeel, *_arguments(settings, spec), "--project", project_dir)
        jobs.append(ExportJob(spec.id.replace(":", "-"), spec.cron, command, spec.key))
    return ExportPlan(settings.project, project_dir, settings.schedules.timezone,
                      settings.schedules.misfire, tuple(jobs))  # fmt: skip


def _arguments(settings: Settings, spec: JobSpec) -> list[str]:
    model = spec.model or ""
    if spec.kind == "monitor":
        window = settings.model(model).schedules.monitor_window
        return ["monitor", "--model", model, "--window", window]
    if spec.kind == "canary":
        return ["rollout", "status", model]
    if spec.kind == "retrain":
        return ["retrain", "--model", model, "--trigger", "schedule", "--reason",
                "scheduled retrain"]  # fmt: skip
    return ["logs", "prune", "--older-than", settings.schedules.retention]


def render(target: Target, plan: ExportPlan) -> dict[str, str]:
    """The files of `target`: relative file name -> content."""
    if not plan.jobs:
        raise ConfigError("no job is scheduled (every schedule is 'off'); nothing to export")
    renderers = {"airflow": airflow, "github-actions": github_actions, "cron": crontab,
                 "systemd": systemd}  # fmt: skip
    return renderers[target](plan)


# ---- Airflow -------------------------------------------------------------------------------
AIRFLOW_DAG = '''"""mlkeel jobs as Airflow DAGs, one per job. {header}"""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

PROJECT = {project_dir}
ENV = {{"MLKEEL_PROJECT": PROJECT}}
JOBS = {jobs}

for job in JOBS:
    with DAG(
        dag_id=job["dag_id"],
        schedule=job["schedule"],
        start_date=pendulum.datetime(2024, 1, 1, tz={timezone}),
        catchup=False,
        max_active_runs=1,
        tags=["mlkeel", {project}],
        description=job["description"],
    ) as dag:
        BashOperator(
            task_id=job["task_id"],
            bash_command=job["command"],
            env=ENV,
            append_env=True,
            cwd=PROJECT,
        )
    globals()[job["dag_id"]] = dag
'''


def airflow(plan: ExportPlan) -> dict[str, str]:
    jobs = [
        {
            "dag_id": f"mlkeel_{plan.slug}_{job.name.replace('-', '_')}",
            "task_id": job.name.replace("-", "_"),
            "schedule": job.cron.five_fields(job.key),
            "command": job.shell,
            "description": f"mlkeel {job.name} ({job.key} = {job.cron.text!r})",
        }
        for job in plan.jobs
    ]
    text = AIRFLOW_DAG.format(
        header=HEADER.format(target="airflow", project=plan.project),
        project_dir=json.dumps(plan.project_dir),
        jobs=json.dumps(jobs, indent=4),
        timezone=json.dumps(plan.timezone),
        project=json.dumps(plan.project),
    )
    return {f"mlkeel_{plan.slug}.py": text}


# ---- GitHub Actions ------------------------------------------------------------------------
def github_actions(plan: ExportPlan) -> dict[str, str]:
    if plan.timezone != "UTC":
        raise ConfigError(
            f"GitHub Actions runs schedules in UTC, but schedules.timezone = {plan.timezone!r}; "
            "set it to 'UTC' (and the cron times in UTC) to export a workflow"
        )
    crons = list(dict.fromkeys(job.cron.five_fields(job.key) for job in plan.jobs))
    names = [job.name for job in plan.jobs]
    q = json.dumps
    lines = [
        f"# {HEADER.format(target='github-actions', project=plan.project)}",
        "# Runners are ephemeral: set the repository secrets MLKEEL_DATABASE_URL and",
        "# MLKEEL_TRACKING_URI to the stores (a database and an MLflow tracking server).",
        f"name: {q('mlkeel ' + plan.project)}",
        "on:",
        "  schedule:",
        *(f"    - cron: {q(cron)}" for cron in crons),
        "  workflow_dispatch:",
        "    inputs:",
        "      job:",
        "        description: The mlkeel job to run now",
        "        type: choice",
        "        required: true",
        "        options:",
        *(f"          - {q(name)}" for name in names),
        "permissions:",
        "  contents: read",
        "env:",
        f"  MLKEEL_PROJECT: {q(plan.project_dir)}",
        "  MLKEEL_DATABASE_URL: ${{ secrets.MLKEEL_DATABASE_URL }}",
        "  MLKEEL_TRACKING_URI: ${{ secrets.MLKEEL_TRACKING_URI }}",
        "jobs:",
    ]
    for job in plan.jobs:
        cron = job.cron.five_fields(job.key)
        lines += [
            f"  {job.name}:",
            f"    if: github.event.schedule == {_yaml_expr(cron)} || "
            f"inputs.job == {_yaml_expr(job.name)}",
            "    runs-on: ubuntu-latest",
            "    timeout-minutes: 120",
            "    concurrency:",
            f"      group: {q('mlkeel-' + job.name)}",
            "      cancel-in-progress: false",
            "    steps:",
            "      - uses: actions/checkout@v4",
            "      - uses: astral-sh/setup-uv@v6",
            "      - name: Check the stores are configured",
            "        run: |",
            '          if [ -z "$MLKEEL_DATABASE_URL" ] || [ -z "$MLKEEL_TRACKING_URI" ]; then',
            '            echo "::error::set the secrets MLKEEL_DATABASE_URL and '
            'MLKEEL_TRACKING_URI"',
            "            exit 1",
            "          fi",
            f"      - name: {q('mlkeel ' + job.name)}",
            f"        run: {q(job.shell)}",
        ]
    return {f"mlkeel-{plan.slug.replace('_', '-')}.yml": "\n".join(lines) + "\n"}


def _yaml_expr(text: str) -> str:
    """A string literal inside a GitHub expression: single quotes, doubled to escape."""
    return "'" + text.replace("'", "''") + "'"


# ---- crontab -------------------------------------------------------------------------------
def crontab(plan: ExportPlan) -> dict[str, str]:
    directory = shlex.quote(plan.project_dir)
    lines = [
        f"# {HEADER.format(target='cron', project=plan.project)}",
        "# Install: crontab -l | cat - THIS_FILE | crontab -   (or copy to /etc/cron.d/ and",
        "# add a user column). Each job runs under flock -n: never twice at once.",
        f"CRON_TZ={plan.timezone}",
        f"MLKEEL_PROJECT={plan.project_dir}",
    ]
    for job in plan.jobs:
        log = f".mlkeel/logs/{job.name}.log"
        command = (f"cd {directory} && mkdir -p .mlkeel/logs && flock -n "
                   f".mlkeel/logs/{job.name}.lock {job.shell} >> {log} 2>&1")  # fmt: skip
        lines.append(f"{job.cron.five_fields(job.key)} {command.replace('%', chr(92) + '%')}")
    return {f"mlkeel-{plan.slug.replace('_', '-')}.crontab": "\n".join(lines) + "\n"}


# ---- systemd -------------------------------------------------------------------------------
def systemd(plan: ExportPlan) -> dict[str, str]:
    files: dict[str, str] = {}
    persistent = "true" if plan.misfire == "run_once" else "false"
    header = f"# {HEADER.format(target='systemd', project=plan.project)}"
    for job in plan.jobs:
        unit = f"mlkeel-{plan.slug.replace('_', '-')}-{job.name}"
        files[f"{unit}.service"] = "\n".join([
            header,
            "[Unit]",
            f"Description=mlkeel {job.name} of project {plan.project}",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"WorkingDirectory={plan.project_dir}",
            f"Environment={_systemd_quote('MLKEEL_PROJECT=' + plan.project_dir)}",
            f"ExecStart={_systemd_exec(job.command)}",
            "",
        ])  # fmt: skip
        files[f"{unit}.timer"] = "\n".join([
            header,
            "[Unit]",
            f"Description=mlkeel {job.name} of project {plan.project} ({job.cron.text})",
            "",
            "[Timer]",
            f"OnCalendar={job.cron.on_calendar(plan.timezone)}",
            f"Persistent={persistent}",
            f"Unit={unit}.service",
            "",
            "[Install]",
            "WantedBy=timers.target",
            "",
        ])  # fmt: skip
    return files


def _systemd_quote(word: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:=@+,-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _systemd_exec(command: tuple[str, ...]) -> str:
    """ExecStart= words: quoted where needed, ``%`` and ``$`` escaped (specifiers, variables)."""
    return " ".join(_systemd_quote(word).replace("%", "%%").replace("$", "$$") for word in command)
