"""GPU time used by students: the durable record a usage-based admission rule reads.

A :class:`UsageRecord` is one finished stretch of a server holding a GPU slice (from admission
to the moment its pod was gone). The admission controller writes them to a durable store (see
:mod:`hub_ext.adapters.k8s.usage`), so that they survive the pod's deletion and a hub restart,
and hands them to the engine with every decision; the sessions still running count up to
``now``. Everything here is pure: the clock is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub_ext.core.admission.model import CourseSlug, RunningSession, UserName
from hub_ext.core.capacity.model import SliceType


@dataclass(frozen=True)
class UsageRecord:
    """``user``'s server of ``course`` held a ``slice_type`` slice from ``start`` to ``end``."""

    user: UserName
    course: CourseSlug
    slice_type: SliceType
    start: datetime
    end: datetime


def ended_sessions(
    before: Iterable[RunningSession], after: Iterable[RunningSession], now: datetime
) -> tuple[UsageRecord, ...]:
    """The sessions of ``before`` that are not in ``after`` any more, as records ending ``now``
    (a session that restarted under the same key with a later start counts as ended too)."""
    still = {(s.key, s.started_at) for s in after}
    return tuple(
        UsageRecord(s.key.user, s.course, s.slice_type, s.started_at, max(now, s.started_at))
        for s in before
        if (s.key, s.started_at) not in still
    )


def used(
    records: Iterable[UsageRecord],
    running: Iterable[RunningSession],
    user: UserName,
    course: CourseSlug | None,
    since: datetime,
    now: datetime,
) -> timedelta:
    """GPU time ``user`` used between ``since`` and ``now`` (in ``course``, or in all courses
    for None): finished records plus running sessions up to ``now``."""
    total = timedelta(0)
    spans = [(r.user, r.course, r.start, r.end) for r in records]
    spans += [(s.key.user, s.course, s.started_at, now) for s in running]
    for who, what, start, end in spans:
        if who != user or (course is not None and what != course):
            continue
        lo, hi = max(start, since), min(end, now)
        if hi > lo:
            total += hi - lo
    return total


def prune(records: Iterable[UsageRecord], keep_after: datetime) -> tuple[UsageRecord, ...]:
    """The records that end after ``keep_after`` (older ones no rule looks at any more)."""
    return tuple(r for r in records if r.end > keep_after)
