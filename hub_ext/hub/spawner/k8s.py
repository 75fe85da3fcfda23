"""Creating a student's pod and home volume, with retries of transient API errors.

LabKubeSpawner sends the manifests as dicts and reads the answer as JSON (turning a dict into a
kubernetes_asyncio model and back costs more CPU on the hub's event loop than the request
itself). What is accepted follows KubeSpawner's own create requests: a pod of the same name is
stopped and the create tried again; an existing home volume is accepted, also when a quota refuses
a new one. On top of that, :func:`with_retries` retries what may pass by itself (HTTP 429, 500,
502, 503, 504, a request timeout, a lost connection) with back-off for up to
``k8s_api_request_retry_timeout`` seconds, and only then gives up with one message for the
student.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException
from tornado import web

from hub_ext.adapters.k8s.informer import read_json

__all__ = ["TRANSIENT_STATUS", "create_pod", "create_pvc", "with_retries"]

#: API answers that may pass by themselves: too many requests, server errors, unavailable.
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
FIRST_WAIT = 0.5
MAX_WAIT = 5.0


class Transient(Exception):
    """One failed attempt that is worth repeating; ``reason`` says what happened."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(e: ApiException) -> str:
    """``HTTP 503: <the Status message>`` (the answer's text is in ``body`` or, for requests
    read as JSON here, in ``reason``)."""
    text = str(e.body or e.reason or "")
    try:
        answer = json.loads(text)
        message = str(answer.get("message") or "") if isinstance(answer, dict) else text
    except ValueError:
        message = text
    return f"HTTP {e.status}: {message[:200]}" if message else f"HTTP {e.status}"


async def _send(request: Awaitable[Any]) -> Any:
    """The JSON answer of a ``_preload_content=False`` call; ApiException for non-2xx."""
    return await read_json(await request)


async def _created(
    spawner: Any, kind: str, name: str, request: Awaitable[Any], request_timeout: float
) -> bool:
    """Send a create ``request``; a timeout, a lost connection or a transient answer raises
    :class:`Transient`."""
    spawner.log.info(f"Attempting to create {kind} {name}, with timeout {request_timeout}")
    try:
        await asyncio.wait_for(_send(request), request_timeout)
    except TimeoutError:
        raise Transient(f"no answer within {request_timeout} s") from None
    except (aiohttp.ClientConnectionError, OSError) as e:
        raise Transient(f"connection failed ({e})") from None
    except ApiException as e:
        if e.status in TRANSIENT_STATUS:
            raise Transient(_reason(e)) from None
        raise
    return True


async def create_pod(spawner: Any, pod: dict[str, Any], request_timeout: float) -> bool:
    """Create ``pod``; False when a pod of the same name was in the way and has been stopped
    (try again); :class:`Transient` for an error worth retrying."""
    name = pod["metadata"]["name"]
    request = spawner.api.create_namespaced_pod(spawner.namespace, pod, _preload_content=False)
    try:
        return await _created(spawner, "pod", name, request, request_timeout)
    except ApiException as e:
        if e.status != 409:
            spawner.log.error("Failed for %s: %s", json.dumps(pod)[:2000], _reason(e))
            raise
        spawner.log.info(f"Found existing pod {name}, attempting to kill")
        await spawner.stop(True)
        spawner.log.info(f"Killed pod {name}, will try starting singleuser pod again")
        return False


async def create_pvc(spawner: Any, pvc: dict[str, Any], request_timeout: float) -> bool:
    """Create the home volume ``pvc`` unless it exists; :class:`Transient` to be retried."""
    name = pvc["metadata"]["name"]
    request = spawner.api.create_namespaced_persistent_volume_claim(
        namespace=spawner.namespace, body=pvc, _preload_content=False
    )
    try:
        return await _created(spawner, "pvc", name, request, request_timeout)
    except ApiException as e:
        if e.status == 409:
            spawner.log.info(f"PVC {name} already exists, so did not create new pvc.")
            return True
        if e.status != 403:
            raise
        # a quota may refuse a new claim although this one exists: look before failing
        try:
            await _send(
                spawner.api.read_namespaced_persistent_volume_claim(
                    name=name, namespace=spawner.namespace, _preload_content=False
                )
            )
        except ApiException:
            raise e from None
        spawner.log.info(f"PVC {name} already exists, possibly have reached quota though.")
        return True


async def with_retries(
    spawner: Any, what: str, attempt: Callable[[], Awaitable[bool]], retry_timeout: float
) -> None:
    """Run ``attempt`` until it returns True, waiting 0.5 s, 1 s, 2 s ... (at most 5 s) after a
    transient failure or a False, for up to ``retry_timeout`` seconds in all.

    Gives up with ``web.HTTPError(503)`` that tells the student what failed and what to do; an
    error that is not transient ends at once with ``web.HTTPError(500)`` for the operators.
    """
    deadline = time.monotonic() + retry_timeout
    wait, last = FIRST_WAIT, "it was in the way of a previous server"
    tries = 0
    while True:
        tries += 1
        try:
            if await attempt():
                return
        except Transient as e:
            last = e.reason
            spawner.log.warning("Creating %s failed (%s); will retry", what, e.reason)
        except ApiException as e:
            raise web.HTTPError(
                500,
                f"The cluster refused to create {what} ({_reason(e)}). "
                "This needs the lab's operators: please tell them.",
            ) from None
        if time.monotonic() + wait > deadline:
            spawner.log.error(
                "Giving up on creating %s after %d tries in %s s: %s",
                what,
                tries,
                retry_timeout,
                last,
            )
            raise web.HTTPError(
                503,
                f"The cluster did not accept {what} for {retry_timeout} seconds "
                f"({tries} tries; last answer: {last}). Nothing was left behind: "
                "press Start again in a minute, and tell the lab's operators if it keeps "
                "happening.",
            )
        await asyncio.sleep(wait)
        wait = min(MAX_WAIT, wait * 2)
