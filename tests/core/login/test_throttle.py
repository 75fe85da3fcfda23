"""Failed-login throttling state machine (clock passed in)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hub_ext.core.login.throttle import KeyKind, LoginThrottle, ThrottleKey, ThrottlePolicy

NAME = ThrottleKey.username("Student01")
ADDR = ThrottleKey.address("10.0.0.1")


def fail(t: LoginThrottle, times: list[float], keys=(NAME, ADDR)):
    return [t.record_failure(keys, now) for now in times]


def test_five_failures_lock_with_the_remaining_time() -> None:
    t = LoginThrottle(ThrottlePolicy(username_limit=5, address_limit=50, window_seconds=300))
    decisions = fail(t, [0, 10, 20, 30, 40])
    assert [d.allowed for d in decisions] == [True, True, True, True, False]
    assert decisions[-1].newly_locked and decisions[-1].locked_key == NAME
    assert t.check([NAME], 40).retry_after_seconds == 260
    assert t.check([NAME], 299.5).retry_after_seconds == 1
    assert t.check([NAME], 300).allowed  # the first failure left the window
    # The next failure locks again until the second one leaves the window.
    assert not t.record_failure([NAME], 301).allowed
    assert t.check([NAME], 301).retry_after_seconds == 9


def test_usernames_are_case_insensitive_and_success_clears_only_the_name() -> None:
    t = LoginThrottle(ThrottlePolicy(username_limit=2, address_limit=2, window_seconds=60))
    fail(t, [0, 1], keys=(ThrottleKey.username("STUDENT01"), ADDR))
    assert not t.check([NAME], 2).allowed
    assert not t.check([ADDR], 2).allowed
    t.record_success(NAME, 2)
    assert t.check([NAME], 2).allowed
    decision = t.check([NAME, ADDR], 2)
    assert not decision.allowed and decision.locked_key == ADDR


def test_address_limit_is_separate_and_zero_disables() -> None:
    t = LoginThrottle(ThrottlePolicy(username_limit=0, address_limit=3, window_seconds=60))
    for i in range(3):
        t.record_failure([ThrottleKey.username(f"u{i}"), ADDR], i)
    assert not t.check([ADDR], 3).allowed
    assert t.check([ThrottleKey.username("u0")], 3).allowed
    assert ADDR.kind is KeyKind.ADDRESS


def test_memory_is_bounded() -> None:
    t = LoginThrottle(ThrottlePolicy(max_tracked_keys=100))
    for i in range(1000):
        t.record_failure([ThrottleKey.username(f"u{i}")], 0)
    assert t.tracked_keys(0) == 100
    assert t.tracked_keys(10_000) == 0


@given(st.lists(st.floats(min_value=0, max_value=1000), min_size=1, max_size=30))
def test_never_locked_longer_than_the_window(times: list[float]) -> None:
    t = LoginThrottle(ThrottlePolicy(username_limit=3, window_seconds=120))
    now = 0.0
    for dt in sorted(times):
        now = dt
        t.record_failure([NAME], now)
        d = t.check([NAME], now)
        assert d.allowed or 1 <= d.retry_after_seconds <= 120
    assert t.check([NAME], now + 120).allowed
