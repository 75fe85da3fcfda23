"""The controller manager: runs the workload controllers against the API server's store.

Like kube-controller-manager, each controller reconciles one object at a time from a work queue
and only changes the world through the API verbs (:class:`~hub_ext.devcluster.api_objects.Objects`:
defaulting, validation, resourceVersions and watch events all apply). Unlike it, the controllers
run in the API server's process and read the store directly: the store calls
:meth:`ControllerManager.observe` for every change, which queues the objects to reconcile (the
object itself, its controller owner, the Services and budgets that select a pod). Reconciling is
synchronous, so a controller always sees the result of its own writes. The clock is injectable
(``clock``), for CronJob schedules, ``minReadySeconds``, deadlines and TTLs in tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hub_ext.devcluster.api_errors import ApiError
from hub_ext.devcluster.api_objects import Objects
from hub_ext.devcluster.controllers import garbage
from hub_ext.devcluster.controllers.labels import controller_of, labels_of, selector_matches
from hub_ext.devcluster.store import Change

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Ident = tuple[str, str, str]  # store key, namespace, name
Reconciler = Callable[["ControllerManager", str, str], None]
OWNER_KEYS = {
    "ReplicaSet": "replicasets.apps",
    "Deployment": "deployments.apps",
    "DaemonSet": "daemonsets.apps",
    "StatefulSet": "statefulsets.apps",
    "Job": "jobs.batch",
    "CronJob": "cronjobs.batch",
}
PDBS = "poddisruptionbudgets.policy"


def iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


class ControllerManager:
    """Deployments, ReplicaSets, DaemonSets, Jobs, CronJobs, Endpoints, PDBs and foreground GC."""

    def __init__(
        self, objects: Objects, clock: Callable[[], float] = time.time, tick: float = 0.5
    ) -> None:
        from hub_ext.devcluster.controllers import (
            cronjobs,
            daemonsets,
            deployments,
            disruption,
            endpoints,
            jobs,
            replicasets,
            statefulsets,
        )

        self.objects = objects
        self.store = objects.store
        self.clock = clock
        self.tick = tick
        self.reconcilers: dict[str, Reconciler] = {
            "deployments.apps": deployments.reconcile,
            "replicasets.apps": replicasets.reconcile,
            "daemonsets.apps": daemonsets.reconcile,
            "statefulsets.apps": statefulsets.reconcile,
            "jobs.batch": jobs.reconcile,
            "cronjobs.batch": cronjobs.reconcile,
            "services": endpoints.reconcile,
            PDBS: disruption.reconcile,
        }
        self.queue: dict[Ident, None] = {}
        self.later: dict[Ident, float] = {}  # requeue at clock time
        self.foreground: set[Ident] = set()
        self.memory: dict[str, Any] = {}  # per-controller state (back-off counters)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is not None:
            return
        self.store.observers.append(self.observe)
        for key in self.reconcilers:
            for ns, name in list(self.store.objects.get(key, {})):
                self.enqueue((key, ns, name))
        self._task = asyncio.create_task(self._loop(), name="devcluster-controllers")

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.store.observers.remove(self.observe)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def enqueue(self, ident: Ident) -> None:
        self.queue[ident] = None
        self._wake.set()

    def requeue_after(self, ident: Ident, seconds: float) -> None:
        due = self.clock() + seconds
        self.later[ident] = min(self.later.get(ident, due), due)

    # -- routing -------------------------------------------------------------------------------
    def observe(self, change: Change) -> None:
        """Queue what ``change`` concerns (called by the store; must not write or raise)."""
        try:
            self._route(change)
        except Exception:  # the write that caused the change has happened; never fail it
            log.exception("could not route a change of %s", change.key)

    def _route(self, change: Change) -> None:
        obj, key = change.obj, change.key
        meta = obj["metadata"]
        ns = meta.get("namespace") or ""
        if key in self.reconcilers:
            self.enqueue((key, ns, meta["name"]))
        ref = controller_of(obj) or (controller_of(change.old) if change.old else None)
        if ref is not None and ref.get("kind") in OWNER_KEYS:
            owner_key = OWNER_KEYS[ref["kind"]]
            self.enqueue((owner_key, ns, ref.get("name", "")))
            owner = self.store.get(owner_key, ns, ref.get("name", ""))
            grand = controller_of(owner) if owner is not None else None
            if grand is not None and grand.get("kind") in OWNER_KEYS:  # a Deployment's pod
                self.enqueue((OWNER_KEYS[grand["kind"]], ns, grand.get("name", "")))
        if garbage.FOREGROUND in (meta.get("finalizers") or []):
            self.foreground.add((key, ns, meta["name"]))
        if change.type == "DELETED" and self.foreground:
            self._wake.set()
        if key == "pods":
            self._pod_changed(obj, change.old)
        elif key == "nodes":
            for ds_ns, ds_name in list(self.store.objects.get("daemonsets.apps", {})):
                self.enqueue(("daemonsets.apps", ds_ns, ds_name))

    def _pod_changed(self, pod: Obj, old: Obj | None) -> None:
        ns = pod["metadata"].get("namespace") or ""
        labels, old_labels = labels_of(pod), labels_of(old) if old else None
        for key, field in (("services", "selector"), (PDBS, "selector")):
            for (obj_ns, name), obj in self.store.objects.get(key, {}).items():
                if obj_ns != ns:
                    continue
                selector = (obj.get("spec") or {}).get(field)
                if not selector:
                    continue
                if key == "services":
                    selector = {"matchLabels": selector}
                if selector_matches(selector, labels) or (
                    old_labels is not None and selector_matches(selector, old_labels)
                ):
                    self.enqueue((key, ns, name))

    # -- the loop ------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tick):
                    await self._wake.wait()
            self._wake.clear()
            now = self.clock()
            for ident, due in list(self.later.items()):
                if due <= now:
                    del self.later[ident]
                    self.queue[ident] = None
            for ns, name in list(self.store.objects.get("cronjobs.batch", {})):
                self.queue[("cronjobs.batch", ns, name)] = None
            rounds = 0
            while self.queue and rounds < 10000:
                ident = next(iter(self.queue))
                del self.queue[ident]
                self.run_one(ident)
                rounds += 1
                if rounds % 50 == 0:
                    await asyncio.sleep(0)
            if self.foreground:
                garbage.finish_foreground(self.objects, self.foreground)

    def run_one(self, ident: Ident) -> None:
        key, ns, name = ident
        try:
            self.reconcilers[key](self, ns, name)
        except ApiError as exc:
            log.debug("reconciling %s %s/%s: %s", key, ns, name, exc)
            self.requeue_after(ident, 1.0)
        except Exception:  # one broken object must not stop the controllers
            log.exception("reconciling %s %s/%s failed", key, ns, name)
            self.requeue_after(ident, 5.0)

    # -- helpers for the controllers -----------------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def get(self, key: str, ns: str, name: str) -> Obj | None:
        return self.store.get(key, ns, name)

    def owned(self, owner: Obj, key: str) -> list[Obj]:
        """The objects of ``key`` whose controller ownerReference is ``owner``."""
        uid = owner["metadata"]["uid"]
        out = []
        for dep_key, ns, name in self.store.dependents.get(uid, ()):
            if dep_key != key:
                continue
            obj = self.store.get(key, ns, name)
            ref = controller_of(obj) if obj is not None else None
            if obj is not None and ref is not None and ref.get("uid") == uid:
                out.append(obj)
        return sorted(
            out, key=lambda o: (o["metadata"].get("creationTimestamp") or "", o["metadata"]["name"])
        )

    def in_namespace(self, key: str, ns: str) -> list[Obj]:
        return [o for (o_ns, _), o in self.store.objects.get(key, {}).items() if o_ns == ns]

    def create(self, key: str, ns: str, body: Obj) -> Obj | None:
        rtype = self.objects.registry.by_key[key]
        try:
            return self.objects.create(rtype, ns, body)
        except ApiError as exc:
            if exc.code == 409:
                return None
            raise

    def update(self, key: str, obj: Obj) -> Obj:
        rtype = self.objects.registry.by_key[key]
        meta = obj["metadata"]
        return self.objects.update(rtype, meta.get("namespace") or "", meta["name"], obj, None)

    def set_status(self, key: str, obj: Obj, status: Obj) -> Obj:
        """Write ``status`` if it differs from the object's."""
        if obj.get("status") == status:
            return obj
        rtype = self.objects.registry.by_key[key]
        meta = obj["metadata"]
        body = {**copy.deepcopy(obj), "status": status}
        return self.objects.update(rtype, meta.get("namespace") or "", meta["name"], body, "status")

    def delete(self, key: str, ns: str, name: str, policy: str = "Background") -> None:
        rtype = self.objects.registry.by_key[key]
        try:
            self.objects.delete(rtype, ns, name, {"propagationPolicy": policy})
        except ApiError as exc:
            if exc.code != 404:
                raise

    def event(
        self, obj: Obj, reason: str, message: str, component: str, warning: bool = False
    ) -> None:
        """Record a core/v1 Event about ``obj`` (best effort)."""
        meta = obj["metadata"]
        stamp = iso(time.time())
        body = {
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}"},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": component},
            "reportingComponent": component,
        }
        with contextlib.suppress(ApiError):
            self.create("events", meta.get("namespace") or "default", body)
