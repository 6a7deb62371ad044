"""Cron expressions mean the same to mlkeel up (APScheduler), crontab(5) and systemd."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger

from mlkeel.errors import ConfigError
from mlkeel.scheduling.cron import parse_cron

EXPRESSIONS = ["0 6 * * *", "*/5 * * * *", "0 3 * * 1", "0 9-17 * * mon-fri", "30 4 1,15 * *",
               "0 0 * * 7", "5 */4 * jan-mar *", "15 2 * * 0,6", "0 12 * * 1-5/2"]  # fmt: skip
START = datetime(2026, 11, 25, 12, 34, tzinfo=UTC)  # a Wednesday


def crontab_times(text: str, start: datetime, count: int) -> list[datetime]:
    """crontab(5)'s meaning, by brute force over minutes: the reference."""
    cron = parse_cron(text)

    def ok(name: str, value: int) -> bool:
        allowed = cron.field(name)
        return allowed is None or value in allowed

    found, moment = [], start.replace(second=0) + timedelta(minutes=1)
    while len(found) < count:
        weekday = (moment.weekday() + 1) % 7  # cron: sunday = 0
        if (ok("minute", moment.minute) and ok("hour", moment.hour) and ok("day", moment.day)
                and ok("month", moment.month) and ok("day_of_week", weekday)):  # fmt: skip
            found.append(moment)
        moment += timedelta(minutes=1)
    return found


def scheduler_times(text: str, start: datetime, count: int) -> list[datetime]:
    trigger = CronTrigger(**parse_cron(text).trigger_fields(), timezone="UTC")
    found: list[datetime] = []
    previous = None
    now = start + timedelta(seconds=1)
    while len(found) < count:
        fire = trigger.get_next_fire_time(previous, now)
        found.append(fire)
        previous, now = fire, fire + timedelta(seconds=1)
    return found


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_the_scheduler_fires_when_crontab_would(text: str) -> None:
    assert scheduler_times(text, START, 12) == crontab_times(text, START, 12)


def test_apscheduler_from_crontab_is_a_day_late_which_is_why_weekdays_are_named() -> None:
    monday = parse_cron("0 3 * * 1").trigger_fields()["day_of_week"]
    naive = CronTrigger.from_crontab("0 3 * * 1", timezone="UTC").get_next_fire_time(None, START)

    assert monday == "mon"
    assert naive.strftime("%a") == "Tue"  # the trap parse_cron avoids


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("text", [*EXPRESSIONS, "*/10 * * * * *"])
def test_systemd_on_calendar_fires_when_the_scheduler_does(text: str) -> None:
    expression = parse_cron(text).on_calendar("UTC")
    result = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations=6", f"--base-time=@{int(START.timestamp())}",
         expression], capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = [line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
             if line.strip().startswith(("Next elapse:", "Iter. #"))]  # fmt: skip
    elapses = [datetime.strptime(line, "%a %Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC)
               for line in lines]  # fmt: skip

    assert elapses == scheduler_times(text, START, 6)


def test_six_fields_put_seconds_first_and_exports_refuse_them() -> None:
    cron = parse_cron("*/15 * * * * *")

    assert cron.has_seconds
    assert cron.trigger_fields()["second"] == "0,15,30,45"
    with pytest.raises(ConfigError, match="seconds field"):
        cron.five_fields("models.m.schedules.monitor")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 6 * *", "5 fields"),
        ("0 25 * * *", "'25' is not a valid hour"),
        ("0 6 1 * mon", "restricts both the day of the month and the weekday"),
        ("0 6 L * *", "'l' is not a valid day"),
        ("*/0 * * * *", "not a valid minute"),
    ],
)
def test_bad_expressions_are_refused_naming_the_setting(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        parse_cron(text, "models.m.schedules.monitor")
    assert "models.m.schedules.monitor" in str(refused.value)
