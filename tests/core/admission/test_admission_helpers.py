"""Builders for admission tests (no tests of its own)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hub_ext.core.admission.model import (
    AdmissionInput,
    AdmissionPolicy,
    CourseSlug,
    EntryKey,
    QueueEntry,
    Quotas,
    Reservation,
    RunningSession,
    UserName,
)
from hub_ext.core.capacity.model import SliceType

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
G1 = SliceType("1g.10gb")
G2 = SliceType("2g.20gb")


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def entry(
    user: str,
    at: float = 0,
    course: str = "ml-101",
    group: str | None = None,
    types: tuple[str, ...] = ("1g.10gb",),
    member: bool = True,
) -> QueueEntry:
    return QueueEntry(
        EntryKey(UserName(user)),
        CourseSlug(course),
        group,
        tuple(SliceType(t) for t in types),
        T0 - minutes(30) + minutes(at),
        member,
    )


def running(
    user: str,
    course: str = "ml-101",
    group: str | None = None,
    slice_type: str = "1g.10gb",
    release_in: float | None = None,
    runtime_hours: float | None = 8,
) -> RunningSession:
    """A session whose idle timeout ends ``release_in`` minutes from T0 (None: no limit)."""
    idle = None if release_in is None else minutes(60 + release_in)
    return RunningSession(
        EntryKey(UserName(user)),
        CourseSlug(course),
        group,
        SliceType(slice_type),
        started_at=T0 - minutes(120),
        last_activity=T0 - minutes(60),
        idle_timeout=idle,
        max_runtime=None if runtime_hours is None else timedelta(hours=runtime_hours),
    )


def reservation(
    group: str = "A",
    seats: int = 2,
    start: float = -5,
    length: float = 90,
    course: str = "ml-101",
    slice_type: str = "1g.10gb",
) -> Reservation:
    """A lab session that started ``start`` minutes from T0 (negative: already started)."""
    begin = T0 + minutes(start)
    return Reservation(
        CourseSlug(course), group, SliceType(slice_type), seats, begin, begin + minutes(length)
    )


def state(
    free: dict[str, int],
    queue: list[QueueEntry],
    running_: list[RunningSession] | None = None,
    reservations: list[Reservation] | None = None,
    courses: dict[str, int] | None = None,
    slice_types: dict[str, int] | None = None,
    now: datetime = T0,
) -> AdmissionInput:
    quotas = Quotas.from_mapping({"courses": courses or {}, "slice_types": slice_types or {}})
    policy = AdmissionPolicy(quotas, tuple(reservations or ()), minutes(10))
    return AdmissionInput(
        now,
        {SliceType(k): v for k, v in free.items()},
        tuple(queue),
        tuple(running_ or ()),
        policy,
    )
