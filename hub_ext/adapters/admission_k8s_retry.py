"""Retries of the admission controller's API calls (gate patches, annotations) on transient errors.

The API server answers 429 when it sheds load and 500, 502, 503 or 504 while it or its storage
hiccups; a request may also time out. Such an error is retried with exponential back-off (with
jitter, capped at 2 s a wait) until ``retry_timeout`` seconds have passed since the first try;
any other error (404, 409, 422 ...) is raised at once, since trying again cannot change it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TypeVar

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

log = logging.getLogger(__name__)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
_T = TypeVar("_T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying, and how long one request may take."""

    retry_timeout: float = 30.0
    request_timeout: float = 10.0
    first_wait: float = 0.5
    max_wait: float = 2.0


class GaveUp(Exception):
    """A transient error went on for longer than the retry timeout."""

    def __init__(self, what: str, cause: BaseException, attempts: int, seconds: float) -> None:
        super().__init__(f"{what}: {describe(cause)} after {attempts} tries in {seconds:.0f} s")
        self.what, self.cause, self.attempts, self.seconds = what, cause, attempts, seconds


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: 429/5xx answers, timeouts, dropped connections."""
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUS
    return isinstance(error, (TimeoutError, aiohttp.ClientConnectionError))


def describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        try:
            return f"HTTP {error.status} {HTTPStatus(int(error.status)).phrase}"
        except (TypeError, ValueError):
            return f"HTTP {error.status}"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return type(error).__name__


async def with_retries(call: Callable[[], Awaitable[_T]], what: str, policy: RetryPolicy) -> _T:
    """``await call()``, retried on transient errors; GaveUp once ``retry_timeout`` is spent."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + policy.retry_timeout
    wait = policy.first_wait
    attempts = 0
    while True:
        attempts += 1
        try:
            async with asyncio.timeout(policy.request_timeout):
                return await call()
        except Exception as error:
            if not is_transient(error):
                raise
            pause = min(wait, policy.max_wait) * random.uniform(0.8, 1.0)
            if loop.time() + pause > deadline:
                raise GaveUp(what, error, attempts, loop.time() - started) from error
            log.info("%s: %s, trying again in %.1f s", what, describe(error), pause)
            await asyncio.sleep(pause)
            wait *= 2
