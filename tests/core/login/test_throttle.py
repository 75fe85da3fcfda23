"""Failed-login throttling state machine (clock passed in)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub_ext.core.login.throttle import KeyKind, Lock, LoginThrottle, ThrottleKey, ThrottlePolicy

ROOM = "10.0.0.1"


def test_five_failures_lock_that_name_only_with_the_remaining_time() -> None:
    t = LoginThrottle(ThrottlePolicy(username_limit=5, window_seconds=300, lock_seconds=300))
    decisions = [t.record_failure("Student01", ROOM, now, now % 7) for now in (0, 10, 20, 30, 40)]
    assert [d.allowed for d in decisions] == [True, True, True, True, False]
    (lock,) = decisions[-1].new_locks
    assert lock.key == ThrottleKey(KeyKind.USERNAME, "student01")
    assert lock.reason == "5 failed logins within 300 s"
    assert t.check("STUDENT01", "192.0.2.9", 40).retry_after_seconds == 300
    assert t.check("student01", ROOM, 339.5).retry_after_seconds == 1
    assert t.check("student01", ROOM, 340).allowed
    # The same address, any other name: untouched.
    assert t.check("student02", ROOM, 41).allowed


def test_failures_leave_the_window() -> None:
    t = LoginThrottle(ThrottlePolicy(username_limit=3, window_seconds=60))
    for now in (0, 30, 61, 92):
        assert t.record_failure("u", ROOM, now).allowed


def test_a_room_of_fifty_mistyping_twice_at_once_is_never_locked() -> None:
    t = LoginThrottle(ThrottlePolicy())
    names = [f"student{i:02d}" for i in range(50)]
    # Everyone mistypes twice before anyone logs in; each mistypes their own password.
    for n, name in enumerate(names):
        for k in range(2):
            d = t.record_failure(name, ROOM, n, password_class=(7 * n + k) % 256)
            assert d.allowed and not d.new_locks
    for name in names:
        assert t.check(name, ROOM, 60).allowed
        t.record_success(name, ROOM, 60)
    assert t.locks(60) == ()


def test_spraying_one_password_locks_the_address() -> None:
    t = LoginThrottle(ThrottlePolicy(spray_limit=10))
    new: list[Lock] = []
    for i in range(20):
        new += t.record_failure(f"student{i:02d}", ROOM, i, password_class=42).new_locks
    (lock,) = new
    assert lock.key == ThrottleKey.address(ROOM)
    assert lock.reason == "10 different names failed with the same password within 300 s"
    assert not t.check("student40", ROOM, 21).allowed
    assert t.check("student40", "10.0.0.2", 21).allowed


def test_many_names_that_never_log_in_lock_the_address() -> None:
    t = LoginThrottle(ThrottlePolicy(address_limit=30, spray_limit=0))
    new: list[Lock] = []
    for i in range(30):
        new += t.record_failure(f"user{i}", ROOM, i, password_class=i).new_locks
    assert [lock.key.kind for lock in new] == [KeyKind.ADDRESS]
    assert "30 different names failed within 300 s and none logged in since" in new[0].reason


def test_names_that_log_in_stop_counting_against_their_address() -> None:
    t = LoginThrottle(ThrottlePolicy(address_limit=5, spray_limit=0))
    for i in range(40):
        t.record_failure(f"s{i}", ROOM, i)
        t.record_success(f"s{i}", ROOM, i + 0.5)
    assert t.check("anyone", ROOM, 41).allowed


def test_a_correct_password_is_not_refused_because_of_other_names() -> None:
    t = LoginThrottle(ThrottlePolicy(username_limit=2))
    for _ in range(3):
        t.record_failure("victim", ROOM, 1)
    assert not t.check("victim", ROOM, 2).allowed
    for name in ("student01", "student02"):
        assert t.check(name, ROOM, 2).allowed


def test_locks_are_restored_and_expired_ones_dropped() -> None:
    t = LoginThrottle(ThrottlePolicy(username_limit=1))
    t.record_failure("a", ROOM, 100)
    saved = t.locks(100)
    again = LoginThrottle(ThrottlePolicy(username_limit=1))
    again.restore(saved, 200)
    assert again.check("a", ROOM, 200).retry_after_seconds == 200
    again.restore([Lock(ThrottleKey.username("b"), 150, "old")], 200)
    assert again.check("b", ROOM, 200).allowed
    assert again.locks(401) == ()


def test_zero_turns_limits_off() -> None:
    t = LoginThrottle(ThrottlePolicy(username_limit=0, address_limit=0, spray_limit=0))
    for i in range(500):
        assert t.record_failure(f"u{i % 3}", ROOM, i, password_class=1).allowed


def test_memory_is_bounded() -> None:
    t = LoginThrottle(ThrottlePolicy(max_tracked_keys=100, address_limit=0, spray_limit=0))
    for i in range(1000):
        t.record_failure(f"u{i}", f"10.0.{i // 250}.{i % 250}", 0)
    assert t.tracked_keys(0) == 200
    assert t.tracked_keys(10_000) == 0


@given(st.lists(st.floats(min_value=0, max_value=1000), min_size=1, max_size=30))
def test_never_locked_longer_than_the_lock_time(times: list[float]) -> None:
    t = LoginThrottle(ThrottlePolicy(username_limit=3, window_seconds=120, lock_seconds=120))
    now = 0.0
    for when in sorted(times):
        now = when
        t.record_failure("name", ROOM, now)
        d = t.check("name", ROOM, now)
        assert d.allowed or 1 <= d.retry_after_seconds <= 120
    assert t.check("name", ROOM, now + 120).allowed
