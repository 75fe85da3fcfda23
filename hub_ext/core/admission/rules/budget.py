"""A per-student GPU-hour budget: who used up today's GPU time waits until the budget resets.

Configured in the profile policy file::

    budgets:
      gpu_hours_per_day: 4        # per student, all courses together (optional)
      courses: {ml-101: 2}        # per student within a course (optional)
      reset_hour_utc: 0           # the hour (UTC) at which a new day's budget starts

A student's use is the GPU time of their finished sessions since the last reset (the durable
usage records, :mod:`hub_ext.core.admission.usage`) plus their running sessions up to now. A
student at or over a budget is held back with :attr:`WaitReason.GPU_BUDGET`; the waiting message
says which budget is used up and when it resets, and the ETA is the time until then. Running
servers are not stopped: the budget decides admissions. The admin view lists each student's use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hub_ext.core.admission.model import CourseSlug, QueueEntry, UserName, WaitReason
from hub_ext.core.admission.rules.base import AdmissionRule, Hold, RuleContext, RuleNote, RulePass
from hub_ext.core.admission.rules.registry import register_rule
from hub_ext.core.admission.usage import used

KEYS = ("gpu_hours_per_day", "courses", "reset_hour_utc")


@dataclass(frozen=True)
class BudgetRule(AdmissionRule):
    """GPU hours per student and day, lab-wide (``per_day``) and per course (``per_course``)."""

    per_day: float | None = None
    per_course: Mapping[CourseSlug, float] = field(default_factory=dict, hash=False)
    reset_hour: int = 0
    name = "gpu-budget"

    def day(self, now: datetime) -> tuple[datetime, datetime]:
        """The current budget day: its start (the last reset) and the next reset."""
        start = now.astimezone(UTC).replace(hour=self.reset_hour, minute=0, second=0, microsecond=0)
        if start > now:
            start -= timedelta(days=1)
        return start, start + timedelta(days=1)

    def budgets(self, course: CourseSlug) -> list[tuple[CourseSlug | None, float]]:
        """The budgets an entry of ``course`` is under: (None for lab-wide, hours)."""
        out: list[tuple[CourseSlug | None, float]] = []
        if self.per_day is not None:
            out.append((None, self.per_day))
        if course in self.per_course:
            out.append((course, self.per_course[course]))
        return out

    def start(self, ctx: RuleContext) -> RulePass:
        return _BudgetPass(self, ctx)

    def notes(self, ctx: RuleContext) -> tuple[RuleNote, ...]:
        since, reset = self.day(ctx.now)
        running = tuple(ctx.running.values())
        people = {(r.user, r.course) for r in ctx.usage if r.end > since}
        people |= {(s.key.user, s.course) for s in running}
        out: list[RuleNote] = []
        for user, course in sorted(people):
            parts = []
            for scope, hours in self.budgets(course):
                spent = used(ctx.usage, running, user, scope, since, ctx.now)
                where = f"in {scope}" if scope else "lab-wide"
                parts.append(f"{_hours(spent)} of {_hours_text(hours)} GPU h {where}")
            if parts:
                text = f"{'; '.join(parts)} today; resets at {reset:%H:%M} UTC"
                out.append(RuleNote(self.name, user, course, text))
        return tuple(out)


class _BudgetPass(RulePass):
    def __init__(self, rule: BudgetRule, ctx: RuleContext) -> None:
        self.rule, self.ctx = rule, ctx
        self.since, self.reset = rule.day(ctx.now)
        self.running = tuple(ctx.running.values())

    def hold(self, entry: QueueEntry) -> Hold | None:
        for scope, hours in self.rule.budgets(entry.course):
            user: UserName = entry.key.user
            spent = used(self.ctx.usage, self.running, user, scope, self.since, self.ctx.now)
            if spent >= timedelta(hours=hours):
                what = f"the {_hours_text(hours)} GPU hours a day" + (
                    f" of {scope}" if scope else ""
                )
                detail = f"you have used {what}; your budget resets at {self.reset:%H:%M} UTC"
                return Hold(WaitReason.GPU_BUDGET, detail, self.reset - self.ctx.now)
        return None


def _hours(spent: timedelta) -> str:
    return f"{spent.total_seconds() / 3600:.1f}"


def _hours_text(hours: float) -> str:
    return f"{hours:g}"


def _positive_hours(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{where} must be a positive number of GPU hours, not {value!r}")
    return float(value)


def parse_budgets(data: Any) -> BudgetRule:
    """The ``budgets`` section of the policy file; ValueError names the key and the form."""
    if not isinstance(data, Mapping):
        raise ValueError("must be a mapping such as {gpu_hours_per_day: 4, courses: {ml-101: 2}}")
    unknown = sorted(str(k) for k in data if k not in KEYS)
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; accepted: {', '.join(KEYS)}")
    per_day = data.get("gpu_hours_per_day")
    courses = data.get("courses") or {}
    if not isinstance(courses, Mapping):
        raise ValueError("courses must map course slugs to GPU hours a day")
    reset = data.get("reset_hour_utc", 0)
    if isinstance(reset, bool) or not isinstance(reset, int) or not 0 <= reset <= 23:
        raise ValueError(f"reset_hour_utc must be a whole hour from 0 to 23, not {reset!r}")
    return BudgetRule(
        None if per_day is None else _positive_hours(per_day, "gpu_hours_per_day"),
        {CourseSlug(str(k)): _positive_hours(v, f"courses.{k}") for k, v in courses.items()},
        reset,
    )


register_rule("budgets", parse_budgets)
