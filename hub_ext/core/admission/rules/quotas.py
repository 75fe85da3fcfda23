"""The built-in rules: detached entries wait, per-course and per-slice-type quotas."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hub_ext.core.admission.model import CourseSlug, QueueEntry, WaitReason
from hub_ext.core.admission.rules.base import AdmissionRule, Hold, RuleContext, RulePass
from hub_ext.core.capacity.model import SliceType


@dataclass(frozen=True)
class DetachedRule(AdmissionRule):
    """An entry whose owner has not pressed Start again since a hub restart keeps its place
    but is not admitted."""

    name = "detached"

    def start(self, ctx: RuleContext) -> RulePass:
        return _DetachedPass()


class _DetachedPass(RulePass):
    def hold(self, entry: QueueEntry) -> Hold | None:
        return Hold(WaitReason.DETACHED) if entry.detached else None


@dataclass(frozen=True)
class CourseQuotaRule(AdmissionRule):
    """At most ``limits[course]`` sessions of a course run at once (running plus admitted)."""

    limits: Mapping[CourseSlug, int] = field(default_factory=dict, hash=False)
    name = "course-quota"

    def start(self, ctx: RuleContext) -> RulePass:
        return _CountingPass(_plain(self.limits), _plain(ctx.by_course), by_course=True)


@dataclass(frozen=True)
class SliceTypeQuotaRule(AdmissionRule):
    """At most ``limits[type]`` sessions of a slice type run at once; a held type falls back
    to the entry's next acceptable type."""

    limits: Mapping[SliceType, int] = field(default_factory=dict, hash=False)
    name = "slice-type-quota"

    def start(self, ctx: RuleContext) -> RulePass:
        return _CountingPass(_plain(self.limits), _plain(ctx.by_type), by_course=False)


class _CountingPass(RulePass):
    def __init__(self, limits: dict[str, int], counts: dict[str, int], by_course: bool) -> None:
        self.limits, self.counts, self.by_course = limits, counts, by_course

    def hold(self, entry: QueueEntry) -> Hold | None:
        if not self.by_course:
            return None
        limit = self.limits.get(entry.course)
        if limit is not None and self.counts.get(entry.course, 0) >= limit:
            return Hold(WaitReason.COURSE_QUOTA, entry.course)
        return None

    def hold_type(self, entry: QueueEntry, slice_type: SliceType) -> Hold | None:
        if self.by_course:
            return None
        limit = self.limits.get(slice_type)
        if limit is not None and self.counts.get(slice_type, 0) >= limit:
            return Hold(WaitReason.SLICE_TYPE_QUOTA, str(limit))
        return None

    def take(self, entry: QueueEntry, slice_type: SliceType) -> None:
        key = entry.course if self.by_course else slice_type
        self.counts[key] = self.counts.get(key, 0) + 1


def _plain(table: Mapping[CourseSlug, int] | Mapping[SliceType, int]) -> dict[str, int]:
    return {str(k): v for k, v in table.items()}
