"""Failed-login throttling: a small state machine with the clock passed in.

Failures are counted per login name and per client address in a sliding window. When either
count reaches its limit, further attempts for that key are refused until the oldest counted
failure leaves the window, so the wait shown to the user shrinks as time passes. A successful
login clears the failures of its login name (not of its address: one good account must not
unlock an address that is guessing passwords for others).
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class KeyKind(Enum):
    USERNAME = "username"
    ADDRESS = "address"


@dataclass(frozen=True)
class ThrottleKey:
    kind: KeyKind
    value: str

    @classmethod
    def username(cls, name: str) -> ThrottleKey:
        return cls(KeyKind.USERNAME, name.lower())

    @classmethod
    def address(cls, addr: str) -> ThrottleKey:
        return cls(KeyKind.ADDRESS, addr)


@dataclass(frozen=True)
class ThrottlePolicy:
    """``username_limit`` / ``address_limit`` failures within ``window_seconds`` lock a key."""

    username_limit: int = 5
    address_limit: int = 5
    window_seconds: float = 300.0
    max_tracked_keys: int = 100_000

    def limit(self, kind: KeyKind) -> int:
        return self.username_limit if kind is KeyKind.USERNAME else self.address_limit


@dataclass(frozen=True)
class ThrottleDecision:
    """Whether an attempt may go ahead; when not, which key is locked and for how long."""

    allowed: bool
    retry_after_seconds: int = 0
    locked_key: ThrottleKey | None = None
    newly_locked: bool = False


ALLOW = ThrottleDecision(True)


class LoginThrottle:
    """Sliding-window failure counter. Every method takes ``now`` (seconds, monotonic)."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self.policy = policy
        self._failures: OrderedDict[ThrottleKey, deque[float]] = OrderedDict()

    def _prune(self, key: ThrottleKey, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        horizon = now - self.policy.window_seconds
        while times and times[0] <= horizon:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def _locked_for(self, key: ThrottleKey, now: float) -> float:
        limit = self.policy.limit(key.kind)
        if limit <= 0:
            return 0.0
        times = self._prune(key, now)
        if len(times) < limit:
            return 0.0
        # Locked until enough failures leave the window to get below the limit again.
        release = times[len(times) - limit] + self.policy.window_seconds
        return max(0.0, release - now)

    def check(self, keys: Iterable[ThrottleKey], now: float) -> ThrottleDecision:
        """May an attempt for all of ``keys`` go ahead now?"""
        worst: tuple[float, ThrottleKey] | None = None
        for key in keys:
            wait = self._locked_for(key, now)
            if wait > 0 and (worst is None or wait > worst[0]):
                worst = (wait, key)
        if worst is None:
            return ALLOW
        # Round up to whole seconds, ignoring float noise (120.00000000000006 s is 120 s).
        return ThrottleDecision(False, max(1, math.ceil(worst[0] - 1e-6)), worst[1])

    def record_failure(self, keys: Iterable[ThrottleKey], now: float) -> ThrottleDecision:
        """Count a failed attempt; the decision says whether this failure locked a key."""
        key_list = tuple(keys)
        before = {k: self._locked_for(k, now) > 0 for k in key_list}
        for key in key_list:
            times = self._failures.setdefault(key, deque())
            self._failures.move_to_end(key)
            times.append(now)
            limit = self.policy.limit(key.kind)
            while len(times) > max(limit, 1):
                times.popleft()
        while len(self._failures) > self.policy.max_tracked_keys:
            self._failures.popitem(last=False)
        decision = self.check(key_list, now)
        if decision.allowed:
            return decision
        newly = decision.locked_key is not None and not before.get(decision.locked_key, False)
        return ThrottleDecision(False, decision.retry_after_seconds, decision.locked_key, newly)

    def record_success(self, username: ThrottleKey, now: float) -> None:
        """Forget the failures of a login name after a successful login."""
        self._failures.pop(username, None)

    def tracked_keys(self, now: float) -> int:
        """How many keys still hold failures inside the window (for metrics and tests)."""
        for key in list(self._failures):
            self._prune(key, now)
        return len(self._failures)
