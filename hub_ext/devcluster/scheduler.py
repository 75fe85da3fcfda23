"""The scheduler: binds pending pods to nodes like kube-scheduler, over the HTTP API.

It watches nodes and pods, and for every pod that has no node, is addressed to one of its
scheduler names and is not being deleted it either

- leaves it Pending with condition ``PodScheduled=False`` reason ``SchedulingGated`` while
  ``spec.schedulingGates`` is not empty,
- binds it (``pods/binding``) to the best feasible node and records a ``Scheduled`` event, or
- marks it ``PodScheduled=False`` reason ``Unschedulable`` and records a ``FailedScheduling``
  event worded like kube-scheduler's; it is retried whenever nodes or pods change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from functools import partial
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster import scheduling
from hub_ext.devcluster.events import now_iso, record
from hub_ext.devcluster.informer import Informer, api_client, key_of, request

log = logging.getLogger(__name__)
Obj = dict[str, Any]
COMPONENT = "default-scheduler"
MERGE = "application/merge-patch+json"


class Scheduler:
    """A kube-scheduler look-alike for the scheduler names in ``names``."""

    def __init__(self, api_url: str, names: tuple[str, ...] = (COMPONENT,)) -> None:
        self.api_url = api_url
        self.names = names
        self._client = api_client(api_url, "scheduler")
        self._core = CoreV1Api(self._client)
        self._dirty = asyncio.Event()
        self._assumed: dict[tuple[str, str], str] = {}  # pod key -> node, until the watch says
        self._reported: dict[tuple[str, str], str] = {}  # pod key -> last condition message
        self._nodes = Informer(self._core.list_node, self._on_change, "scheduler-nodes")
        self._pods = Informer(
            partial(self._core.list_pod_for_all_namespaces), self._on_change, "scheduler-pods"
        )
        self._request_cache: dict[str, dict[str, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending_writes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._nodes.start()
        self._pods.start()
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._pending_writes):
            task.cancel()
        await asyncio.gather(*self._pending_writes, return_exceptions=True)
        await self._nodes.stop()
        await self._pods.stop()
        await self._client.close()

    def _on_change(self, kind: str, obj: Obj) -> None:
        if obj.get("kind") == "Pod" or "containers" in (obj.get("spec") or {}):
            key = key_of(obj)
            if kind == "DELETED" or (obj.get("spec") or {}).get("nodeName"):
                self._assumed.pop(key, None)
            if kind == "DELETED":
                self._reported.pop(key, None)
                self._request_cache.pop(str((obj.get("metadata") or {}).get("uid")), None)
        self._dirty.set()

    def _wanted(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (
            not spec.get("nodeName")
            and not (pod.get("metadata") or {}).get("deletionTimestamp")
            and not scheduling.is_terminal(pod)
            and scheduling.scheduler_name(pod) in self.names
            and key_of(pod) not in self._assumed
        )

    async def _loop(self) -> None:
        await self._nodes.synced.wait()
        await self._pods.synced.wait()
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                self._round()
            except Exception:  # keep scheduling; a bad object must not stop the scheduler
                log.exception("scheduling round failed")
            await asyncio.sleep(0)

    def _round(self) -> None:
        pending = [p for p in self._pods.cache.values() if self._wanted(p)]
        if not pending:
            return
        pending.sort(
            key=lambda p: (
                -int((p.get("spec") or {}).get("priority") or 0),
                (p.get("metadata") or {}).get("creationTimestamp") or "",
            )
        )
        nodes = list(self._nodes.cache.values())
        used: dict[str, Counter[str]] = {}
        for key, pod in self._pods.cache.items():
            node = (pod.get("spec") or {}).get("nodeName") or self._assumed.get(key)
            if node and not scheduling.is_terminal(pod):
                used.setdefault(node, Counter()).update(self._requests(pod))
        for pod in pending:
            key = key_of(pod)
            if scheduling.is_gated(pod):
                gates = ", ".join(g.get("name", "") for g in pod["spec"]["schedulingGates"])
                self._report(pod, "SchedulingGated", f"Scheduling is blocked due to gates: {gates}")
                continue
            decision = scheduling.decide(pod, nodes, used)
            if decision.node is None:
                self._report(pod, "Unschedulable", decision.message)
                continue
            self._assumed[key] = decision.node
            used.setdefault(decision.node, Counter()).update(self._requests(pod))
            self._spawn(self._bind(pod, decision.node))

    def _requests(self, pod: Obj) -> dict[str, int]:
        """The pod's requests, parsed once per pod uid (a pod's resources are immutable)."""
        uid = str((pod.get("metadata") or {}).get("uid") or key_of(pod))
        cached = self._request_cache.get(uid)
        if cached is None:
            cached = self._request_cache[uid] = scheduling.pod_requests(pod)
        return cached

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    def _report(self, pod: Obj, reason: str, message: str) -> None:
        key = key_of(pod)
        if self._reported.get(key) == f"{reason}:{message}":
            return
        self._reported[key] = f"{reason}:{message}"
        self._spawn(self._mark_unscheduled(pod, reason, message))

    async def _mark_unscheduled(self, pod: Obj, reason: str, message: str) -> None:
        namespace, name = key_of(pod)
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": now_iso(),
        }
        others = [
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") != "PodScheduled"
        ]
        body = {"status": {"phase": "Pending", "conditions": [*others, condition]}}
        try:
            await request(
                self._core.patch_namespaced_pod_status(
                    name, namespace, body, _content_type=MERGE, _preload_content=False
                )
            )
        except (ApiException, aiohttp.ClientError, OSError) as exc:
            log.debug("could not update %s/%s: %r", namespace, name, exc)
            self._reported.pop(key_of(pod), None)
            return
        if reason == "Unschedulable":
            await record(
                self._core, pod, "FailedScheduling", message, component=COMPONENT, warning=True
            )

    async def _bind(self, pod: Obj, node: str) -> None:
        namespace, name = key_of(pod)
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await request(
                self._core.create_namespaced_pod_binding(
                    name, namespace, body, _preload_content=False
                )
            )
        except (ApiException, aiohttp.ClientError, OSError) as exc:
            log.debug("binding %s/%s to %s failed: %r", namespace, name, node, exc)
            self._assumed.pop((namespace, name), None)
            await asyncio.sleep(0.1)
            self._dirty.set()
            return
        self._reported.pop((namespace, name), None)
        await record(
            self._core,
            pod,
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {node}",
            component=COMPONENT,
        )
