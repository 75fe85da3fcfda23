"""The interface of an admission rule.

The engine (:meth:`hub_ext.core.admission.book.AdmissionBook.decide`) walks the queue in
priority order and, for each candidate, asks every rule in turn:

1. :meth:`RulePass.hold`: may this entry be admitted at all now? A :class:`Hold` keeps it
   waiting with a :class:`~hub_ext.core.admission.model.WaitReason`, a detail for the message
   and, where the rule knows it, the time until it could pass;
2. :meth:`RulePass.hold_type`: may it get a slice of this type? A hold skips to its next
   acceptable type (the fallbacks), and names the reason if no type is granted;
3. then the engine checks free slices and held lab-session seats (capacity stays in the
   engine), and on admission tells each rule with :meth:`RulePass.take`, so that counts such
   as quotas see the admissions of this pass.

A rule is a frozen value built from the policy (:mod:`hub_ext.core.admission.rules` parses the
policy file's sections and keeps the registry); :meth:`AdmissionRule.start` makes the per-pass
state. :meth:`AdmissionRule.notes` is the admin view's hook: lines the lab overview shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from hub_ext.core.admission.model import (
    CourseSlug,
    EntryKey,
    QueueEntry,
    RunningSession,
    UserName,
    WaitReason,
)
from hub_ext.core.admission.usage import UsageRecord
from hub_ext.core.capacity.model import SliceType


@dataclass(frozen=True)
class Hold:
    """Why a rule keeps a candidate waiting."""

    reason: WaitReason
    detail: str = ""
    """What the waiting message names (a course, a limit, when a budget resets)."""
    eta: timedelta | None = None
    """Time until the rule lets the entry pass, when the rule knows it."""


@dataclass(frozen=True)
class RuleContext:
    """What a rule may look at in one decision pass (read-only)."""

    now: datetime
    running: Mapping[EntryKey, RunningSession]
    by_course: Mapping[CourseSlug, int]
    """Running sessions per course."""
    by_type: Mapping[SliceType, int]
    """Running sessions per slice type."""
    usage: tuple[UsageRecord, ...] = ()
    """Finished GPU sessions from the durable usage store."""


@dataclass(frozen=True)
class RuleNote:
    """One line for the admin view (for example a student's budget)."""

    rule: str
    user: UserName
    course: CourseSlug
    text: str


class RulePass:
    """A rule's state during one decision pass; the defaults hold nothing back."""

    def hold(self, entry: QueueEntry) -> Hold | None:
        return None

    def hold_type(self, entry: QueueEntry, slice_type: SliceType) -> Hold | None:
        return None

    def take(self, entry: QueueEntry, slice_type: SliceType) -> None:
        return None


class AdmissionRule:
    """Base of the admission rules: ``name`` for the admin view and the registry."""

    name = "rule"

    def start(self, ctx: RuleContext) -> RulePass:
        return RulePass()

    def notes(self, ctx: RuleContext) -> tuple[RuleNote, ...]:
        return ()
