"""Slice admission policy: who gets a free GPU slice now, and where everybody else stands.

Inputs are free slices per slice type (from the capacity model), the queue, quotas, lab-session
reservations and the running sessions; the output is an :class:`AdmissionDecision`. The policy:

* priority: a lab-session participant (a member of the course's seminar group whose session
  window contains ``now``) before a course member before free practice; FIFO within a priority
  (``enqueued_at``, then user and server name as a stable tiebreak);
* each entry tries its acceptable slice types in its declared order (fallbacks);
* per-course and per-slice-type quotas cap the sessions running at once (running plus admitted);
* during a reservation's window its unclaimed seats are held for its course and group; seats not
  claimed ``claim_window`` after the start are released to everybody;
* never more admissions of a slice type than it has free slices;
* a detached entry (its hub restarted, its owner has not pressed Start again) keeps its place
  and counts in the positions of those behind it, but is not admitted;
* the result depends only on the inputs, never on their order.

The engine lives in :mod:`hub_ext.core.admission.book`; :func:`~hub_ext.core.admission.book.decide`
is its one-shot form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum, IntEnum
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple, NewType, TypeVar

from hub_ext.core.capacity.model import SliceType

if TYPE_CHECKING:  # the rules and usage records are built on this model
    from hub_ext.core.admission.rules.base import AdmissionRule
    from hub_ext.core.admission.usage import UsageRecord

UserName = NewType("UserName", str)
CourseSlug = NewType("CourseSlug", str)
_Key = TypeVar("_Key", bound=str)


class Priority(IntEnum):
    """Lower values go first."""

    LAB_SESSION = 0
    COURSE_MEMBER = 1
    FREE_PRACTICE = 2


class WaitReason(Enum):
    NO_FREE_SLICE = "no-free-slice"
    RESERVED = "reserved-for-lab-session"
    COURSE_QUOTA = "course-quota-reached"
    SLICE_TYPE_QUOTA = "slice-type-quota-reached"
    NO_SLICE_TYPE = "no-acceptable-slice-type"
    DETACHED = "owner-away"
    """The student's hub restarted and the student has not pressed Start again yet."""
    GPU_BUDGET = "gpu-budget-spent"
    """The student used up a GPU-hour budget (:mod:`hub_ext.core.admission.rules.budget`)."""


class EntryKey(NamedTuple):
    """One server of one user: the identity of a queue entry and of a running session.

    A named tuple rather than a dataclass: it is hashed and compared on every queue operation,
    and tuples do both in C.
    """

    user: UserName
    server_name: str = ""


@dataclass(frozen=True)
class QueueEntry:
    key: EntryKey
    course: CourseSlug
    group: str | None
    slice_types: tuple[SliceType, ...]
    """Acceptable slice types, most preferred first."""
    enqueued_at: datetime
    course_member: bool = True
    detached: bool = False
    """The hub that queued it restarted and its owner has not pressed Start again: the entry
    keeps its place and counts in everybody's position, but is not admitted (a free slice goes
    to the next student who is there) until its owner is back."""


@dataclass(frozen=True)
class Quotas:
    """Maximum sessions running at once, per course and per slice type (absent: unlimited)."""

    per_course: Mapping[CourseSlug, int] = field(default_factory=dict, hash=False)
    per_slice_type: Mapping[SliceType, int] = field(default_factory=dict, hash=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Mapping[str, int]]) -> Quotas:
        """Quotas from ``{"courses": {slug: max}, "slice_types": {type: max}}``.

        Raises ValueError naming the offending key and the accepted form.
        """
        unknown = sorted(set(data) - {"courses", "slice_types"})
        if unknown:
            raise ValueError(
                f"admission quotas: unknown key {unknown[0]!r}; accepted keys: courses, slice_types"
            )
        tables: dict[str, dict[str, int]] = {}
        for section in ("courses", "slice_types"):
            table: dict[str, int] = {}
            for name, limit in dict(data.get(section, {})).items():
                if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                    raise ValueError(
                        f"admission quotas: {section}.{name} must be a whole number >= 0, "
                        f"not {limit!r}"
                    )
                table[str(name)] = limit
            tables[section] = table
        return cls(
            {CourseSlug(k): v for k, v in tables["courses"].items()},
            {SliceType(k): v for k, v in tables["slice_types"].items()},
        )

    def merged(self, other: Quotas) -> Quotas:
        """Both sets of limits; where both name a course or slice type, the smaller applies."""

        def low(a: Mapping[_Key, int], b: Mapping[_Key, int]) -> dict[_Key, int]:
            out = dict(a)
            for key, limit in b.items():
                out[key] = min(limit, out.get(key, limit))
            return out

        return Quotas(
            low(self.per_course, other.per_course), low(self.per_slice_type, other.per_slice_type)
        )


