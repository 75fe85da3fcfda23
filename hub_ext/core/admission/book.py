"""The admission engine: a live queue and running set, and one linear pass per decision.

The book keeps the queue sorted by ``(enqueued_at, key)``, the running sessions counted per course,
per slice type and per (course, group, slice type), and each slice type's guaranteed release
times sorted, all updated per event in O(log n) comparisons. :meth:`AdmissionBook.decide` then
needs one pass over the queue: entries are bucketed by priority (which depends on ``now``, because
lab-session windows open and close), admitted greedily in that order while the rules
(:mod:`hub_ext.core.admission.rules`: detached entries, quotas, configured rules such as a
GPU-hour budget), free slices and held seats allow, and the rest numbered per slice type.
Positions and ETAs come from counters and an index into the sorted release times, so a decision
over n entries costs O(n + r) for r reservations — no entry ever looks at another one.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TypeVar

from hub_ext.core.admission.model import (
    AdmissionDecision,
    AdmissionInput,
    AdmissionPolicy,
    Admitted,
    CourseSlug,
    EntryKey,
    Priority,
    QueueEntry,
    Reservation,
    RunningSession,
    Waiting,
    WaitReason,
    entries_by_key,
    entry_sort_key,
)
from hub_ext.core.admission.rules import (
    AdmissionRule,
    Hold,
    RuleContext,
    RuleNote,
    builtin_rules,
)
from hub_ext.core.admission.usage import UsageRecord
from hub_ext.core.capacity.model import SliceType

_GroupKey = tuple[CourseSlug, str, SliceType]
_Wait = tuple[QueueEntry, Priority, SliceType, WaitReason, str, timedelta | None]
_NO_TYPE = SliceType("")
_K = TypeVar("_K")


@dataclass
class _Hold:
    """Seats of one active reservation still held during this decision."""

    reservation: Reservation
    held: int
    deadline: datetime


class AdmissionBook:
    """Queue entries and running sessions; decisions for a given time and free capacity."""

    def __init__(self, policy: AdmissionPolicy) -> None:
        self.policy = policy
        self._entries: dict[EntryKey, QueueEntry] = {}
        self._order: list[tuple[datetime, EntryKey]] = []
        self._running: dict[EntryKey, RunningSession] = {}
        self._by_course: dict[CourseSlug, int] = {}
        self._by_type: dict[SliceType, int] = {}
        self._by_group: dict[_GroupKey, int] = {}
        self._releases: dict[SliceType, list[tuple[datetime, EntryKey]]] = {}
        self.usage: tuple[UsageRecord, ...] = ()
        """Finished GPU sessions (from the durable usage store) the rules may look at."""

    # -- events ---------------------------------------------------------------------------------

    def extend(self, entries: Iterable[QueueEntry], running: Iterable[RunningSession]) -> None:
        """Add many entries and sessions at once (bulk counting and one sort per structure).

        Of sessions sharing a key the one started last wins.
        """
        for entry in entries_by_key([*self._entries.values(), *entries]).values():
            self._entries[entry.key] = entry
        sessions = list(running)
        new = {s.key: s for s in sessions}
        if len(new) != len(sessions):  # duplicates: decide independently of input order
            new = {s.key: s for s in sorted(sessions, key=_session_order)}
        for key in self._running.keys() & new.keys():
            self.remove_running(key)
        for key in self._entries.keys() & new.keys():
            del self._entries[key]
        self._order = sorted((e.enqueued_at, e.key) for e in self._entries.values())
        self._running.update(new)
        values = new.values()
        _add_counts(self._by_course, Counter(map(attrgetter("course"), values)))
        _add_counts(self._by_type, Counter(map(attrgetter("slice_type"), values)))
        grouped = attrgetter("course", "group", "slice_type")
        _add_counts(self._by_group, Counter(grouped(s) for s in values if s.group is not None))
        touched: set[SliceType] = set()
        for session in values:
            release = session.release_at()
            if release is not None:
                self._releases.setdefault(session.slice_type, []).append((release, session.key))
                touched.add(session.slice_type)
        for slice_type in touched:
            self._releases[slice_type].sort()

    def add_entry(self, entry: QueueEntry) -> None:
        """Queue an entry. Pressing Start again (same key) keeps the earlier entry and its place;
        to queue a different profile for the same server, remove the old entry first."""
        old = self._entries.get(entry.key)
        if old is not None:
            if entry_sort_key(old) <= entry_sort_key(entry):
                return
            self.remove_entry(entry.key)
        self._entries[entry.key] = entry
        insort(self._order, (entry.enqueued_at, entry.key))

    def remove_entry(self, key: EntryKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            index = bisect_left(self._order, (entry.enqueued_at, key))
            del self._order[index]

    def add_running(self, session: RunningSession) -> None:
        """Record a running session (or its new last activity); it leaves the queue."""
        self.remove_entry(session.key)
        self.remove_running(session.key)
        self._running[session.key] = session
        self._count(session, +1)
        release = session.release_at()
        if release is not None:
            insort(self._releases.setdefault(session.slice_type, []), (release, session.key))

    def remove_running(self, key: EntryKey) -> None:
        session = self._running.pop(key, None)
        if session is None:
            return
        self._count(session, -1)
        release = session.release_at()
        if release is not None:
            releases = self._releases[session.slice_type]
            del releases[bisect_left(releases, (release, key))]

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, key: EntryKey) -> QueueEntry | None:
        return self._entries.get(key)

    def entries(self) -> dict[EntryKey, QueueEntry]:
        """A copy of the queue entries by key."""
        return dict(self._entries)

    def running(self) -> tuple[RunningSession, ...]:
        return tuple(self._running.values())

    # -- rules ----------------------------------------------------------------------------------

    def rules(self) -> tuple[AdmissionRule, ...]:
        """The built-in rules (detached entries, quotas), then the policy's configured ones."""
        return (*builtin_rules(self.policy.quotas), *self.policy.rules)

    def context(self, now: datetime) -> RuleContext:
        """What the rules see: the running sessions, their counts and the usage records."""
        return RuleContext(
            now, dict(self._running), dict(self._by_course), dict(self._by_type), self.usage
        )

    def notes(self, now: datetime) -> tuple[RuleNote, ...]:
        """The rules' lines for the admin view."""
        ctx = self.context(now)
        return tuple(note for rule in self.rules() for note in rule.notes(ctx))

    # -- decisions ------------------------------------------------------------------------------

    def decide(self, now: datetime, free: Mapping[SliceType, int]) -> AdmissionDecision:
        """Who is admitted now on which slice type; for everyone else position, ETA and reason."""
        holds, lab_groups = self._holds(now)
        held_by_type: dict[SliceType, int] = {}
        own_holds: dict[_GroupKey, list[_Hold]] = {}
        for hold in holds:
            r = hold.reservation
            held_by_type[r.slice_type] = held_by_type.get(r.slice_type, 0) + hold.held
            own_holds.setdefault((r.course, r.group, r.slice_type), []).append(hold)

        buckets: tuple[list[QueueEntry], ...] = ([], [], [])
        entries = self._entries
        for _, key in self._order:
            entry = entries[key]
            if not entry.course_member:
                buckets[Priority.FREE_PRACTICE].append(entry)
            elif entry.group is not None and (entry.course, entry.group) in lab_groups:
                buckets[Priority.LAB_SESSION].append(entry)
            else:
                buckets[Priority.COURSE_MEMBER].append(entry)

        passes = [rule.start(self.context(now)) for rule in self.rules()]
        free_left = {t: n for t, n in free.items() if n > 0}
        admitted: list[Admitted] = []
        waits: list[_Wait] = []

        for priority in Priority:
            for entry in buckets[priority]:
                course = entry.course
                held = _first_hold(p.hold(entry) for p in passes)
                if held is not None:
                    t0 = entry.slice_types[0] if entry.slice_types else _NO_TYPE
                    waits.append((entry, priority, t0, held.reason, held.detail, held.eta))
                    continue
                queue_type: SliceType | None = None
                reason = WaitReason.NO_SLICE_TYPE
                detail = ""
                eta: timedelta | None = None
                for t in entry.slice_types:
                    type_held = _first_hold(p.hold_type(entry, t) for p in passes)
                    if type_held is not None:
                        if queue_type is None and reason is WaitReason.NO_SLICE_TYPE:
                            reason, detail = type_held.reason, type_held.detail
                            eta = type_held.eta
                        continue
                    f = free_left.get(t, 0)
                    mine = own_holds.get((course, entry.group or "", t), ())
                    # A group member may take its own held seats; anybody else only what
                    # is left above all held seats.
                    if f <= 0 or (
                        f <= held_by_type.get(t, 0) and not any(h.held > 0 for h in mine)
                    ):
                        if queue_type is None:
                            queue_type, eta = t, None
                            if f > 0:
                                reason, detail = WaitReason.RESERVED, _held_groups(holds, t)
                            else:
                                reason, detail = WaitReason.NO_FREE_SLICE, ""
                        continue
                    claimed: Reservation | None = None
                    for hold in mine:
                        if hold.held > 0:
                            hold.held -= 1
                            held_by_type[t] -= 1
                            claimed = hold.reservation
                            break
                    free_left[t] = f - 1
                    for p in passes:
                        p.take(entry, t)
                    admitted.append(Admitted(entry.key, t, priority, claimed))
                    break
                else:
                    if queue_type is None:
                        queue_type = entry.slice_types[0] if entry.slice_types else _NO_TYPE
                    waits.append((entry, priority, queue_type, reason, detail, eta))

        return AdmissionDecision(now, tuple(admitted), self._number(now, waits, holds))

    # -- internals ------------------------------------------------------------------------------

    def _number(
        self,
        now: datetime,
        waits: list[_Wait],
        holds: list[_Hold],
    ) -> tuple[Waiting, ...]:
        totals: dict[SliceType, int] = {}
        for _, _, t, _, _, _ in waits:
            totals[t] = totals.get(t, 0) + 1
        deadlines: dict[SliceType, datetime] = {}
        for hold in holds:
            t = hold.reservation.slice_type
            if hold.held > 0 and (t not in deadlines or hold.deadline < deadlines[t]):
                deadlines[t] = hold.deadline
        seen: dict[SliceType, int] = {}
        needing: dict[SliceType, int] = {}
        out: list[Waiting] = []
        zero = timedelta(0)
        for entry, priority, t, reason, detail, rule_eta in waits:
            position = seen.get(t, 0) + 1
            seen[t] = position
            eta: timedelta | None = rule_eta
            if reason in (WaitReason.NO_FREE_SLICE, WaitReason.RESERVED):
                # Entries held back by a quota do not take the releases ahead of this one.
                k = needing.get(t, 0) + 1
                needing[t] = k
                releases = self._releases.get(t, ())
                if k <= len(releases):
                    eta = max(zero, releases[k - 1][0] - now)
                if reason is WaitReason.RESERVED and t in deadlines:
                    until = max(zero, deadlines[t] - now)
                    eta = until if eta is None else min(eta, until)
            out.append(Waiting(entry.key, t, priority, position, totals[t], reason, eta, detail))
        return tuple(out)

    def _holds(self, now: datetime) -> tuple[list[_Hold], set[tuple[CourseSlug, str]]]:
        """Active reservations with their unclaimed seats, and the groups in a lab session."""
        claim = self.policy.claim_window
        active = sorted(
            (r for r in self.policy.reservations if r.active(now)),
            key=lambda r: (r.start, r.course, r.group, r.slice_type, r.end, r.seats),
        )
        claimed = {
            key: self._by_group.get(key, 0)
            for key in {(r.course, r.group, r.slice_type) for r in active}
        }
        holds: list[_Hold] = []
        for r in active:
            key = (r.course, r.group, r.slice_type)
            taken = min(claimed[key], max(0, r.seats))
            claimed[key] -= taken
            deadline = r.start + claim
            held = max(0, r.seats - taken) if now < deadline else 0
            holds.append(_Hold(r, held, deadline))
        return holds, {(r.course, r.group) for r in active}

    def _count(self, session: RunningSession, sign: int) -> None:
        self._by_course[session.course] = self._by_course.get(session.course, 0) + sign
        self._by_type[session.slice_type] = self._by_type.get(session.slice_type, 0) + sign
        if session.group is not None:
            key = (session.course, session.group, session.slice_type)
            self._by_group[key] = self._by_group.get(key, 0) + sign


def _session_order(session: RunningSession) -> tuple[EntryKey, datetime, datetime]:
    return session.key, session.started_at, session.last_activity


def _add_counts(target: dict[_K, int], counts: Counter[_K]) -> None:
    for key, n in counts.items():
        target[key] = target.get(key, 0) + n


def _held_groups(holds: list[_Hold], slice_type: SliceType) -> str:
    names = sorted(
        {
            h.reservation.group
            for h in holds
            if h.held > 0 and h.reservation.slice_type == slice_type
        }
    )
    return ", ".join(names)


def _first_hold(holds: Iterable[Hold | None]) -> Hold | None:
    return next((h for h in holds if h is not None), None)


def decide(state: AdmissionInput) -> AdmissionDecision:
    """The decision for one snapshot of the queue (see :class:`AdmissionBook` for the live form)."""
    book = AdmissionBook(state.policy)
    book.extend(state.queue, state.running)
    book.usage = state.usage
    return book.decide(state.now, state.free)


def rule_notes(state: AdmissionInput) -> tuple[RuleNote, ...]:
    """The admission rules' lines for the admin view, for one snapshot."""
    book = AdmissionBook(state.policy)
    book.extend((), state.running)
    book.usage = state.usage
    return book.notes(state.now)
