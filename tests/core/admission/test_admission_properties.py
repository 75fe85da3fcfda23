"""Admission invariants over random queues, capacities, quotas and reservations."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from test_admission_helpers import T0, entry, reservation, running, state

from hub_ext.core.admission.book import AdmissionBook, decide
from hub_ext.core.admission.model import (
    AdmissionDecision,
    AdmissionInput,
    Priority,
    QueueEntry,
    WaitReason,
    entries_by_key,
)

TYPES = ["1g.10gb", "2g.20gb", "3g.40gb"]
COURSES = ["ml-101", "cv-201"]


@st.composite
def entries(draw: st.DrawFn) -> QueueEntry:
    types = draw(st.lists(st.sampled_from(TYPES), unique=True, max_size=3))
    return entry(
        draw(st.sampled_from([f"s{i:02d}" for i in range(25)])),
        draw(st.integers(0, 20)),
        draw(st.sampled_from(COURSES)),
        draw(st.sampled_from([None, "A", "B"])),
        tuple(types),
        draw(st.integers(0, 3)) > 0,
    )


@st.composite
def inputs(draw: st.DrawFn, with_limits: bool = True) -> AdmissionInput:
    free = draw(st.dictionaries(st.sampled_from(TYPES), st.integers(0, 6)))
    queue = draw(st.lists(entries(), max_size=30))
    sessions = [
        running(
            f"r{i}",
            draw(st.sampled_from(COURSES)),
            draw(st.sampled_from([None, "A", "B"])),
            draw(st.sampled_from(TYPES)),
            draw(st.one_of(st.none(), st.integers(-5, 120))),
        )
        for i in range(draw(st.integers(0, 6)))
    ]
    if not with_limits:
        return state(free, queue, sessions)
    reservations = [
        reservation(
            draw(st.sampled_from(["A", "B"])),
            draw(st.integers(0, 4)),
            draw(st.integers(-30, 10)),
            draw(st.integers(10, 120)),
            draw(st.sampled_from(COURSES)),
            draw(st.sampled_from(TYPES)),
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    courses = draw(st.dictionaries(st.sampled_from(COURSES), st.integers(0, 8)))
    slice_types = draw(st.dictionaries(st.sampled_from(TYPES), st.integers(0, 8)))
    return state(free, queue, sessions, reservations, courses, slice_types)


def order_key(decision: AdmissionDecision, queue: tuple[QueueEntry, ...]) -> dict:  # type: ignore[type-arg]
    by_key = entries_by_key(queue)
    out = {}
    for item in (*decision.admitted, *decision.waiting):
        e = by_key[item.key]
        out[item.key] = (item.priority, e.enqueued_at, e.key)
    return out


@settings(max_examples=200, deadline=None)
@given(inputs())
def test_invariants(data: AdmissionInput) -> None:
    decision = decide(data)
    keys = [i.key for i in (*decision.admitted, *decision.waiting)]
    # Every distinct entry gets exactly one answer; nobody is booked twice.
    assert sorted(keys) == sorted({e.key for e in data.queue})
    # Never more admissions of a type than it has free slices.
    for slice_type, n in decision.admitted_by_type().items():
        assert n <= data.free.get(slice_type, 0)
    # Admissions only on a type the entry accepts.
    unique = entries_by_key(data.queue).values()
    accepted = {e.key: set(e.slice_types) for e in unique}
    assert all(a.slice_type in accepted[a.key] for a in decision.admitted)
    # Quotas hold for running plus admitted (unless already exceeded by running sessions).
    quotas = data.policy.quotas
    running_courses = Counter(s.course for s in data.running)
    running_types = Counter(s.slice_type for s in data.running)
    courses = {e.key: e.course for e in unique}
    admitted_courses = Counter(courses[a.key] for a in decision.admitted)
    for course, limit in quotas.per_course.items():
        if admitted_courses[course]:
            assert running_courses[course] + admitted_courses[course] <= limit
    for slice_type, limit in quotas.per_slice_type.items():
        n = decision.admitted_by_type().get(slice_type, 0)
        if n:
            assert running_types[slice_type] + n <= limit
    # Seats held for a lab group are never given to anybody else.
    if len(data.policy.reservations) == 1:
        (r,) = data.policy.reservations
        if r.start <= data.now < r.start + data.policy.claim_window:
            group_running = sum(
                1
                for s in data.running
                if (s.course, s.group, s.slice_type) == (r.course, r.group, r.slice_type)
            )
            held = max(0, r.seats - group_running)
            groups = {e.key: (e.course, e.group) for e in unique}
            others = sum(
                1
                for a in decision.admitted
                if a.slice_type == r.slice_type and groups[a.key] != (r.course, r.group)
            )
            assert others <= max(0, data.free.get(r.slice_type, 0) - held)
    # Positions in each slice type's queue are 1..n in priority/FIFO order, n = waiting.
    order = order_key(decision, data.queue)
    per_type: dict[str, list] = {}  # type: ignore[type-arg]
    for w in decision.waiting:
        per_type.setdefault(w.slice_type, []).append(w)
    for waits in per_type.values():
        assert [w.position for w in waits] == list(range(1, len(waits) + 1))
        assert {w.waiting for w in waits} == {len(waits)}
        assert [order[w.key] for w in waits] == sorted(order[w.key] for w in waits)
    # Deterministic: the same answer again, and whatever order the inputs come in.
    assert decide(data) == decision
    rng = random.Random(len(data.queue))
    shuffled = list(data.queue)
    rng.shuffle(shuffled)
    again = AdmissionInput(data.now, data.free, tuple(shuffled), data.running[::-1], data.policy)
    assert decide(again) == decision


@settings(max_examples=200, deadline=None)
@given(inputs(with_limits=False))
def test_fifo_within_priority_without_quotas_or_reservations(data: AdmissionInput) -> None:
    decision = decide(data)
    order = order_key(decision, data.queue)
    types = {e.key: set(e.slice_types) for e in entries_by_key(data.queue).values()}
    for wait in decision.waiting:
        assert wait.reason in (WaitReason.NO_FREE_SLICE, WaitReason.NO_SLICE_TYPE)
        for adm in decision.admitted:
            later_same_priority = order[adm.key] > order[wait.key] and adm.priority == wait.priority
            # A later entry of the same priority never took a type the waiting one accepts.
            assert not (later_same_priority and adm.slice_type in types[wait.key])
    # Higher priorities are served first: no admitted entry is behind a waiting one that
    # accepts its slice type and has a higher priority.
    for wait in decision.waiting:
        for adm in decision.admitted:
            if adm.slice_type in types[wait.key]:
                assert adm.priority <= wait.priority


@settings(max_examples=100, deadline=None)
@given(inputs(), st.data())
def test_live_book_equals_one_shot(data: AdmissionInput, more: st.DataObject) -> None:
    """Feeding the book event by event (with removals) decides like a fresh batch."""
    book = AdmissionBook(data.policy)
    kept = []
    for e in entries_by_key(data.queue).values():
        book.add_entry(e)
        kept.append(e)
    for session in data.running:
        book.add_running(session)
    queue_keys = sorted({e.key for e in kept})
    gone = more.draw(st.lists(st.sampled_from(queue_keys), max_size=3)) if queue_keys else []
    for key in gone:
        book.remove_entry(key)
    rest = tuple(e for e in kept if e.key not in set(gone))
    # Running sessions leave the queue, as the book does on add_running.
    running_keys = {s.key for s in data.running}
    rest = tuple(e for e in rest if e.key not in running_keys)
    expected = decide(AdmissionInput(data.now, data.free, rest, data.running, data.policy))
    assert book.decide(T0, data.free) == expected
    assert all(a.priority in Priority for a in expected.admitted)
