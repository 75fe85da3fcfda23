"""Login-page errors, audit logging and the failed-login gate shared by LabHub authenticators.

Errors are raised as ``tornado.web.HTTPError`` with a user-facing message: JupyterHub's
``LoginHandler`` renders the login form again with that message (``login_error``) for a form
POST, so the person sees one short sentence, never a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from tornado import web

from hub_ext.core.login.throttle import LoginThrottle, ThrottleKey, ThrottlePolicy
from hub_ext.hub import metrics

WRONG_CREDENTIALS = "wrong username or password"
UNAVAILABLE = "login service unavailable, try again in a minute"
EMPTY_PASSWORD = "enter your password: it must not be empty or only spaces"  # noqa: S105
NOT_ALLOWED = (
    "your account is not in a group that may use this hub; "
    "ask your lecturer or the lab administrators for access"
)

#: Fallback audit logger; authenticators pass ``self.log.getChild("audit")`` so that audit
#: lines end up in the hub's log.
default_audit = logging.getLogger("labhub.audit")


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


def client_address(handler: Any) -> str:
    """The client's address as tornado sees it (honours X-Forwarded-For from the proxy)."""
    try:
        return str(handler.request.remote_ip or "unknown")
    except AttributeError:
        return "unknown"


class LoginGate:
    """Failed-login throttling per login name and per client address, with audit lines."""

    def __init__(
        self,
        policy: ThrottlePolicy,
        audit: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.throttle = LoginThrottle(policy)
        self.audit = audit or default_audit
        self.clock = clock

    @staticmethod
    def keys(username: str, address: str) -> tuple[ThrottleKey, ThrottleKey]:
        return (ThrottleKey.username(username[:256]), ThrottleKey.address(address))

    def before(self, username: str, address: str) -> None:
        """Refuse the attempt (HTTP 429) while the name or the address is locked."""
        decision = self.throttle.check(self.keys(username, address), self.clock())
        if not decision.allowed:
            self.audit.warning(
                "login refused (locked) user=%s from=%s retry_after=%ss",
                safe_name(username),
                address,
                decision.retry_after_seconds,
            )
            raise LoginError(429, too_many_attempts(decision.retry_after_seconds))

    def failed(self, username: str, address: str, reason: str, message: str, status: int) -> None:
        """Count a failure, write the audit line and raise the error to show."""
        decision = self.throttle.record_failure(self.keys(username, address), self.clock())
        self.audit.warning(
            "login failed user=%s from=%s reason=%s", safe_name(username), address, reason
        )
        if decision.newly_locked and decision.locked_key is not None:
            self.audit.warning(
                "lockout %s=%s for %ss after repeated failed logins",
                decision.locked_key.kind.value,
                safe_name(decision.locked_key.value),
                decision.retry_after_seconds,
            )
        raise LoginError(status, message)

    def succeeded(self, username: str, address: str, detail: str) -> None:
        self.throttle.record_success(ThrottleKey.username(username), self.clock())
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
