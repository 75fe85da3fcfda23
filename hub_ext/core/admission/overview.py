"""A read-only picture of slice admission for the admin view and the metrics.

:func:`build_overview` combines one capacity snapshot, the pods holding slices, the last
admission decision, the queue entries and the policy into an :class:`AdmissionOverview`: slices per
node and slice type with the users holding them, the queue per course with positions, and the lab
sessions whose seats are held now. Everything is a frozen dataclass; nothing refers back to live
state.

The Kubernetes API does not say which GPU (or which MIG instance) of a node a pod got; slices are
therefore listed per node and slice type, with the holders of that node's slices of that type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub_ext.core.admission.model import (
    AdmissionDecision,
    AdmissionPolicy,
    Admitted,
    CourseSlug,
    EntryKey,
    Priority,
    QueueEntry,
    RunningSession,
    UserName,
    WaitReason,
)
from hub_ext.core.admission.rules import RuleNote
from hub_ext.core.capacity.model import Capacity, SliceCount, SliceType


@dataclass(frozen=True)
class SliceHolder:
    """A server holding (or, in flight, about to hold) one slice."""

    user: UserName
    server_name: str
    course: CourseSlug
    group: str | None
    pod: str
    slice_type: SliceType
    node: str | None
    """None while the admitted pod is not bound to a node yet."""
    since: datetime | None


@dataclass(frozen=True)
class NodeSlices:
    """One slice type on one node: counts and the servers holding its slices."""

    node: str
    zone: str
    slice_type: SliceType
    total: int
    used: int
    free: int
    holders: tuple[SliceHolder, ...]
    ready: bool = True
    """False while the node is NotReady (or gone): its holders are listed, its slices are not
    counted as capacity, and its servers are lost if the node does not come back."""


@dataclass(frozen=True)
class ZoneSlices:
    """One slice type in one zone (server room)."""

    slice_type: SliceType
    zone: str
    total: int
    used: int
    free: int


@dataclass(frozen=True)
class QueuedServer:
    """One student waiting for a slice."""

    user: UserName
    server_name: str
    course: CourseSlug
    group: str | None
    slice_type: SliceType
    position: int
    waiting: int
    priority: Priority
    reason: WaitReason
    eta: timedelta | None
    enqueued_at: datetime


@dataclass(frozen=True)
class CourseQueue:
    """The students of one course waiting, in queue order per slice type."""

    course: CourseSlug
    entries: tuple[QueuedServer, ...]


@dataclass(frozen=True)
class ActiveReservation:
    """A lab session in its window: seats claimed by its group and seats still held."""

    course: CourseSlug
    group: str
    slice_type: SliceType
    seats: int
    claimed: int
    held: int
    start: datetime
    end: datetime
    claim_deadline: datetime


@dataclass(frozen=True)
class AdmissionOverview:
    now: datetime
    nodes: tuple[NodeSlices, ...]
    zones: tuple[ZoneSlices, ...]
    in_flight: tuple[SliceHolder, ...]
    """Admitted servers whose pod is not bound to a node yet."""
    queues: tuple[CourseQueue, ...]
    reservations: tuple[ActiveReservation, ...]
    notes: tuple[RuleNote, ...] = ()
    """The admission rules' lines for the admin view (for example GPU-hour budgets)."""

    def queue_lengths(self) -> dict[tuple[SliceType, CourseSlug], int]:
        """Waiting students per (slice type, course)."""
        out: dict[tuple[SliceType, CourseSlug], int] = {}
        for queue in self.queues:
            for entry in queue.entries:
                key = (entry.slice_type, queue.course)
                out[key] = out.get(key, 0) + 1
        return out

    def holder(self, user: str, server_name: str = "") -> SliceHolder | None:
        """Where a user's server holds its slice, if it does."""
        for row in self.nodes:
            for held in row.holders:
                if held.user == user and held.server_name == server_name:
                    return held
        for held in self.in_flight:
            if held.user == user and held.server_name == server_name:
                return held
        return None


@dataclass(frozen=True)
class OverviewInput:
    """What :func:`build_overview` needs (one consistent snapshot)."""

    now: datetime
    capacity: Capacity
    node_zones: Mapping[str, str]
    holders: tuple[SliceHolder, ...]
    decision: AdmissionDecision | None
    entries: Mapping[EntryKey, QueueEntry]
    running: tuple[RunningSession, ...]
    policy: AdmissionPolicy
    not_ready: frozenset[str] = frozenset()
    """Nodes that are not Ready now (or no longer exist) but still have pods bound."""
    notes: tuple[RuleNote, ...] = ()
    """The admission rules' lines (:meth:`~hub_ext.core.admission.rules.AdmissionRule.notes`)."""


def _count_rows(
    table: Mapping[str, Mapping[SliceType, SliceCount]],
) -> list[tuple[str, SliceType, SliceCount]]:
    return [
        (key, slice_type, count)
        for key, counts in sorted(table.items())
        for slice_type, count in sorted(counts.items())
    ]


