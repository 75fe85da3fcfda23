"""What a student sees while waiting for a GPU slice."""

from __future__ import annotations

import math
from datetime import timedelta

from hub_ext.core.admission.model import Admitted, Waiting, WaitReason
from hub_ext.core.k8s_names import WHOLE_GPU, split_shared


def format_eta(eta: timedelta | None) -> str:
    """``about 4 min``, ``less than a minute``, ``about 2 h``; empty when unknown."""
    if eta is None:
        return ""
    seconds = eta.total_seconds()
    if seconds < 60:
        return "less than a minute"
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return f"about {minutes} min"
    return f"about {round(minutes / 60)} h"


def slice_label(slice_type: str) -> str:
    """``1g.10gb GPU slice``, ``shared 1g.10gb GPU slice``, ``whole GPU``, ``shared GPU``."""
    base, shared = split_shared(slice_type)
    if base == WHOLE_GPU:
        return "shared GPU" if shared else "whole GPU"
    return f"shared {base} GPU slice" if shared else f"{base} GPU slice"


def format_waiting(wait: Waiting) -> str:
    """One line for the spawn progress, e.g.
    ``Waiting for a 1g.10gb GPU slice: position 3 of 7 (about 4 min)``."""
    if wait.reason is WaitReason.NO_SLICE_TYPE:
        return "Waiting: this course profile names no GPU slice type; ask your lecturer to fix it."
    label = slice_label(wait.slice_type)
    article = "an" if label[0] in "aeiou" else "a"
    head = f"Waiting for {article} {label}: position {wait.position} of {wait.waiting}"
    eta = format_eta(wait.eta)
    if wait.reason is WaitReason.COURSE_QUOTA:
        note = f"course {wait.detail} has reached its limit of servers running at once"
    elif wait.reason is WaitReason.SLICE_TYPE_QUOTA:
        note = f"the limit of {wait.detail} {wait.slice_type} servers running at once is reached"
    elif wait.reason is WaitReason.RESERVED:
        owner = f"seminar group {wait.detail}" if wait.detail else "a lab session"
        note = f"the free slices are reserved for {owner}"
    else:
        note = wait.detail  # a configured rule's own words (empty for the capacity reasons)
    parts = [p for p in (eta, note) if p]
    return f"{head} ({'; '.join(parts)})" if parts else head


def format_admitted(admitted: Admitted) -> str:
    """The line shown once a slice is granted."""
    return f"A {slice_label(admitted.slice_type)} is yours: starting your server."
