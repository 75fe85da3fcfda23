"""Login-page errors, client addresses, audit logging and the failed-login gate.

Refusals that ldapauthenticator 2.0 answers with ``None`` (wrong password, unknown user, bad
name, blank password, not allowed) are answered the same way, and JupyterHub shows its own
"Invalid username or password". Lockouts and an unreachable directory are raised as
``tornado.web.HTTPError`` with a user-facing message (429 with the remaining wait, 503):
JupyterHub's ``LoginHandler`` renders the login form again with that message.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tornado import web

from hub_ext.core.login.forwarding import (
    TrustedProxies,
    client_address,
    parse_address,
    parse_network,
)
from hub_ext.core.login.throttle import (
    KeyKind,
    Lock,
    LoginThrottle,
    ThrottleDecision,
    ThrottleKey,
    ThrottlePolicy,
)
from hub_ext.hub import metrics

UNAVAILABLE = "login service unavailable, try again in a minute"

#: Fallback audit logger; authenticators pass ``self.log.getChild("audit")`` so that audit
#: lines end up in the hub's log.
default_audit = logging.getLogger("labhub.audit")

#: How long the addresses of trusted proxies given by host name are reused.
RESOLVE_SECONDS = 30.0


def too_many_attempts(seconds: int) -> str:
    return f"too many attempts, try again in {seconds} s"


class LoginError(web.HTTPError):
    """A refused login with a message that is safe to show on the login page."""

    def __init__(self, status: int, message: str) -> None:
        # The message is the log_message *format*; escape % so that it is shown verbatim.
        super().__init__(status, message.replace("%", "%%"))
        self.message = message


def safe_name(name: object, limit: int = 40) -> str:
    """A login name as it may appear in a log line (repr, shortened, control chars escaped)."""
    text = repr(str(name))
    if len(text) > limit:
        text = text[: limit - 8] + f"...({len(str(name))} chars)"
    return text


# -- the client's address ---------------------------------------------------------------------


class ProxyTrust:
    """The trusted hops in front of the hub: networks, plus host names resolved now and then
    (a headless Service that lists the proxy pods)."""

    def __init__(self, entries: Iterable[str], logger: logging.Logger | None = None) -> None:
        self.log = logger or default_audit
        nets, names = [], []
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            if parse_address(entry.split("/", 1)[0]) is not None:
                nets.append(parse_network(entry))
            else:
                names.append(entry)
        self.static = tuple(nets)
        self.names = tuple(names)
        self.trusted = TrustedProxies(self.static)
        self._resolved_at = -RESOLVE_SECONDS

    async def refresh(self, clock: Callable[[], float] = time.monotonic) -> TrustedProxies:
        """The trusted networks, with host names resolved at most every RESOLVE_SECONDS."""
        if not self.names or clock() - self._resolved_at < RESOLVE_SECONDS:
            return self.trusted
        self._resolved_at = clock()
        loop = asyncio.get_running_loop()
        found = list(self.static)
        for name in self.names:
            try:
                infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
            except OSError as e:
                self.log.warning(
                    "trusted proxy %r does not resolve (%s): its forwarding headers are not "
                    "believed until it does; check trusted_proxies",
                    name,
                    e,
                )
                continue
            for info in infos:
                addr = parse_address(str(info[4][0]))
                if addr is not None:
                    found.append(parse_network(str(addr)))
        self.trusted = TrustedProxies(tuple(dict.fromkeys(found)))
        return self.trusted


def request_address(handler: Any, trusted: TrustedProxies) -> str:
    """The client's address: the hub's TCP peer, or the hop nearest to the trusted proxies
    in ``X-Forwarded-For`` (``X-Real-Ip`` is never read)."""
    request = getattr(handler, "request", None)
    if request is None:
        return "unknown"
    context = getattr(getattr(request, "connection", None), "context", None)
    peer = _peer_of(context)
    if peer is None:  # not a tornado connection (a test double): what it says
        return str(getattr(request, "remote_ip", None) or "unknown")
    headers = getattr(request, "headers", None)
    forwarded: Sequence[str] = headers.get_list("X-Forwarded-For") if headers is not None else []
    return client_address(peer, forwarded, trusted)


def _peer_of(context: Any) -> str | None:
    """The TCP peer of tornado's connection context (before tornado's xheaders rewrite)."""
    if context is None:
        return None
    address = getattr(context, "address", None)
    if isinstance(address, tuple) and address and isinstance(address[0], str):
        return address[0]
    original = getattr(context, "_orig_remote_ip", None)
    return str(original) if original else None


# -- locks that survive a restart -------------------------------------------------------------


class LockFile:
    """The locks in force, as JSON in one small file (written whole, atomically)."""

    def __init__(self, path: str | os.PathLike[str], logger: logging.Logger) -> None:
        self.path = Path(path)
        self.log = logger

    def load(self) -> list[Lock]:
        try:
            data = json.loads(self.path.read_text())
            return [
                Lock(
                    ThrottleKey(KeyKind(e["kind"]), str(e["value"])), float(e["until"]), e["reason"]
                )
                for e in data["locks"]
            ]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as e:
            kept = self.path.with_name(self.path.name + ".unreadable")
            with contextlib.suppress(OSError):
                os.replace(self.path, kept)
            self.log.error(
                "login lock file %s is unreadable (%s): starting without saved locks; the file "
                "was kept as %s. Remove it once you have looked at it.",
                self.path,
                e,
                kept,
            )
            return []

    def save(self, locks: Iterable[Lock]) -> None:
        data = {
            "version": 1,
            "locks": [
                {
                    "kind": x.key.kind.value,
                    "value": x.key.value,
                    "until": x.until,
                    "reason": x.reason,
                }
                for x in locks
            ],
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, self.path)
        except OSError as e:
            self.log.error(
                "cannot write the login lock file %s (%s): locks hold until the hub restarts; "
                "make its directory writable or set login_lock_file",
                self.path,
                e,
            )


# -- the gate ---------------------------------------------------------------------------------


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lock_name(lock: Lock) -> str:
    return f"{lock.key.kind.value}={safe_name(lock.key.value)}"


class LoginGate:
    """Failed-login throttling per login name and per client address, with audit lines."""

    def __init__(
        self,
        policy: ThrottlePolicy,
        audit: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
        store: LockFile | None = None,
    ) -> None:
        self.throttle = LoginThrottle(policy)
        self.audit = audit or default_audit
        self.clock = clock
        self.store = store
        self._key = os.urandom(32)  # for password classes; never stored
        if store is not None:
            self.throttle.restore(store.load(), clock())
            restored = self.throttle.locks(clock())
            for lock in restored:
                self.audit.warning(
                    "lockout %s kept from before the restart until %s: %s",
                    _lock_name(lock),
                    _when(lock.until),
                    lock.reason,
                )

    def password_class(self, password: str) -> int:
        """One byte of a keyed hash: equal for equal passwords, useless for guessing one."""
        return hmac.new(self._key, password.encode("utf-8", "replace"), hashlib.sha256).digest()[0]

    def before(self, username: str, address: str) -> None:
        """Refuse the attempt (HTTP 429) while the name or the address is locked."""
        decision = self.throttle.check(username, address, self.clock())
        if not decision.allowed and decision.lock is not None:
            self.audit.warning(
                "login refused (locked) user=%s from=%s lock=%s retry_after=%ss: %s",
                safe_name(username),
                address,
                _lock_name(decision.lock),
                decision.retry_after_seconds,
                decision.lock.reason,
            )
            raise LoginError(429, too_many_attempts(decision.retry_after_seconds))

    def refused(self, username: str, address: str, reason: str) -> None:
        """A refusal that guessed no password (bad name, blank password, not allowed)."""
        self.audit.warning(
            "login failed user=%s from=%s reason=%s", safe_name(username), address, reason
        )

    def failed(self, username: str, address: str, reason: str, password: str) -> ThrottleDecision:
        """Count a wrong password (or unknown name) and write the audit lines."""
        now = self.clock()
        decision = self.throttle.record_failure(
            username, address, now, self.password_class(password)
        )
        self.refused(username, address, reason)
        for lock in decision.new_locks:
            other = (
                f"from={address}"
                if lock.key.kind is KeyKind.USERNAME
                else f"user={safe_name(username)}"
            )
            self.audit.warning(
                "lockout %s until %s (%ss): %s; last attempt %s",
                _lock_name(lock),
                _when(lock.until),
                lock.remaining(now),
                lock.reason,
                other,
            )
        if decision.new_locks and self.store is not None:
            self.store.save(self.throttle.locks(now))
        return decision

    def succeeded(self, username: str, address: str, detail: str) -> None:
        self.throttle.record_success(username, address, self.clock())
        self.audit.info("login ok user=%s from=%s %s", safe_name(username), address, detail)


def failure_reason(error: BaseException, reason: str) -> str:
    """The ``labhub_ldap_login_failures`` reason of a refused login.

    ``reason`` is what the login code noted before refusing (``bad-credentials``,
    ``not-in-group``, ``invalid-username``); the HTTP status decides for lockouts (429) and
    unreachable directories (503).
    """
    status = getattr(error, "status_code", None)
    if status == 429:
        return "throttled"
    if status == 503 or not reason:
        return "server-down"
    return reason


def record_login(
    seconds: float, failure: str | None, answered: str, down: Iterable[str] = ()
) -> None:
    """Update the LDAP login metrics for one attempt.

    ``failure`` is None for a successful login, else the failure reason; ``answered`` is the
    server that answered (or ``none``); ``down`` are the servers that failed during the attempt:
    each counts one ``server-down`` failure of its own, so that an alert sees a dead server even
    while logins succeed through the other room's server.
    """
    metrics.LDAP_LOGIN_DURATION.labels("success" if failure is None else "failure").observe(seconds)
    for url in down:
        metrics.LDAP_LOGIN_FAILURES.labels("server-down", url).inc()
    if failure is not None and failure != "server-down":
        metrics.LDAP_LOGIN_FAILURES.labels(failure, answered or "none").inc()
    elif failure == "server-down" and not down:
        metrics.LDAP_LOGIN_FAILURES.labels("server-down", "none").inc()
