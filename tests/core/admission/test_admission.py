"""Slice admission policy: truth tables for priorities, quotas, reservations, fallbacks, ETA."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from test_admission_helpers import (
    G1,
    G2,
    T0,
    entry,
    minutes,
    reservation,
    running,
    state,
)

from hub_ext.core.admission.book import AdmissionBook, decide
from hub_ext.core.admission.model import (
    AdmissionInput,
    Admitted,
    EntryKey,
    Priority,
    Quotas,
    UserName,
    Waiting,
    WaitReason,
)
from hub_ext.core.capacity.index import CapacityIndex
from hub_ext.core.capacity.model import Node, Pod, PodUid


@dataclass(frozen=True)
class Case:
    state: AdmissionInput
    admitted: dict[str, str]
    """user -> slice type admitted on (exactly these users are admitted)."""
    reasons: dict[str, WaitReason] = field(default_factory=dict)
    priorities: dict[str, Priority] = field(default_factory=dict)


CASES = {
    "lab-beats-member-beats-free-practice": Case(
        state(
            {"1g.10gb": 2},
            [entry("free", 0, member=False), entry("member", 1), entry("lab", 2, group="A")],
            reservations=[reservation("A", seats=0)],
        ),
        {"lab": "1g.10gb", "member": "1g.10gb"},
        {"free": WaitReason.NO_FREE_SLICE},
        {"lab": Priority.LAB_SESSION, "member": Priority.COURSE_MEMBER},
    ),
    "fifo-within-a-priority": Case(
        state({"1g.10gb": 2}, [entry("b", 2), entry("a", 1), entry("c", 3)]),
        {"a": "1g.10gb", "b": "1g.10gb"},
        {"c": WaitReason.NO_FREE_SLICE},
    ),
    "same-time-ties-broken-by-user": Case(
        state({"1g.10gb": 1}, [entry("zoe", 1), entry("adam", 1)]),
        {"adam": "1g.10gb"},
    ),
    "lab-priority-ends-with-the-window": Case(
        state(
            {"1g.10gb": 1},
            [entry("member", 0), entry("lab", 1, group="A")],
            reservations=[reservation("A", seats=0, start=-120, length=90)],
        ),
        {"member": "1g.10gb"},
        priorities={"lab": Priority.COURSE_MEMBER},
    ),
    "lab-priority-only-for-its-group": Case(
        state(
            {"1g.10gb": 1},
            [entry("early", 0, group="B"), entry("lab", 1, group="A")],
            reservations=[reservation("A", seats=0)],
        ),
        {"lab": "1g.10gb"},
        priorities={"early": Priority.COURSE_MEMBER},
    ),
    "lab-priority-only-for-its-course": Case(
        state(
            {"1g.10gb": 1},
            [entry("early", 0), entry("other", 1, course="cv-201", group="A")],
            reservations=[reservation("A", seats=0)],
        ),
        {"early": "1g.10gb"},
    ),
    "course-quota-counts-running-sessions": Case(
        state(
            {"1g.10gb": 5},
            [entry("a", 0), entry("b", 1), entry("c", 2)],
            [running("r1")],
            courses={"ml-101": 2},
        ),
        {"a": "1g.10gb"},
        {"b": WaitReason.COURSE_QUOTA, "c": WaitReason.COURSE_QUOTA},
    ),
    "quota-blocked-entry-does-not-block-others": Case(
        state(
            {"1g.10gb": 5},
            [entry("a", 0), entry("b", 1, course="cv-201")],
            courses={"ml-101": 0},
        ),
        {"b": "1g.10gb"},
        {"a": WaitReason.COURSE_QUOTA},
    ),
    "slice-type-quota-falls-back": Case(
        state(
            {"1g.10gb": 5, "2g.20gb": 1},
            [entry("a", 0, types=("1g.10gb", "2g.20gb")), entry("b", 1)],
            [running("r1")],
            slice_types={"1g.10gb": 1},
        ),
        {"a": "2g.20gb"},
        {"b": WaitReason.SLICE_TYPE_QUOTA},
    ),
    "seats-held-for-the-group": Case(
        state(
            {"1g.10gb": 3},
            [entry("b1", 0, group="B"), entry("b2", 1, group="B"), entry("x", 2, member=False)],
            reservations=[reservation("A", seats=2)],
        ),
        {"b1": "1g.10gb"},
        {"b2": WaitReason.RESERVED, "x": WaitReason.RESERVED},
    ),
    "group-claims-held-seats-first": Case(
        state(
            {"1g.10gb": 2},
            [entry("b1", 0, group="B"), entry("a1", 5, group="A"), entry("a2", 6, group="A")],
            reservations=[reservation("A", seats=2)],
        ),
        {"a1": "1g.10gb", "a2": "1g.10gb"},
        {"b1": WaitReason.NO_FREE_SLICE},  # the group went first: nothing left at all
    ),
    "claimed-seats-are-no-longer-held": Case(
        state(
            {"1g.10gb": 3},
            [entry("b1", 0, group="B"), entry("b2", 1, group="B")],
            [running("a-running", group="A")],
            reservations=[reservation("A", seats=2)],
        ),
        {"b1": "1g.10gb", "b2": "1g.10gb"},
    ),
    "unclaimed-seats-released-after-claim-window": Case(
        state(
            {"1g.10gb": 3},
            [entry("b1", 0, group="B"), entry("b2", 1, group="B"), entry("b3", 2, group="B")],
            reservations=[reservation("A", seats=2, start=-11)],
        ),
        {"b1": "1g.10gb", "b2": "1g.10gb", "b3": "1g.10gb"},
    ),
    "nothing-held-before-the-session-starts": Case(
        state(
            {"1g.10gb": 2},
            [entry("b1", 0, group="B"), entry("b2", 1, group="B")],
            reservations=[reservation("A", seats=2, start=5)],
        ),
        {"b1": "1g.10gb", "b2": "1g.10gb"},
    ),
    "holder-takes-a-seat-when-holds-exceed-free": Case(
        state(
            {"1g.10gb": 1},
            [entry("b1", 0, group="B"), entry("a1", 1, group="A"), entry("x", 2)],
            reservations=[reservation("A", seats=2), reservation("B", seats=2)],
        ),
        {"b1": "1g.10gb"},
        {"a1": WaitReason.NO_FREE_SLICE, "x": WaitReason.NO_FREE_SLICE},
    ),
    "held-seats-only-of-their-slice-type": Case(
        state(
            {"1g.10gb": 2, "2g.20gb": 1},
            [entry("b1", 0, group="B", types=("1g.10gb", "2g.20gb"))],
            reservations=[reservation("A", seats=2)],
        ),
        {"b1": "2g.20gb"},
    ),
    "fallback-when-preferred-type-is-full": Case(
        state(
            {"1g.10gb": 0, "2g.20gb": 1},
            [entry("a", 0, types=("1g.10gb", "2g.20gb")), entry("b", 1, types=("2g.20gb",))],
        ),
        {"a": "2g.20gb"},
        {"b": WaitReason.NO_FREE_SLICE},
    ),
    "preferred-type-first-when-both-free": Case(
        state({"1g.10gb": 1, "2g.20gb": 1}, [entry("a", 0, types=("2g.20gb", "1g.10gb"))]),
        {"a": "2g.20gb"},
    ),
    "no-acceptable-slice-type": Case(
        state({"1g.10gb": 1}, [entry("a", 0, types=())]),
        {},
        {"a": WaitReason.NO_SLICE_TYPE},
    ),
    "unknown-slice-type-waits": Case(
        state({"1g.10gb": 1}, [entry("a", 0, types=("7g.80gb",))]),
        {},
        {"a": WaitReason.NO_FREE_SLICE},
    ),
    "duplicate-entries-count-once": Case(
        state({"1g.10gb": 2}, [entry("a", 5), entry("a", 0), entry("b", 1)]),
        {"a": "1g.10gb", "b": "1g.10gb"},
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_truth_table(case: Case) -> None:
    decision = decide(case.state)
    assert {a.key.user: a.slice_type for a in decision.admitted} == case.admitted
    for user, reason in case.reasons.items():
        status = decision.status(EntryKey(UserName(user)))
        assert isinstance(status, Waiting) and status.reason is reason, status
    for user, priority in case.priorities.items():
        status = decision.status(EntryKey(UserName(user)))
        assert status is not None and status.priority is priority
    keys = {e.key for e in case.state.queue}
    assert len(decision.admitted) + len(decision.waiting) == len(keys)


def test_admission_claims_the_reservation() -> None:
    r = reservation("A", seats=1)
    decision = decide(state({"1g.10gb": 2}, [entry("a", 0, group="A")], reservations=[r]))
    assert decision.admitted == (Admitted(EntryKey(UserName("a")), G1, Priority.LAB_SESSION, r),)


def test_positions_and_eta_from_guaranteed_releases() -> None:
    sessions = [running("r1", release_in=10), running("r2", release_in=4), running("r3")]
    queue = [entry(f"u{i}", i) for i in range(4)] + [entry("v", 9, types=("2g.20gb",))]
    decision = decide(state({"1g.10gb": 0}, queue, sessions))
    table = {w.key.user: (w.slice_type, w.position, w.waiting, w.eta) for w in decision.waiting}
    assert table == {
        "u0": (G1, 1, 4, minutes(4)),
        "u1": (G1, 2, 4, minutes(10)),
        "u2": (G1, 3, 4, timedelta(hours=6)),  # r3 only has its 8 h runtime limit
        "u3": (G1, 4, 4, None),  # three sessions: no fourth guaranteed release
        "v": (G2, 1, 1, None),
    }


def test_eta_uses_the_earlier_of_idle_and_runtime_limit() -> None:
    # Started 2 h before T0 with an 8 h maximum runtime: released at the latest in 6 h.
    idle_only = running("idle", release_in=20, runtime_hours=None)
    runtime_only = running("runtime", release_in=None)
    unbounded = running("forever", release_in=None, runtime_hours=None)
    assert idle_only.release_at() == T0 + minutes(20)
    assert runtime_only.release_at() == T0 + timedelta(hours=6)
    assert unbounded.release_at() is None
    both = running("both", release_in=600)
    assert both.release_at() == T0 + timedelta(hours=6)
    decision = decide(state({"1g.10gb": 0}, [entry("a")], [runtime_only, unbounded]))
    (wait,) = decision.waiting
    assert wait.eta == timedelta(hours=6)


def test_overdue_release_gives_zero_eta() -> None:
    decision = decide(state({"1g.10gb": 0}, [entry("a")], [running("r", release_in=-3)]))
    assert decision.waiting[0].eta == timedelta(0)


def test_reserved_eta_is_at_most_the_claim_deadline() -> None:
    decision = decide(
        state(
            {"1g.10gb": 1},
            [entry("b", 0, group="B")],
            [running("r", release_in=30)],
            reservations=[reservation("A", seats=1, start=-4)],
        )
    )
    (wait,) = decision.waiting
    assert (wait.reason, wait.eta, wait.detail) == (WaitReason.RESERVED, minutes(6), "A")


def test_quota_mapping_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="accepted keys: courses, slice_types"):
        Quotas.from_mapping({"course": {"ml-101": 3}})
    with pytest.raises(ValueError, match=r"courses.ml-101 must be a whole number >= 0"):
        Quotas.from_mapping({"courses": {"ml-101": -1}})
    assert Quotas.from_mapping({"slice_types": {"1g.10gb": 3}}).per_slice_type == {G1: 3}


def test_live_book_follows_events() -> None:
    book = AdmissionBook(state({}, []).policy)
    for i in range(3):
        book.add_entry(entry(f"u{i}", i))
    book.add_entry(entry("u0", 10))  # pressing Start again keeps the earlier place
    assert [a.key.user for a in book.decide(T0, {G1: 1}).admitted] == ["u0"]
    book.add_running(running("u0", release_in=5))  # admitted and started: leaves the queue
    decision = book.decide(T0, {G1: 0})
    assert [(w.key.user, w.position, w.eta) for w in decision.waiting] == [
        ("u1", 1, minutes(5)),
        ("u2", 2, None),
    ]
    book.remove_entry(EntryKey(UserName("u1")))  # stopped while queued
    book.remove_running(EntryKey(UserName("u0")))
    assert [a.key.user for a in book.decide(T0, {G1: 1}).admitted] == ["u2"]
    assert len(book) == 1


def test_quota_blocked_entries_do_not_delay_the_estimate_of_others() -> None:
    sessions = [running("r1", release_in=3), running("r2", course="cv-201", release_in=7)]
    queue = [entry("blocked", 0), entry("next", 1, course="cv-201")]
    decision = decide(state({"1g.10gb": 0}, queue, sessions, courses={"ml-101": 1}))
    blocked = decision.status(EntryKey(UserName("blocked")))
    waiting = decision.status(EntryKey(UserName("next")))
    assert isinstance(blocked, Waiting) and isinstance(waiting, Waiting)
    assert (blocked.reason, blocked.position, blocked.eta) == (WaitReason.COURSE_QUOTA, 1, None)
    assert (waiting.position, waiting.waiting, waiting.eta) == (2, 2, minutes(3))
    assert decision.status(EntryKey(UserName("nobody"))) is None


def test_burst_of_100_for_10_free_slices_admits_exactly_10_once() -> None:
    """Admitted pods lose their gate before they are bound; the capacity model counts them as
    in flight, so the next decision (before the scheduler binds them) admits nobody else."""
    index = CapacityIndex()
    labels = {"nvidia.com/mig.strategy": "mixed", "topology.kubernetes.io/zone": "room-a"}
    for n in range(3):
        index.update_node(Node.from_labels(f"gpu-{n}", labels, {"nvidia.com/mig-1g.10gb": 4}))
    for n in range(2):  # two slices already taken
        index.add_pod(
            Pod(PodUid(f"old{n}"), "labhub", "old", {"nvidia.com/mig-1g.10gb": 1}, "gpu-0")
        )
    book = AdmissionBook(state({}, []).policy)
    pods = {}
    for i in range(100):
        e = entry(f"s{i:03d}", i / 10)
        book.add_entry(e)
        pods[e.key] = Pod(
            PodUid(f"uid-{i}"),
            "labhub",
            f"jupyter-s{i:03d}",
            {"nvidia.com/mig-1g.10gb": 1},
            gated=True,
        )
        index.add_pod(pods[e.key])
    first = book.decide(T0, index.free_by_type())
    assert [a.key.user for a in first.admitted] == [f"s{i:03d}" for i in range(10)]
    assert first.waiting[0].position == 1 and first.waiting[0].waiting == 90
    for a in first.admitted:  # the controller lifts the gates; nothing is bound yet
        pod = pods[a.key]
        index.add_pod(Pod(pod.uid, pod.namespace, pod.name, pod.requests, gated=False))
        book.remove_entry(a.key)
    assert index.free_by_type() == {G1: 0}
    assert book.decide(T0, index.free_by_type()).admitted == ()
