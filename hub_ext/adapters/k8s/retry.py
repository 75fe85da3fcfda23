"""Retries of API calls on transient errors: pod and PVC creation, gate patches, annotations.

The API server answers 429 when it sheds load and 500, 502, 503 or 504 while it or its storage
hiccups; a request may also time out or lose its connection. Such an error is retried with
exponential back-off (with jitter, capped at ``max_wait`` a wait) until ``retry_timeout``
seconds have passed since the first try; any other error (404, 409, 422 ...) is raised at once,
since trying again cannot change it. A call may also raise :class:`Transient` itself for a
failed attempt worth repeating (a pod of the same name still in the way, for example).

This one helper serves the admission controller (:mod:`hub_ext.adapters.k8s.writes`) and the
spawner's creation of pods and home volumes (:mod:`hub_ext.hub.spawner.k8s`, which turns
:class:`GaveUp` into the student's message).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = [
    "TRANSIENT_STATUS",
    "GaveUp",
    "RetryPolicy",
    "Transient",
    "api_reason",
    "describe",
    "is_transient",
    "with_retries",
]

log = logging.getLogger(__name__)
#: API answers that may pass by themselves: too many requests, server errors, unavailable.
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying, how long one request may take (None: the call bounds itself)
    and the waits between tries."""

    retry_timeout: float = 30.0
    request_timeout: float | None = 10.0
    first_wait: float = 0.5
    max_wait: float = 2.0


class Transient(Exception):
    """One failed attempt that is worth repeating; ``reason`` says what happened."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GaveUp(Exception):
    """A transient error went on for longer than the retry timeout."""

    def __init__(self, what: str, cause: BaseException, attempts: int, seconds: float) -> None:
        super().__init__(f"{what}: {describe(cause)} after {attempts} tries in {seconds:.0f} s")
        self.what, self.cause, self.attempts, self.seconds = what, cause, attempts, seconds


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: 429/5xx answers, timeouts, dropped connections,
    :class:`Transient`."""
    if isinstance(error, Transient):
        return True
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUS
    return isinstance(error, (TimeoutError, aiohttp.ClientConnectionError))


def describe(error: BaseException) -> str:
    """``HTTP 503 Service Unavailable``, ``no answer in time`` ... for a message."""
    if isinstance(error, Transient):
        return error.reason
    if isinstance(error, ApiException):
        try:
            return f"HTTP {error.status} {HTTPStatus(int(error.status)).phrase}"
        except (TypeError, ValueError):
            return f"HTTP {error.status}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return type(error).__name__


def api_reason(error: ApiException) -> str:
    """``HTTP 503: <the Status message>`` (the answer's text is in ``body`` or, for requests
    read as JSON, in ``reason``); at most 200 characters of the message."""
    text = str(error.body or error.reason or "")
    message = text
    with contextlib.suppress(ValueError):
        answer = json.loads(text)
        message = str(answer.get("message") or "") if isinstance(answer, dict) else text
    return f"HTTP {error.status}: {message[:200]}" if message else f"HTTP {error.status}"


async def with_retries(
    call: Callable[[], Awaitable[_T]],
    what: str,
    policy: RetryPolicy,
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
) -> _T:
    """``await call()``, retried on transient errors; GaveUp once ``retry_timeout`` is spent.

    Each retry is logged (as a warning on ``logger``, else at info level here)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + policy.retry_timeout
    wait = policy.first_wait
    attempts = 0
    while True:
        attempts += 1
        try:
            if policy.request_timeout is None:
                return await call()
            async with asyncio.timeout(policy.request_timeout):
                return await call()
        except Exception as error:
            if not is_transient(error):
                raise
            pause = min(wait, policy.max_wait) * random.uniform(0.8, 1.0)
            if loop.time() + pause > deadline:
                raise GaveUp(what, error, attempts, loop.time() - started) from error
            if logger is not None:
                logger.warning("%s failed (%s); will retry in %.1f s", what, describe(error), pause)
            else:
                log.info("%s: %s, trying again in %.1f s", what, describe(error), pause)
            await asyncio.sleep(pause)
            wait *= 2
