"""Injected API errors and latency, for reliability tests of the emulator's clients.

A rule matches a request by verb (``get``, ``list``, ``watch``, ``create``, ``update``,
``patch``, ``delete``, ``deletecollection`` or ``*``) and resource: ``pods`` matches the pods
resource itself, ``pods/status`` (``pods/binding``, ``pods/log`` ...) one subresource,
``pods/*`` every subresource of pods, ``*`` everything. Resources may also be written with
their group (``leases.coordination.k8s.io``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from hub_ext.devcluster.apiserver.errors import REASONS, ApiError

VERBS = frozenset(
    {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"}
)


@dataclass
class FaultRule:
    id: int
    verb: str
    resource: str
    status: int | None = None
    times: int | None = None
    seconds: float = 0.0
    message: str = ""
    hits: int = 0

    def matches(self, verb: str, names: list[str], sub: str | None) -> bool:
        if self.verb not in ("*", verb):
            return False
        if self.resource == "*":
            return True
        base, _, want_sub = self.resource.partition("/")
        if base not in names:
            return False
        if not want_sub:
            return sub is None
        return (want_sub == "*" and sub is not None) or want_sub == sub

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "error" if self.status is not None else "latency",
            "verb": self.verb,
            "resource": self.resource,
            "status": self.status,
            "times": self.times,
            "seconds": self.seconds,
            "hits": self.hits,
        }


class FaultInjector:
    """The fault rules of one API server; rules apply in the order they were added."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    @staticmethod
    def _check(verb: str, resource: str) -> None:
        if verb not in VERBS:
            raise ValueError(f"unknown verb {verb!r}; accepted: {', '.join(sorted(VERBS))}")
        if not resource:
            raise ValueError("resource must be a resource name such as 'pods' or '*'")

    def inject_error(
        self, verb: str, resource: str, status: int, times: int | None = None, message: str = ""
    ) -> FaultRule:
        """Answer matching requests with a ``Status`` error ``status`` (``times`` times)."""
        self._check(verb, resource)
        if not 400 <= int(status) <= 599:
            raise ValueError(f"status must be an HTTP error code 400-599, not {status}")
        rule = FaultRule(next(self._ids), verb, resource, int(status), times, message=message)
        self._rules.append(rule)
        return rule

    def inject_latency(self, verb: str, resource: str, seconds: float) -> FaultRule:
        """Delay matching requests by ``seconds`` before they are served."""
        self._check(verb, resource)
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        rule = FaultRule(next(self._ids), verb, resource, seconds=float(seconds))
        self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        before = len(self._rules)
        self._rules = [r for r in self._rules if r.id != rule_id]
        return len(self._rules) != before

    def clear(self) -> None:
        self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def lookup(self, verb: str, names: list[str], sub: str | None) -> tuple[float, ApiError | None]:
        """The delay and the error (if any) for one request; counts the hits."""
        if not self._rules:
            return 0.0, None
        delay = 0.0
        error: ApiError | None = None
        for rule in list(self._rules):
            if not rule.matches(verb, names, sub):
                continue
            if rule.status is None:
                rule.hits += 1
                delay += rule.seconds
                continue
            if error is not None:
                continue
            rule.hits += 1
            if rule.times is not None and rule.hits >= rule.times:
                self._rules.remove(rule)
            text = rule.message or f"injected fault: {verb} {names[0]} answered {rule.status}"
            error = ApiError(rule.status, text, reason=REASONS.get(rule.status, "InternalError"))
        return delay, error
