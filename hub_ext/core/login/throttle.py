"""Failed-login throttling that fits a lab: a small state machine with the clock passed in.

Two kinds of lock, each with its own reason:

- **A login name** is locked after ``username_limit`` failed logins of that name within
  ``window_seconds``, from any address. The lock holds that name only: every other name, from
  the same address too, goes on as before.
- **A client address** is locked when it *sprays*: many different names fail from it. Students
  behind one lab-room NAT also fail with many names, each mistyping their own password, and then
  log in. Two signs tell spraying apart:

  - ``spray_limit`` different names failed from the address with the *same* wrong password
    (the hub passes a one-byte keyed hash of it, ``password_class``; the password is never
    seen here, and one byte cannot be reversed), or
  - ``address_limit`` different names failed from the address and none of them has logged in
    from it since (a name that then logs in from the address stops counting).

  A room of 50 behind one address, each mistyping twice and then logging in, reaches neither:
  50 different names stay under ``address_limit`` (100 by default) even if everyone mistypes at
  the same moment, and their wrong passwords differ.

A lock lasts ``lock_seconds`` from the failure that set it. A correct password for a name that is
not locked, from an address that is not locked, is never refused, whatever other names did.
Locks are plain values (:class:`Lock`, with the reason in words) that the hub writes to a file,
so that a restart keeps them: pass them back with :meth:`LoginThrottle.restore`.

Times are seconds since the epoch (a clock that survives restarts); every method takes ``now``.
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
        return cls(KeyKind.USERNAME, name.lower()[:256])

    @classmethod
    def address(cls, addr: str) -> ThrottleKey:
        return cls(KeyKind.ADDRESS, addr)


@dataclass(frozen=True)
class ThrottlePolicy:
    """The limits; 0 turns a limit off."""

    username_limit: int = 5
    """Failed logins of one name within the window that lock that name."""
    address_limit: int = 100
    """Different names failed from one address (and not logged in from it since) that lock it."""
    spray_limit: int = 10
    """Different names failed from one address with the same wrong password that lock it."""
    window_seconds: float = 300.0
    """How long a failure counts."""
    lock_seconds: float = 300.0
    """How long a lock lasts."""
    max_tracked_keys: int = 100_000
    """Names and addresses remembered at most (the oldest are forgotten first)."""


@dataclass(frozen=True)
class Lock:
    """``key`` is refused until ``until`` (epoch seconds) because of ``reason``."""

    key: ThrottleKey
    until: float
    reason: str

    def remaining(self, now: float) -> int:
        """Whole seconds left, at least 1 while locked (float noise ignored)."""
        return max(1, math.ceil(self.until - now - 1e-6))


@dataclass(frozen=True)
class ThrottleDecision:
    """Whether an attempt may go ahead; when not, the lock that refuses it. ``new_locks``
    are the locks that the recorded failure has just set (for the audit log)."""

    allowed: bool
    retry_after_seconds: int = 0
    lock: Lock | None = None
    new_locks: tuple[Lock, ...] = ()


ALLOW = ThrottleDecision(True)


@dataclass
class _AddressFailures:
    """Per address: name -> (last failure time, password classes of its failures)."""

    names: OrderedDict[str, tuple[float, frozenset[int]]]


class LoginThrottle:
    """Counts failures and holds locks. Not thread-safe: the hub calls it from its event loop."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self.policy = policy
        self._name_failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._address_failures: OrderedDict[str, _AddressFailures] = OrderedDict()
        self._locks: dict[ThrottleKey, Lock] = {}

    # -- locks ------------------------------------------------------------------------------

    def restore(self, locks: Iterable[Lock], now: float) -> None:
        """Take over locks saved before a restart (expired ones are dropped)."""
        for lock in locks:
            if lock.until > now:
                self._locks[lock.key] = lock

    def locks(self, now: float) -> tuple[Lock, ...]:
        """The locks in force at ``now`` (what the hub saves)."""
        for key in [k for k, lock in self._locks.items() if lock.until <= now]:
            del self._locks[key]
        return tuple(self._locks.values())

    def _active(self, key: ThrottleKey, now: float) -> Lock | None:
        lock = self._locks.get(key)
        if lock is None:
            return None
        if lock.until <= now:
            del self._locks[key]
            return None
        return lock

    def check(self, username: str, address: str, now: float) -> ThrottleDecision:
        """May an attempt for ``username`` from ``address`` go ahead now?"""
        found = [
            lock
            for lock in (
                self._active(ThrottleKey.username(username), now),
                self._active(ThrottleKey.address(address), now),
            )
            if lock is not None
        ]
        if not found:
            return ALLOW
        worst = max(found, key=lambda lock: lock.until)
        return ThrottleDecision(False, worst.remaining(now), worst)

    # -- failures and successes -------------------------------------------------------------

    def record_failure(
        self, username: str, address: str, now: float, password_class: int | None = None
    ) -> ThrottleDecision:
        """Count a failed login; the decision names any lock that this failure has set."""
        name = ThrottleKey.username(username).value
        new: list[Lock] = []
        lock = self._count_name(name, now)
        if lock is not None:
            new.append(lock)
        lock = self._count_address(name, address, now, password_class)
        if lock is not None:
            new.append(lock)
        for lock in new:
            self._locks[lock.key] = lock
        self._forget_oldest()
        decision = self.check(username, address, now)
        return ThrottleDecision(
            decision.allowed, decision.retry_after_seconds, decision.lock, tuple(new)
        )

    def _count_name(self, name: str, now: float) -> Lock | None:
        p = self.policy
        times = self._name_failures.setdefault(name, deque())
        self._name_failures.move_to_end(name)
        times.append(now)
        horizon = now - p.window_seconds
        while times and (times[0] <= horizon or len(times) > max(p.username_limit, 1)):
            times.popleft()
        key = ThrottleKey(KeyKind.USERNAME, name)
        if p.username_limit <= 0 or len(times) < p.username_limit or self._active(key, now):
            return None
        times.clear()
        reason = f"{p.username_limit} failed logins within {_secs(p.window_seconds)}"
        return Lock(key, now + p.lock_seconds, reason)

    def _count_address(
        self, name: str, address: str, now: float, password_class: int | None
    ) -> Lock | None:
        p = self.policy
        seen = self._address_failures.get(address)
        if seen is None:
            seen = self._address_failures[address] = _AddressFailures(OrderedDict())
        self._address_failures.move_to_end(address)
        _, classes = seen.names.pop(name, (now, frozenset()))
        if password_class is not None:
            classes = classes | {password_class}
        seen.names[name] = (now, classes)
        horizon = now - p.window_seconds
        while seen.names and next(iter(seen.names.values()))[0] <= horizon:
            seen.names.popitem(last=False)
        while len(seen.names) > max(p.address_limit, p.spray_limit, 1):
            seen.names.popitem(last=False)
        key = ThrottleKey(KeyKind.ADDRESS, address)
        if self._active(key, now):
            return None
        window = _secs(p.window_seconds)
        if p.spray_limit > 0 and password_class is not None:
            same = sum(1 for _, c in seen.names.values() if password_class in c)
            if same >= p.spray_limit:
                seen.names.clear()
                reason = f"{same} different names failed with the same password within {window}"
                return Lock(key, now + p.lock_seconds, reason)
        if p.address_limit > 0 and len(seen.names) >= p.address_limit:
            count = len(seen.names)
            seen.names.clear()
            reason = f"{count} different names failed within {window} and none logged in since"
            return Lock(key, now + p.lock_seconds, reason)
        return None

    def record_success(self, username: str, address: str, now: float) -> None:
        """A name logged in: its failures are forgotten, and it stops counting against the
        address it logged in from (the locks of others stay)."""
        name = ThrottleKey.username(username).value
        self._name_failures.pop(name, None)
        seen = self._address_failures.get(address)
        if seen is not None:
            seen.names.pop(name, None)
            if not seen.names:
                del self._address_failures[address]

    def _forget_oldest(self) -> None:
        limit = self.policy.max_tracked_keys
        while len(self._name_failures) > limit:
            self._name_failures.popitem(last=False)
        while len(self._address_failures) > limit:
            self._address_failures.popitem(last=False)

    def tracked_keys(self, now: float) -> int:
        """How many names and addresses still hold failures inside the window."""
        horizon = now - self.policy.window_seconds
        for name in list(self._name_failures):
            times = self._name_failures[name]
            while times and times[0] <= horizon:
                times.popleft()
            if not times:
                del self._name_failures[name]
        for address in list(self._address_failures):
            names = self._address_failures[address].names
            while names and next(iter(names.values()))[0] <= horizon:
                names.popitem(last=False)
            if not names:
                del self._address_failures[address]
        return len(self._name_failures) + len(self._address_failures)


def _secs(seconds: float) -> str:
    return f"{seconds:g} s"
