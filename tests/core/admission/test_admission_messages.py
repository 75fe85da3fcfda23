"""What the student reads while waiting for a GPU slice."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub_ext.core.admission.messages import format_admitted, format_eta, format_waiting
from hub_ext.core.admission.model import (
    Admitted,
    EntryKey,
    Priority,
    UserName,
    Waiting,
    WaitReason,
)
from hub_ext.core.capacity.model import SliceType

KEY = EntryKey(UserName("student01"))


def waiting(
    reason: WaitReason = WaitReason.NO_FREE_SLICE,
    eta: timedelta | None = timedelta(minutes=4),
    slice_type: str = "1g.10gb",
    detail: str = "",
) -> Waiting:
    return Waiting(KEY, SliceType(slice_type), Priority.COURSE_MEMBER, 3, 7, reason, eta, detail)


@pytest.mark.parametrize(
    ("wait", "text"),
    [
        (waiting(), "Waiting for a 1g.10gb GPU slice: position 3 of 7 (about 4 min)"),
        (waiting(eta=None), "Waiting for a 1g.10gb GPU slice: position 3 of 7"),
        (
            waiting(eta=timedelta(seconds=20)),
            "Waiting for a 1g.10gb GPU slice: position 3 of 7 (less than a minute)",
        ),
        (
            waiting(slice_type="gpu.shared", eta=timedelta(minutes=3, seconds=1)),
            "Waiting for a shared GPU: position 3 of 7 (about 4 min)",
        ),
        (
            waiting(slice_type="gpu", eta=timedelta(hours=3)),
            "Waiting for a whole GPU: position 3 of 7 (about 3 h)",
        ),
        (
            waiting(WaitReason.RESERVED, timedelta(minutes=6), detail="A"),
            "Waiting for a 1g.10gb GPU slice: position 3 of 7 "
            "(about 6 min; the free slices are reserved for seminar group A)",
        ),
        (
            waiting(WaitReason.COURSE_QUOTA, None, detail="ml-101"),
            "Waiting for a 1g.10gb GPU slice: position 3 of 7 "
            "(course ml-101 has reached its limit of servers running at once)",
        ),
        (
            waiting(WaitReason.SLICE_TYPE_QUOTA, None, detail="20"),
            "Waiting for a 1g.10gb GPU slice: position 3 of 7 "
            "(the limit of 20 1g.10gb servers running at once is reached)",
        ),
        (
            waiting(WaitReason.NO_SLICE_TYPE, None, slice_type=""),
            "Waiting: this course profile names no GPU slice type; ask your lecturer to fix it.",
        ),
    ],
    ids=[
        "eta",
        "no-estimate",
        "under-a-minute",
        "shared",
        "whole-gpu-hours",
        "reserved",
        "course-quota",
        "slice-type-quota",
        "no-slice-type",
    ],
)
def test_waiting_message(wait: Waiting, text: str) -> None:
    assert format_waiting(wait) == text


def test_eta_rounds_up_to_whole_minutes() -> None:
    assert format_eta(timedelta(seconds=60)) == "about 1 min"
    assert format_eta(timedelta(seconds=61)) == "about 2 min"
    assert format_eta(timedelta(minutes=119)) == "about 119 min"
    assert format_eta(None) == ""


def test_admitted_message() -> None:
    admitted = Admitted(KEY, SliceType("1g.10gb"), Priority.LAB_SESSION)
    assert format_admitted(admitted) == "A 1g.10gb GPU slice is yours: starting your server."
