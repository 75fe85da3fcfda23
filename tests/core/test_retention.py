"""The backup retention rule (hub_ext.core.retention), tested exhaustively on small universes
and against an independently written reference implementation on random ones."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub_ext.core.retention import (
    KeepReason,
    RetentionPolicy,
    Snapshot,
    SnapshotName,
    VolumeName,
    plan_retention,
    snapshot_name,
)

BERLIN = ZoneInfo("Europe/Berlin")
VOL = VolumeName("claim-alice")


def snap(
    when: datetime, volume: str = "claim-alice", usable: bool | None = True, name: str | None = None
) -> Snapshot:
    label = name or f"{volume}-{when:%Y%m%dT%H%M%S}"
    return Snapshot(SnapshotName(label), VolumeName(volume), when, usable)


def reference_keep(snaps: list[Snapshot], daily: int, weekly: int, now: datetime) -> set[str]:
    """restic-style keep-daily/keep-weekly, written as one pass from newest to oldest."""
    usable = sorted(
        (s for s in snaps if s.usable is True and s.taken_at <= now),
        key=lambda s: (s.taken_at, s.name),
        reverse=True,
    )
    keep: set[str] = set()
    last_day = last_week = None
    days_left, weeks_left = daily, weekly
    for s in usable:
        day = s.taken_at.astimezone(now.tzinfo).date()
        week = day.isocalendar()[:2]
        if days_left and day != last_day:
            keep.add(s.name)
            days_left -= 1
        if weeks_left and week != last_week:
            keep.add(s.name)
            weeks_left -= 1
        last_day, last_week = day, week
    if usable:
        keep.add(usable[0].name)
    return keep


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="keep_daily must be at least 1"):
        RetentionPolicy(keep_daily=0, keep_weekly=4)
    with pytest.raises(ValueError, match="keep_weekly"):
        RetentionPolicy(keep_daily=1, keep_weekly=-1)
    with pytest.raises(ValueError, match="pending_grace"):
        RetentionPolicy(1, 1, pending_grace=timedelta(seconds=-1))


def test_naive_times_and_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        snap(datetime(2026, 1, 1))
    now = datetime(2026, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        plan_retention([], RetentionPolicy(7, 4), datetime(2026, 1, 10))
    a = snap(datetime(2026, 1, 1, tzinfo=UTC), name="x")
    with pytest.raises(ValueError, match="unique"):
        plan_retention([a, a], RetentionPolicy(7, 4), now)


def test_sixty_daily_snapshots_keep_seven_days_and_four_weeks() -> None:
    now = datetime(2026, 3, 20, 2, 0, tzinfo=UTC)  # a Friday
    snaps = [
        snap(datetime.combine(now.date() - timedelta(days=d), time(1, 30), UTC)) for d in range(60)
    ]
    decision = plan_retention(snaps, RetentionPolicy(keep_daily=7, keep_weekly=4), now)
    kept_days = sorted(s.taken_at.date() for s in snaps if s.name in decision.keep)
    expected_daily = [now.date() - timedelta(days=d) for d in range(7)]
    # The newest snapshot of each of the last 4 ISO weeks: this week's newest is today, the
    # three before are their Sundays.
    expected_weekly = [date(2026, 3, 1), date(2026, 3, 8), date(2026, 3, 15), now.date()]
    assert kept_days == sorted(set(expected_daily) | set(expected_weekly))
    assert len(decision.delete) == 60 - len(decision.keep)
    today = next(s.name for s in snaps if s.taken_at.date() == now.date())
    assert set(decision.reasons_for(today)) == {
        KeepReason.DAILY,
        KeepReason.WEEKLY,
        KeepReason.NEWEST,
    }
    assert decision.reasons_for(next(iter(decision.delete))) == ()


def test_a_stopped_job_never_loses_the_last_snapshots() -> None:
    last = datetime(2026, 1, 10, 1, 30, tzinfo=UTC)
    snaps = [snap(last - timedelta(days=d)) for d in range(10)]
    decision = plan_retention(snaps, RetentionPolicy(3, 0), last + timedelta(days=90))
    assert decision.keep == {s.name for s in snaps[:3]}


def test_days_are_counted_in_the_time_zone_of_now() -> None:
    # 23:30 UTC on 9 Jan is 00:30 on 10 Jan in Berlin: one Berlin day holds both snapshots.
    a = snap(datetime(2026, 1, 9, 23, 30, tzinfo=UTC))
    b = snap(datetime(2026, 1, 10, 12, 0, tzinfo=UTC))
    c = snap(datetime(2026, 1, 9, 12, 0, tzinfo=UTC))
    policy = RetentionPolicy(2, 0)
    in_utc = plan_retention([a, b, c], policy, datetime(2026, 1, 10, 13, tzinfo=UTC))
    in_berlin = plan_retention([a, b, c], policy, datetime(2026, 1, 10, 14, tzinfo=BERLIN))
    assert in_utc.keep == {a.name, b.name}
    assert in_berlin.keep == {b.name, c.name}


def test_pending_failed_and_future_snapshots() -> None:
    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    good = snap(now - timedelta(days=1))
    pending = snap(now - timedelta(hours=2), usable=None)
    stale_pending = snap(now - timedelta(days=3), usable=None)
    failed_recent = snap(now - timedelta(hours=1), usable=False)
    failed_old = snap(now - timedelta(days=2), usable=False)
    future = snap(now + timedelta(hours=5))
    decision = plan_retention(
        [good, pending, stale_pending, failed_recent, failed_old, future],
        RetentionPolicy(1, 0),
        now,
    )
    assert decision.keep == {good.name, pending.name, failed_recent.name, future.name}
    assert decision.reasons_for(pending.name) == (KeepReason.PENDING,)
    assert decision.reasons_for(future.name) == (KeepReason.FUTURE,)
    # A pending snapshot never takes the daily slot of the good one.
    assert KeepReason.DAILY in decision.reasons_for(good.name)


def test_volumes_are_independent() -> None:
    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    alice = [snap(now - timedelta(days=d), "claim-alice") for d in range(5)]
    bob = [snap(now - timedelta(days=d + 20), "claim-bob") for d in range(5)]
    decision = plan_retention(alice + bob, RetentionPolicy(2, 0), now)
    assert decision.keep == {alice[0].name, alice[1].name, bob[0].name, bob[1].name}


def test_exhaustively_on_every_subset_of_twelve_days() -> None:
    """Every set of snapshot days within 12 days, every small policy, against the reference."""
    now = datetime(2026, 2, 12, 6, tzinfo=UTC)
    days = [datetime(2026, 2, 1, 1, 30, tzinfo=UTC) + timedelta(days=d) for d in range(12)]
    pool = [snap(d) for d in days]
    policies = [RetentionPolicy(d, w) for d, w in itertools.product((1, 2, 3), (0, 1, 2))]
    checked = 0
    for mask in range(1 << len(pool)):
        subset = [s for i, s in enumerate(pool) if mask >> i & 1]
        names = {s.name for s in subset}
        for policy in policies:
            decision = plan_retention(subset, policy, now)
            assert decision.keep == reference_keep(
                subset, policy.keep_daily, policy.keep_weekly, now
            )
            assert decision.keep | decision.delete == names
            assert not decision.keep & decision.delete
            checked += 1
    assert checked == 4096 * 9


times = st.datetimes(
    min_value=datetime(2025, 12, 1), max_value=datetime(2026, 3, 1), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    when=st.lists(times, max_size=40, unique=True),
    volumes=st.lists(st.sampled_from(["claim-a", "claim-b", "claim-c"]), min_size=40, max_size=40),
    daily=st.integers(1, 10),
    weekly=st.integers(0, 6),
    zone=st.sampled_from([UTC, BERLIN, ZoneInfo("America/Los_Angeles")]),
)
def test_matches_reference_and_is_stable(
    when: list[datetime], volumes: list[str], daily: int, weekly: int, zone: ZoneInfo
) -> None:
    now = datetime(2026, 3, 2, tzinfo=UTC).astimezone(zone)
    snaps = [
        snap(t, v, name=f"{v}-{i}") for i, (t, v) in enumerate(zip(when, volumes, strict=False))
    ]
    policy = RetentionPolicy(daily, weekly)
    decision = plan_retention(snaps, policy, now)
    expected: set[str] = set()
    for volume in {s.volume for s in snaps}:
        expected |= reference_keep([s for s in snaps if s.volume == volume], daily, weekly, now)
    assert decision.keep == expected
    # The newest snapshot of every volume survives.
    for volume in {s.volume for s in snaps}:
        newest = max((s for s in snaps if s.volume == volume), key=lambda s: (s.taken_at, s.name))
        assert newest.name in decision.keep
    # Running retention again on what was kept deletes nothing more.
    kept = [s for s in snaps if s.name in decision.keep]
    assert plan_retention(kept, policy, now).delete == frozenset()
    # Per volume, at most daily + weekly snapshots are kept.
    for volume in {s.volume for s in snaps}:
        assert sum(1 for s in kept if s.volume == volume) <= daily + weekly


def test_snapshot_names() -> None:
    now = datetime(2026, 1, 10, 23, 30, tzinfo=UTC)
    assert snapshot_name(VOL, now) == "claim-alice-20260110"
    assert snapshot_name(VOL, now.astimezone(BERLIN)) == "claim-alice-20260111"
    assert snapshot_name(VolumeName("Claim_Bob"), now) == "claim-bob-20260110"
    long_a = VolumeName("claim-" + "a" * 300)
    long_b = VolumeName("claim-" + "a" * 299 + "b")
    name_a, name_b = snapshot_name(long_a, now), snapshot_name(long_b, now)
    assert len(name_a) <= 253 and len(name_b) <= 253
    assert name_a != name_b
    assert name_a.endswith("-20260110")
    with pytest.raises(ValueError):
        snapshot_name(VOL, datetime(2026, 1, 10))
