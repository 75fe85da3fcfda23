"""Node heartbeats, readiness faults and the node lifecycle controller, over the HTTP API.

- :class:`NodeAgent` (the kubelet's node side) registers its Node, renews its Lease in
  ``kube-node-lease`` and keeps the ``Ready`` condition up to date. ``set_ready(False)`` is the
  fault "this node is NotReady": heartbeats stop and ``Ready`` becomes ``False``.
- :class:`NodeLifecycleController` (the controller manager's part) marks nodes whose Lease has
  not been renewed within ``monitor_grace`` as ``Unknown``, taints not-ready nodes
  (``node.kubernetes.io/not-ready`` or ``unreachable``, NoSchedule and NoExecute) and marks their
  pods for eviction (a graceful delete) once ``eviction_timeout`` has passed (it stands in for
  the 300 s of the default tolerations the API server adds), or the pod's own
  ``tolerationSeconds`` for that taint; a toleration without ``tolerationSeconds`` keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoordinationV1Api, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster import scheduling
from hub_ext.devcluster.events import now_iso, record
from hub_ext.devcluster.informer import Informer, api_client, key_of, request

log = logging.getLogger(__name__)
Obj = dict[str, Any]
MERGE = "application/merge-patch+json"
LEASE_NAMESPACE = "kube-node-lease"
#: The tolerationSeconds of the default not-ready/unreachable tolerations that the API server
#: adds to every pod; ``eviction_timeout`` replaces it (like kube-apiserver's
#: --default-not-ready-toleration-seconds).
DEFAULT_TOLERATION_SECONDS = 300.0
TRANSIENT = (ApiException, aiohttp.ClientError, OSError)


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    return None


def ready_condition(
    ready: bool, reason: str = "", message: str = "", since: str | None = None
) -> Obj:
    stamp = now_iso()
    return {
        "type": "Ready",
        "status": "True" if ready else "False",
        "reason": reason or ("KubeletReady" if ready else "KubeletNotReady"),
        "message": message or ("kubelet is posting ready status" if ready else "node is not ready"),
        "lastHeartbeatTime": stamp,
        "lastTransitionTime": since or stamp,
    }


class NodeAgent:
    """Registers one node and keeps its Lease and Ready condition fresh."""

    def __init__(self, api_url: str, node: Obj, heartbeat_seconds: float = 2.0) -> None:
        self.node = node
        self.name = str(node["metadata"]["name"])
        self.heartbeat_seconds = heartbeat_seconds
        self._client = api_client(api_url, node=self.name)
        self._core = CoreV1Api(self._client)
        self._leases = CoordinationV1Api(self._client)
        self.ready = True
        self._since = now_iso()  # when Ready last changed
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._register()
        await self._renew_lease()
        self._task = asyncio.create_task(self._beat(), name=f"heartbeat-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.close()

    async def set_ready(self, ready: bool, message: str = "") -> None:
        """Fault injection: ``False`` stops the heartbeats and reports ``Ready=False``."""
        if ready != self.ready:
            self._since = now_iso()
        self.ready = ready
        await self._post_ready(message)
        if ready:
            await self._renew_lease()

    async def _register(self) -> None:
        body = {**self.node, "status": {**self.node["status"], "conditions": []}}
        body["status"]["conditions"] = [ready_condition(True)]
        for attempt in range(50):
            try:
                await request(self._core.create_node(body, _preload_content=False))
                return
            except ApiException as exc:
                if exc.status == 409:
                    patch = {"metadata": {"labels": self.node["metadata"]["labels"]}}
                    await request(
                        self._core.patch_node(
                            self.name, patch, _content_type=MERGE, _preload_content=False
                        )
                    )
                    await self._post_ready()
                    return
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(min(0.05 * 2**attempt, 1.0))

    async def _post_ready(self, message: str = "") -> None:
        status = {
            "conditions": [ready_condition(self.ready, message=message, since=self._since)],
            "capacity": self.node["status"]["capacity"],
            "allocatable": self.node["status"]["allocatable"],
            "addresses": self.node["status"]["addresses"],
            "nodeInfo": self.node["status"]["nodeInfo"],
        }
        with contextlib.suppress(*TRANSIENT):
            await request(
                self._core.patch_node_status(
                    self.name, {"status": status}, _content_type=MERGE, _preload_content=False
                )
            )

    async def _renew_lease(self) -> None:
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": 40,
            "renewTime": _micro_now(),
        }
        with contextlib.suppress(*TRANSIENT):
            try:
                await request(
                    self._leases.patch_namespaced_lease(
                        self.name,
                        LEASE_NAMESPACE,
                        {"spec": spec},
                        _content_type=MERGE,
                        _preload_content=False,
                    )
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
                    "spec": spec,
                }
                await request(
                    self._leases.create_namespaced_lease(
                        LEASE_NAMESPACE, body, _preload_content=False
                    )
                )

    async def _beat(self) -> None:
        beats = 0
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            if not self.ready:
                continue
            await self._renew_lease()
            beats += 1
            if beats % 5 == 0:
                await self._post_ready()


@dataclass(frozen=True)
class LifecycleSettings:
    eviction_timeout: float = 300.0  # seconds a pod stays on a not-ready node
    monitor_grace: float = 40.0  # seconds without a lease renewal before Ready=Unknown
    period: float = 0.2


def _toleration_seconds(pod: Obj, taint_key: str) -> float | bool | None:
    """Seconds the pod tolerates the NoExecute taint; None: forever; False: not tolerated."""
    for tol in (pod.get("spec") or {}).get("tolerations") or []:
        taint = {"key": taint_key, "effect": "NoExecute"}
        if scheduling.tolerates([tol], taint):
            seconds = tol.get("tolerationSeconds")
            return None if seconds is None else float(seconds)
    return False


class NodeLifecycleController:
    """Watches nodes, leases and pods; taints not-ready nodes and evicts their pods."""

    def __init__(self, api_url: str, settings: LifecycleSettings | None = None) -> None:
        self.settings = settings or LifecycleSettings()
        self._client = api_client(api_url)
        self._core = CoreV1Api(self._client)
        self._leases_api = CoordinationV1Api(self._client)
        self._wake = asyncio.Event()
        self._nodes = Informer(self._core.list_node, self._changed, "lifecycle-nodes")
        self._pods = Informer(
            self._core.list_pod_for_all_namespaces, self._changed, "lifecycle-pods"
        )
        self._leases = Informer(self._list_leases, self._changed, "lifecycle-leases")
        self._not_ready_since: dict[str, float] = {}
        self._evicted: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def _list_leases(self, **kwargs: Any) -> Any:
        return self._leases_api.list_namespaced_lease(LEASE_NAMESPACE, **kwargs)

    def _changed(self, kind: str, obj: Obj) -> None:
        self._wake.set()

    async def start(self) -> None:
        for informer in (self._nodes, self._pods, self._leases):
            informer.start()
        self._task = asyncio.create_task(self._loop(), name="node-lifecycle")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for informer in (self._nodes, self._pods, self._leases):
            await informer.stop()
        await self._client.close()

    async def _loop(self) -> None:
        for informer in (self._nodes, self._pods, self._leases):
            await informer.synced.wait()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.period):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node lifecycle check failed")

    async def _check(self) -> None:
        now = time.time()
        for node in list(self._nodes.cache.values()):
            name = str(node["metadata"]["name"])
            lease = self._leases.cache.get((LEASE_NAMESPACE, name))
            renewed = _parse_time(((lease or {}).get("spec") or {}).get("renewTime"))
            stale = renewed is not None and now - renewed > self.settings.monitor_grace
            ready = scheduling.node_is_ready(node)
            if ready and stale:
                await self._mark_unknown(node)
                ready = False
            if ready:
                if self._not_ready_since.pop(name, None) is not None or _has_taints(node):
                    await self._set_taints(node, None)
                continue
            since = self._not_ready_since.setdefault(name, now)
            taint_key = _taint_key(node)
            if not _has_taints(node, taint_key):
                await self._set_taints(node, taint_key)
            await self._evict(name, taint_key, now - since)

    async def _mark_unknown(self, node: Obj) -> None:
        condition = {
            **ready_condition(False, "NodeStatusUnknown", "Kubelet stopped posting node status."),
            "status": "Unknown",
        }
        with contextlib.suppress(*TRANSIENT):
            await request(
                self._core.patch_node_status(
                    node["metadata"]["name"],
                    {"status": {"conditions": [condition]}},
                    _content_type=MERGE,
                    _preload_content=False,
                )
            )

    async def _set_taints(self, node: Obj, taint_key: str | None) -> None:
        keep = [
            t
            for t in (node.get("spec") or {}).get("taints") or []
            if t.get("key") not in (scheduling.NOT_READY_TAINT, scheduling.UNREACHABLE_TAINT)
        ]
        if taint_key is not None:
            stamp = now_iso()
            keep += [
                {"key": taint_key, "effect": "NoSchedule"},
                {"key": taint_key, "effect": "NoExecute", "timeAdded": stamp},
            ]
        with contextlib.suppress(*TRANSIENT):
            await request(
                self._core.patch_node(
                    node["metadata"]["name"],
                    {"spec": {"taints": keep}},
                    _content_type=MERGE,
                    _preload_content=False,
                )
            )

    async def _evict(self, node: str, taint_key: str, not_ready_for: float) -> None:
        for pod in list(self._pods.cache.values()):
            meta = pod.get("metadata") or {}
            if (pod.get("spec") or {}).get("nodeName") != node or meta.get("deletionTimestamp"):
                continue
            if scheduling.is_terminal(pod) or str(meta.get("uid")) in self._evicted:
                continue
            tolerated = _toleration_seconds(pod, taint_key)
            if tolerated is None:
                continue
            default = tolerated is False or tolerated == DEFAULT_TOLERATION_SECONDS
            limit = self.settings.eviction_timeout if default else float(tolerated)
            if not_ready_for < limit:
                continue
            namespace, name = key_of(pod)
            self._evicted.add(str(meta.get("uid")))
            try:
                await request(
                    self._core.delete_namespaced_pod(name, namespace, _preload_content=False)
                )
            except TRANSIENT:
                self._evicted.discard(str(meta.get("uid")))
                continue
            await record(
                self._core,
                pod,
                "TaintManagerEviction",
                f"Marking for deletion Pod {namespace}/{name}",
                component="taint-eviction-controller",
            )


def _taint_key(node: Obj) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "Unknown":
            return scheduling.UNREACHABLE_TAINT
    return scheduling.NOT_READY_TAINT


def _has_taints(node: Obj, key: str | None = None) -> bool:
    keys = {t.get("key") for t in (node.get("spec") or {}).get("taints") or []}
    if key is None:
        return bool(keys & {scheduling.NOT_READY_TAINT, scheduling.UNREACHABLE_TAINT})
    return key in keys
