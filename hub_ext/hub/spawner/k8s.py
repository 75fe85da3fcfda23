"""Creating a student's pod and home volume from LabHub's plain manifests.

KubeSpawner creates objects from kubernetes_asyncio models. LabHub builds its manifests as dicts
(:mod:`hub_ext.core.manifests`), and turning one into a model (JSON text, then the model
classes), back into JSON for the request and the answer into a model again costs more CPU on the
hub's event loop than the request itself. These functions send the dict and read the answer as
JSON; what they retry, accept and log is what KubeSpawner's ``_make_create_pod_request`` and
``_make_create_pvc_request`` do (a pod of the same name is stopped and the create retried; an
existing home volume is accepted, also when a quota refuses a new one).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.adapters.k8s.informer import read_json

__all__ = ["create_pod", "create_pvc"]


async def _send(request: Awaitable[Any]) -> Any:
    """The JSON answer of a ``_preload_content=False`` call; ApiException for non-2xx."""
    return await read_json(await request)


async def _created(
    spawner: Any, kind: str, name: str, request: Awaitable[Any], request_timeout: float
) -> bool:
    """Send a create ``request``; False when it timed out (to be retried)."""
    spawner.log.info(f"Attempting to create {kind} {name}, with timeout {request_timeout}")
    try:
        await asyncio.wait_for(_send(request), request_timeout)
    except TimeoutError:
        return False
    return True


async def create_pod(spawner: Any, pod: dict[str, Any], request_timeout: float) -> bool:
    """Create ``pod``; False to be retried (with ``exponential_backoff``), as KubeSpawner does."""
    name = pod["metadata"]["name"]
    request = spawner.api.create_namespaced_pod(spawner.namespace, pod, _preload_content=False)
    try:
        return await _created(spawner, "pod", name, request, request_timeout)
    except ApiException as e:
        if e.status != 409:
            spawner.log.exception("Failed for %s", json.dumps(pod))
            raise
        spawner.log.info(f"Found existing pod {name}, attempting to kill")
        await spawner.stop(True)
        spawner.log.info(f"Killed pod {name}, will try starting singleuser pod again")
        return False


async def create_pvc(spawner: Any, pvc: dict[str, Any], request_timeout: float) -> bool:
    """Create the home volume ``pvc`` unless it exists; False to be retried."""
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
