"""Snapshot retention: which home-volume snapshots to keep (N daily and M weekly).

The rule is the one backup tools such as restic call "keep daily/weekly": for every volume, the
newest usable snapshot of each of the ``keep_daily`` most recent calendar days that have one is
kept, and the newest usable snapshot of each of the ``keep_weekly`` most recent ISO weeks that have
one is kept. Days and weeks are counted in the time zone of the ``now`` passed in. Because buckets
are counted among days that *have* snapshots, a backup job that stops running never deletes the
last good snapshots.

Safety rules on top of that:

* the newest usable snapshot of every volume is always kept;
* a snapshot that is not known to be usable (still being taken, or failed) is kept while it is
  younger than ``pending_grace`` and deleted afterwards; it never fills a daily or weekly bucket;
* a snapshot dated after ``now`` (clock skew) is kept.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import NewType

SnapshotName = NewType("SnapshotName", str)
VolumeName = NewType("VolumeName", str)

_MAX_NAME = 253
_DNS_SAFE = re.compile(r"[^a-z0-9.-]+")


class KeepReason(Enum):
    """Why a snapshot is kept."""

    DAILY = "daily"
    WEEKLY = "weekly"
    NEWEST = "newest"
    PENDING = "pending"
    FUTURE = "future"


@dataclass(frozen=True)
class RetentionPolicy:
    """How many daily and weekly snapshots to keep per volume."""

    keep_daily: int
    keep_weekly: int
    pending_grace: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        if self.keep_daily < 1:
            raise ValueError(
                f"keep_daily must be at least 1 (got {self.keep_daily}): the newest daily "
                "snapshot is always kept"
            )
        if self.keep_weekly < 0:
            raise ValueError(f"keep_weekly must be 0 or more (got {self.keep_weekly})")
        if self.pending_grace < timedelta(0):
            raise ValueError("pending_grace must not be negative")


@dataclass(frozen=True)
class Snapshot:
    """One snapshot of one volume, as the retention rule sees it.

    ``usable`` is True when the snapshot is ready to restore from, False when it failed, and
    None when its state is not known yet.
    """

    name: SnapshotName
    volume: VolumeName
    taken_at: datetime
    usable: bool | None = True

    def __post_init__(self) -> None:
        if self.taken_at.tzinfo is None:
            raise ValueError(f"snapshot {self.name}: taken_at must be timezone-aware")


@dataclass(frozen=True)
class RetentionDecision:
    """The outcome for a set of snapshots: what stays (with reasons) and what goes."""

    keep: frozenset[SnapshotName]
    delete: frozenset[SnapshotName]
    reasons: tuple[tuple[SnapshotName, tuple[KeepReason, ...]], ...]

    def reasons_for(self, name: SnapshotName) -> tuple[KeepReason, ...]:
        """Return why ``name`` is kept (empty when it is deleted)."""
        for snapshot, why in self.reasons:
            if snapshot == name:
                return why
        return ()


def _week_key(day: date) -> tuple[int, int]:
    iso = day.isocalendar()
    return (iso.year, iso.week)


def _newest_per_bucket(
    snapshots: list[Snapshot], key: str, count: int, now: datetime
) -> set[SnapshotName]:
    """Newest snapshot in each of the ``count`` most recent buckets (days or ISO weeks)."""
    buckets: dict[object, Snapshot] = {}
    for snap in snapshots:
        day = snap.taken_at.astimezone(now.tzinfo).date()
        bucket: object = day if key == "day" else _week_key(day)
        best = buckets.get(bucket)
        if best is None or (snap.taken_at, snap.name) > (best.taken_at, best.name):
            buckets[bucket] = snap
    newest_buckets = sorted(buckets, key=lambda b: buckets[b].taken_at, reverse=True)[:count]
    return {buckets[b].name for b in newest_buckets}


def plan_retention(
    snapshots: Iterable[Snapshot], policy: RetentionPolicy, now: datetime
) -> RetentionDecision:
    """Decide which snapshots to keep and which to delete, volume by volume."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    all_snaps = list(snapshots)
    names = [s.name for s in all_snaps]
    if len(set(names)) != len(names):
        raise ValueError("snapshot names must be unique")
    by_volume: dict[VolumeName, list[Snapshot]] = {}
    for snap in all_snaps:
        by_volume.setdefault(snap.volume, []).append(snap)
    reasons: dict[SnapshotName, list[KeepReason]] = {}

    def mark(name: SnapshotName, reason: KeepReason) -> None:
        reasons.setdefault(name, []).append(reason)

    for volume_snaps in by_volume.values():
        usable = [s for s in volume_snaps if s.usable is True and s.taken_at <= now]
        for snap in volume_snaps:
            if snap.taken_at > now:
                mark(snap.name, KeepReason.FUTURE)
            elif snap.usable is not True and now - snap.taken_at < policy.pending_grace:
                mark(snap.name, KeepReason.PENDING)
        for name in _newest_per_bucket(usable, "day", policy.keep_daily, now):
            mark(name, KeepReason.DAILY)
        if policy.keep_weekly:
            for name in _newest_per_bucket(usable, "week", policy.keep_weekly, now):
                mark(name, KeepReason.WEEKLY)
        if usable:
            newest = max(usable, key=lambda s: (s.taken_at, s.name))
            mark(newest.name, KeepReason.NEWEST)
    keep = frozenset(reasons)
    delete = frozenset(names) - keep
    ordered = tuple(sorted((n, tuple(r)) for n, r in reasons.items()))
    return RetentionDecision(keep=keep, delete=delete, reasons=ordered)


def snapshot_name(volume: VolumeName, now: datetime) -> SnapshotName:
    """Name of the snapshot of ``volume`` taken on ``now``'s date: ``<volume>-YYYYMMDD``.

    The result is a valid Kubernetes object name; long volume names are shortened and made unique
    with a hash of the full name.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    base = _DNS_SAFE.sub("-", volume.lower()).strip("-.") or "volume"
    suffix = f"-{now:%Y%m%d}"
    if len(base) + len(suffix) > _MAX_NAME:
        digest = hashlib.sha256(volume.encode()).hexdigest()[:10]
        base = f"{base[: _MAX_NAME - len(suffix) - 11].rstrip('-.')}-{digest}"
    return SnapshotName(base + suffix)