@dataclass(frozen=True)
class Reservation:
    """One occurrence of a lab session: ``seats`` slices of a type for a course's group."""

    course: CourseSlug
    group: str
    slice_type: SliceType
    seats: int
    start: datetime
    end: datetime

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end


@dataclass(frozen=True)
class RunningSession:
    """A server holding a slice; its limits give the latest time it will release the slice."""

    key: EntryKey
    course: CourseSlug
    group: str | None
    slice_type: SliceType
    started_at: datetime
    last_activity: datetime
    idle_timeout: timedelta | None = None
    max_runtime: timedelta | None = None

    def release_at(self) -> datetime | None:
        """The time by which the culler or the runtime limit stops it; None if unbounded."""
        idle, runtime = self.idle_timeout, self.max_runtime
        if idle is None:
            return None if runtime is None else self.started_at + runtime
        culled = self.last_activity + idle
        if runtime is None:
            return culled
        ended = self.started_at + runtime
        return culled if culled < ended else ended


@dataclass(frozen=True)
class AdmissionPolicy:
    quotas: Quotas = field(default_factory=Quotas)
    reservations: tuple[Reservation, ...] = ()
    claim_window: timedelta = timedelta(minutes=10)
    rules: tuple[AdmissionRule, ...] = ()
    """Configured rules applied after the built-in ones (:mod:`hub_ext.core.admission.rules`)."""


@dataclass(frozen=True)
class AdmissionInput:
    now: datetime
    free: Mapping[SliceType, int] = field(hash=False)
    queue: tuple[QueueEntry, ...] = ()
    running: tuple[RunningSession, ...] = ()
    policy: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    usage: tuple[UsageRecord, ...] = ()
    """Finished GPU sessions from the durable usage store (for usage-based rules)."""


@dataclass(frozen=True)
class Admitted:
    key: EntryKey
    slice_type: SliceType
    priority: Priority
    reservation: Reservation | None = None
    """The reservation whose held seat this admission claims, if any."""


@dataclass(frozen=True)
class Waiting:
    key: EntryKey
    slice_type: SliceType
    """The queue the entry waits in: its first acceptable type not blocked by a quota."""
    priority: Priority
    position: int
    """1-based position in that slice type's queue."""
    waiting: int
    """How many entries wait in that queue."""
    reason: WaitReason
    eta: timedelta | None
    """Time until a slice should be free for it; None when no limit guarantees one."""
    detail: str = ""
    """The quota's course or limit, or the reservation's group, for the message."""


@dataclass(frozen=True)
class AdmissionDecision:
    now: datetime
    admitted: tuple[Admitted, ...]
    waiting: tuple[Waiting, ...]

    @cached_property
    def _by_key(self) -> dict[EntryKey, Admitted | Waiting]:
        index: dict[EntryKey, Admitted | Waiting] = {w.key: w for w in self.waiting}
        index.update((a.key, a) for a in self.admitted)
        return index

    def status(self, key: EntryKey) -> Admitted | Waiting | None:
        """The answer for one entry (built into an index on first use)."""
        return self._by_key.get(key)

    def admitted_by_type(self) -> dict[SliceType, int]:
        out: dict[SliceType, int] = {}
        for item in self.admitted:
            out[item.slice_type] = out.get(item.slice_type, 0) + 1
        return out


EntrySortKey = tuple[datetime, tuple[SliceType, ...], str, str, bool]


def entry_sort_key(entry: QueueEntry) -> EntrySortKey:
    """A total order on entries with the same key (the earliest enqueued one wins)."""
    return (
        entry.enqueued_at,
        entry.slice_types,
        entry.course,
        entry.group or "",
        not entry.course_member,
    )


def entries_by_key(entries: Iterable[QueueEntry]) -> dict[EntryKey, QueueEntry]:
    """Entries with duplicate keys collapsed to the earliest enqueued one."""
    out: dict[EntryKey, QueueEntry] = {}
    for entry in entries:
        old = out.get(entry.key)
        if old is None or entry_sort_key(entry) < entry_sort_key(old):
            out[entry.key] = entry
    return out
