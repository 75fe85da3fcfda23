"""The few KubeSpawner internals LabKubeSpawner relies on, each behind one small function.

LabKubeSpawner overrides only KubeSpawner's public methods (``start``, ``stop``, ``poll``,
``progress``, ``get_pod_manifest``, ``get_pvc_manifest``, the state methods) and runs its
documented hooks (``modify_pod_hook``, ``after_pod_created_hook``). KubeSpawner offers no public
way to start its pod watcher, to turn a running pod into the server URL, or to tell its
``progress()`` that the start is over, so these wrappers call the internals that do it. The test
``tests/hub/spawner/test_kubespawner_seams.py`` fails when a KubeSpawner release changes any of them
(:data:`USED` lists what it checks).
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["USED", "pod_url", "set_start_future", "start_watching"]

#: KubeSpawner internals used here: (name, kind) with kind "coroutine", "method" or "attribute".
USED = (
    ("_start_watching_pods", "coroutine"),
    ("_start_watching_events", "coroutine"),
    ("_get_pod_url", "method"),
    ("_start_future", "attribute"),
    ("_last_event", "attribute"),
)


async def start_watching(spawner: Any) -> None:
    """Start (or reuse) the pod watcher, and the event watcher when ``events_enabled``, and
    remember the newest event so that ``progress()`` shows only this start's events (what
    KubeSpawner's own start does first)."""
    tasks = [asyncio.ensure_future(spawner._start_watching_pods())]
    if spawner.events_enabled:
        tasks.append(asyncio.ensure_future(spawner._start_watching_events()))
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    events = spawner.events if spawner.events_enabled else []
    if events:
        spawner._last_event = events[-1]["metadata"]["uid"]


def pod_url(spawner: Any, pod: dict[str, Any]) -> str:
    """The server URL of a running pod (pod IP, or the DNS name with ``services_enabled`` or
    internal SSL), as KubeSpawner returns it from its start."""
    return str(spawner._get_pod_url(pod))


def set_start_future(spawner: Any, future: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """Record the running start, which KubeSpawner's ``progress()`` watches to know when to end."""
    spawner._start_future = future
    return future
