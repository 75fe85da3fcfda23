"""LDAP server addresses and the shared failover state (which server to try, which to skip)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ServerSpec:
    url: str
    host: str
    port: int
    use_ssl: bool


def parse_server_url(url: str) -> ServerSpec:
    """Parse ``ldap://host:389`` or ``ldaps://host:636`` (the port is optional)."""
    parts = urlsplit(url)
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise ValueError(
            f"invalid LDAP server URL {url!r}: use ldap://HOST:PORT (StartTLS or plain) "
            "or ldaps://HOST:PORT (TLS on connect)"
        )
    use_ssl = parts.scheme == "ldaps"
    return ServerSpec(url, parts.hostname, parts.port or (636 if use_ssl else 389), use_ssl)


class ServerHealth:
    """Failover order plus "skip a dead server for a while" memory, shared by threads."""

    def __init__(
        self,
        specs: Sequence[ServerSpec],
        skip_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.specs = tuple(specs)
        self.skip_seconds = skip_seconds
        self._clock = clock
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def order(self) -> list[ServerSpec]:
        now = self._clock()
        with self._lock:
            up = [s for s in self.specs if self._down_until.get(s.url, 0.0) <= now]
            down = [s for s in self.specs if s not in up]
        down.sort(key=lambda s: self._down_until.get(s.url, 0.0))
        return up + down

    def is_skipped(self, spec: ServerSpec) -> bool:
        with self._lock:
            return self._down_until.get(spec.url, 0.0) > self._clock()

    def mark_down(self, spec: ServerSpec) -> None:
        with self._lock:
            self._down_until[spec.url] = self._clock() + self.skip_seconds

    def mark_up(self, spec: ServerSpec) -> None:
        with self._lock:
            self._down_until.pop(spec.url, None)
