"""Detached queue entries (their hub restarted, the student has not pressed Start again) keep
their place: they count in everybody's position but are never admitted."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hub_ext.core.admission.book import decide
from hub_ext.core.admission.model import (
    AdmissionInput,
    CourseSlug,
    EntryKey,
    QueueEntry,
    UserName,
    Waiting,
    WaitReason,
)
from hub_ext.core.capacity.model import SliceType

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
T = SliceType("1g.10gb")


def entry(i: int, detached: bool = False) -> QueueEntry:
    return QueueEntry(
        EntryKey(UserName(f"s{i}")),
        CourseSlug("ml-101"),
        "ml101-a",
        (T,),
        NOW - timedelta(minutes=10 - i),
        detached=detached,
    )


def positions(free: int, queue: list[QueueEntry]) -> tuple[list[str], dict[str, tuple[int, int]]]:
    decision = decide(AdmissionInput(NOW, {T: free}, tuple(queue)))
    waiting = {w.key.user: (w.position, w.waiting) for w in decision.waiting}
    return [a.key.user for a in decision.admitted], waiting


def test_positions_count_detached_entries_whatever_order_students_return() -> None:
    queue = [entry(i, detached=True) for i in range(4)]
    admitted, before = positions(0, queue)
    assert admitted == [] and before == {f"s{i}": (i + 1, 4) for i in range(4)}
    for back in ([3], [3, 1], [3, 1, 0], [3, 1, 0, 2]):
        now_queue = [replace(e, detached=e.key.user not in {f"s{i}" for i in back}) for e in queue]
        assert positions(0, now_queue)[1] == before


def test_a_detached_entry_is_not_admitted_and_does_not_block_a_free_slice() -> None:
    queue = [entry(0, detached=True), entry(1), entry(2)]
    decision = decide(AdmissionInput(NOW, {T: 1}, tuple(queue)))
    assert [a.key.user for a in decision.admitted] == ["s1"]
    away = decision.status(EntryKey(UserName("s0")))
    assert isinstance(away, Waiting) and away.reason is WaitReason.DETACHED
    behind = decision.status(EntryKey(UserName("s2")))
    assert isinstance(behind, Waiting) and (behind.position, behind.waiting) == (2, 2)
