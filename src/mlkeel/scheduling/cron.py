"""Cron expressions, parsed once and written out for each scheduler that runs them.

Five fields (minute hour day month weekday) as crontab(5) has them, or six with seconds in
front (Quartz's order), which only ``mlkeel up`` runs (tests, demos). Each field takes ``*``,
numbers, ``a-b`` ranges, ``,`` lists and ``/step``; months and weekdays also take names
(``jan``, ``mon``); weekday 0 and 7 are Sunday.

Two differences between schedulers are settled here rather than left to surprise:

- APScheduler 3 numbers weekdays from Monday = 0, so ``CronTrigger.from_crontab("0 3 * * 1")``
  fires on Tuesdays. `Cron.trigger_fields` names weekdays instead (``mon``).
- cron runs a job when the day of the month *or* the weekday matches if both are restricted;
  APScheduler and systemd require both. An expression restricting both is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlkeel.errors import ConfigError

# name, lowest, highest
FIELDS = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("day_of_week", 0, 6),
)
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # cron numbering: sun = 0
SYSTEMD_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the values each field allows (None: every value)."""

    text: str
    values: tuple[tuple[int, ...] | None, ...]  # in FIELDS order

    @property
    def has_seconds(self) -> bool:
        return len(self.text.split()) == 6

    def field(self, name: str) -> tuple[int, ...] | None:
        return self.values[[f[0] for f in FIELDS].index(name)]

    def trigger_fields(self) -> dict[str, str]:
        """Keyword arguments for APScheduler 3's ``CronTrigger`` (weekdays by name)."""
        fields: dict[str, str] = {}
        for (name, _, _), allowed in zip(FIELDS, self.values, strict=True):
            if allowed is None:
                fields[name] = "*"
            elif name == "day_of_week":
                fields[name] = ",".join(WEEKDAYS[day] for day in allowed)
            else:
                fields[name] = ",".join(str(value) for value in allowed)
        return fields

    def five_fields(self, where: str) -> str:
        """The expression for crontab, GitHub Actions and Airflow, which have no seconds."""
        if self.has_seconds:
            raise ConfigError(
                f"{where} = {self.text!r} has a seconds field, which {_FIVE_ONLY} cannot run; "
                "use five fields (minute hour day month weekday) for exported schedules"
            )
        return self.text

    def on_calendar(self, timezone: str) -> str:
        """The systemd ``OnCalendar=`` form: ``Mon *-*-1,15 06:00:00 UTC``."""
        second, minute, hour, day, month, weekday = self.values
        date = f"*-{_calendar(month, 1, 12)}-{_calendar(day, 1, 31)}"
        time = ":".join(
            _calendar(v, 0, top) for v, top in ((hour, 23), (minute, 59), (second or (0,), 59))
        )
        days = "" if weekday is None else ",".join(SYSTEMD_WEEKDAYS[d] for d in weekday) + " "
        return f"{days}{date} {time} {timezone}"


_FIVE_ONLY = "crontab, GitHub Actions and Airflow"


def parse_cron(text: str, where: str = "schedule") -> Cron:
    """Parse `text`; `where` names the setting in error messages."""
    parts = text.split()
    if len(parts) not in (5, 6):
        raise ConfigError(
            f"{where} = {text!r} is not a cron expression: it needs 5 fields (minute hour day "
            "month weekday) or 6 (seconds first), e.g. '0 6 * * *'"
        )
    if len(parts) == 5:
        parts = ["0", *parts]
    values = tuple(
        _field(part, name, low, high, where, text)
        for part, (name, low, high) in zip(parts, FIELDS, strict=True)
    )
    if values[3] is not None and values[5] is not None:
        raise ConfigError(
            f"{where} = {text!r} restricts both the day of the month and the weekday; cron "
            "runs when either matches, APScheduler and systemd only when both do. Restrict "
            "one of them"
        )
    return Cron(" ".join(text.split()), values)


def _field(
    part: str, name: str, low: int, high: int, where: str, text: str
) -> tuple[int, ...] | None:
    if part == "*":
        return None
    allowed: set[int] = set()
    for piece in part.split(","):
        allowed.update(_piece(piece.lower(), name, low, high, where, text))
    if name == "day_of_week":
        allowed = {day % 7 for day in allowed}
    if name != "day_of_week" and allowed == set(range(low, high + 1)):
        return None
    if name == "day_of_week" and allowed == set(range(7)):
        return None
    return tuple(sorted(allowed))


def _piece(piece: str, name: str, low: int, high: int, where: str, text: str) -> range:
    top = 7 if name == "day_of_week" else high  # cron allows 7 for Sunday
    span, _, step_text = piece.partition("/")
    try:
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            start, _, end = span.partition("-")
            first, last = _number(start, name), _number(end, name)
        else:
            first = _number(span, name)
            last = high if step_text else first
        if not (low <= first <= top and low <= last <= top and first <= last and step >= 1):
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"{where} = {text!r}: {piece!r} is not a valid {name.replace('_', ' ')} "
            f"(numbers {low}-{top}, '*', 'a-b', lists with ',', steps with '/')"
        ) from None
    return range(first, last + 1, step)


def _number(token: str, name: str) -> int:
    names = MONTHS if name == "month" else WEEKDAYS if name == "day_of_week" else ()
    if token in names:
        return names.index(token) + (1 if name == "month" else 0)
    return int(token)


def _calendar(values: tuple[int, ...] | None, low: int, high: int) -> str:
    """One systemd calendar component: ``*``, ``a/step``, ``a..b`` or a list."""
    if values is None:
        return "*"
    if len(values) > 2:
        step = values[1] - values[0]
        progression = all(b - a == step for a, b in zip(values, values[1:], strict=False))
        if progression and step == 1:
            return f"{values[0]:02d}..{values[-1]:02d}"
        if progression and values[-1] + step > high and values[0] - step < low:
            return f"{values[0]:02d}/{step}"
    return ",".join(f"{value:02d}" for value in values)
