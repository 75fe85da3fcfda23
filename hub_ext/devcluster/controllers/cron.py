"""Cron schedules as CronJob ``spec.schedule`` takes them, and the times they fire.

Five fields (minute, hour, day of month, month, day of week) with ``*``, lists, ranges, steps and
month and weekday names, or one of ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``,
``@daily``, ``@midnight`` and ``@hourly``. As in cron, when both day fields are restricted a day
matches if either matches. Times are evaluated in a time zone (``spec.timeZone``, else UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")


class CronError(ValueError):
    """A schedule that cannot be parsed."""


def _value(text: str, index: int) -> int:
    names = MONTHS if index == 3 else DAYS if index == 4 else None
    if names and text.lower() in names:
        return names.index(text.lower()) + (1 if index == 3 else 0)
    if not text.isdigit():
        raise CronError(
            f"failed to parse int from {text}: strconv.Atoi: parsing {text!r}: invalid syntax"
        )
    return int(text)


def _field(text: str, index: int) -> frozenset[int]:
    low, high = RANGES[index]
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = _value(step_text, 0) if step_text else 1
        if step < 1:
            raise CronError(f"step of range should be a positive number: {part}")
        if rng == "*":
            start, end = low, high
        elif "-" in rng:
            a, b = rng.split("-", 1)
            start, end = _value(a, index), _value(b, index)
        else:
            start = _value(rng, index)
            end = high if step_text else start
        if start < low or end > high or start > end:
            raise CronError(
                f"end of range ({end}) above maximum ({high}): {part}"
                if end > high
                else f"beginning of range ({start}) below minimum ({low}): {part}"
                if start < low
                else f"beginning of range ({start}) beyond end of range ({end}): {part}"
            )
        out.update(range(start, end + 1, step))
    if index == 4 and 7 in out:
        out = (out - {7}) | {0}
    return frozenset(out)


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    def _day_ok(self, moment: datetime) -> bool:
        dom = moment.day in self.days
        dow = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    def next_after(self, moment: datetime) -> datetime:
        """The first time after ``moment`` (naive, local wall time) that matches."""
        t = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_ok(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        raise CronError("the schedule never fires")


def parse_schedule(text: str) -> Schedule:
    spec = MACROS.get(text.strip(), text.strip())
    if spec.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("TZ and CRON_TZ are not supported in spec.schedule; use spec.timeZone")
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {text}")
    minutes, hours, days, months, weekdays = (_field(f, i) for i, f in enumerate(fields))
    return Schedule(
        minutes,
        hours,
        days,
        months,
        weekdays,
        any_day=fields[2] == "*",
        any_weekday=fields[4] == "*",
    )


def due_times(
    schedule: Schedule, zone: str | None, since: float, now: float, limit: int = 101
) -> list[float]:
    """The times (Unix seconds) in ``(since, now]`` at which ``schedule`` fires, oldest first,
    at most ``limit`` of them (the most recent ones)."""
    tz = ZoneInfo(zone or "UTC")
    since = max(since, now - 7 * 86400)  # like Kubernetes, do not catch up on ages of misses
    local = datetime.fromtimestamp(since, tz).replace(tzinfo=None)
    out: list[float] = []
    while True:
        local = schedule.next_after(local)
        stamp = local.replace(tzinfo=tz).timestamp()
        if stamp > now:
            return out
        out.append(stamp)
        if len(out) > limit:
            del out[0]