def build_overview(data: OverviewInput) -> AdmissionOverview:
    bound: dict[tuple[str, SliceType], list[SliceHolder]] = {}
    flight: list[SliceHolder] = []
    for held in sorted(data.holders, key=lambda h: (h.node or "", h.slice_type, h.user, h.pod)):
        if held.node is None:
            flight.append(held)
        else:
            bound.setdefault((held.node, held.slice_type), []).append(held)
    rows = [
        NodeSlices(
            node,
            data.node_zones.get(node, ""),
            slice_type,
            count.capacity,
            count.used,
            count.free,
            tuple(bound.pop((node, slice_type), ())),
            node not in data.not_ready,
        )
        for node, slice_type, count in _count_rows(data.capacity.by_node)
    ]
    # holders on a node the capacity no longer counts (NotReady, gone): shown, not dropped
    for (node, slice_type), lost in sorted(bound.items()):
        zone = data.node_zones.get(node, "")
        rows.append(NodeSlices(node, zone, slice_type, 0, len(lost), 0, tuple(lost), False))
    nodes = tuple(sorted(rows, key=lambda r: (r.node, r.slice_type)))
    zones = tuple(
        ZoneSlices(slice_type, zone, count.capacity, count.used, count.free)
        for zone, slice_type, count in _count_rows(data.capacity.by_zone)
    )
    return AdmissionOverview(
        data.now, nodes, zones, tuple(flight), _queues(data), _reservations(data), data.notes
    )


def _queues(data: OverviewInput) -> tuple[CourseQueue, ...]:
    if data.decision is None:
        return ()
    per_course: dict[CourseSlug, list[QueuedServer]] = {}
    for wait in data.decision.waiting:
        entry = data.entries.get(wait.key)
        if entry is None:
            continue
        per_course.setdefault(entry.course, []).append(
            QueuedServer(
                wait.key.user,
                wait.key.server_name,
                entry.course,
                entry.group,
                wait.slice_type,
                wait.position,
                wait.waiting,
                wait.priority,
                wait.reason,
                wait.eta,
                entry.enqueued_at,
            )
        )
    return tuple(
        CourseQueue(course, tuple(sorted(rows, key=lambda r: (r.slice_type, r.position))))
        for course, rows in sorted(per_course.items())
    )


def _reservations(data: OverviewInput) -> tuple[ActiveReservation, ...]:
    claimed: dict[tuple[CourseSlug, str, SliceType], int] = {}
    for session in data.running:
        if session.group is not None:
            key = (session.course, session.group, session.slice_type)
            claimed[key] = claimed.get(key, 0) + 1
    out = []
    window = data.policy.claim_window
    for r in sorted(
        (r for r in data.policy.reservations if r.active(data.now)),
        key=lambda r: (r.start, r.course, r.group, r.slice_type),
    ):
        key = (r.course, r.group, r.slice_type)
        taken = min(claimed.get(key, 0), max(0, r.seats))
        claimed[key] = claimed.get(key, 0) - taken
        deadline = r.start + window
        held = max(0, r.seats - taken) if data.now < deadline else 0
        out.append(
            ActiveReservation(
                r.course, r.group, r.slice_type, r.seats, taken, held, r.start, r.end, deadline
            )
        )
    return tuple(out)


def holders_of(
    sessions: Iterable[tuple[RunningSession, str, str | None]],
) -> tuple[SliceHolder, ...]:
    """Slice holders from running sessions with their pod name and node."""
    return tuple(
        SliceHolder(
            s.key.user, s.key.server_name, s.course, s.group, pod, s.slice_type, node, s.started_at
        )
        for s, pod, node in sessions
    )


@dataclass(frozen=True)
class QueueExit:
    """A student leaving the queue; ``outcome`` is admitted, cancelled or timeout."""

    key: EntryKey
    course: CourseSlug
    slice_type: SliceType
    waited: timedelta
    outcome: str


@dataclass(frozen=True)
class QueueChange:
    """The queue before and after one decision pass."""

    now: datetime
    before: Mapping[EntryKey, QueueEntry]
    after: Mapping[EntryKey, QueueEntry]
    detached: frozenset[EntryKey] | set[EntryKey]
    """Entries that left because their hub restarted: they keep their place, no exit."""
    admitted: tuple[Admitted, ...]
    admitted_ok: frozenset[EntryKey] | set[EntryKey]
    """The admissions that took effect (the API server accepted them)."""


def queue_exits(change: QueueChange, outcomes: Mapping[EntryKey, str]) -> list[QueueExit]:
    """Who left the queue in one pass and why (``outcomes`` names a reason noted beforehand,
    such as ``timeout``; any other departure is ``cancelled``)."""
    now = change.now
    exits = [
        QueueExit(
            a.key,
            change.after[a.key].course,
            a.slice_type,
            now - change.after[a.key].enqueued_at,
            "admitted",
        )
        for a in change.admitted
        if a.key in change.admitted_ok and a.key in change.after
    ]
    for key, entry in change.before.items():
        if key in change.after or key in change.admitted_ok or key in change.detached:
            continue
        first = entry.slice_types[0] if entry.slice_types else SliceType("")
        outcome = outcomes.get(key, "cancelled")
        exits.append(QueueExit(key, entry.course, first, now - entry.enqueued_at, outcome))
    return exits
