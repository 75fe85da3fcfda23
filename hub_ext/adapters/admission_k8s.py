"""The slice admission controller: the Kubernetes side of :mod:`hub_ext.core.admission`.

It watches nodes and pods, keeps the free capacity per slice type in a
:class:`~hub_ext.core.capacity_index.CapacityIndex`, builds the queue from the pods that carry the
``labhub.io/slice-admission`` scheduling gate, applies the pure policy and lifts the gate of each
pod it admits. All queue state lives in the pods themselves (the gate, the labels, and the
``labhub.io/enqueued-at`` annotation), so a restarted hub rebuilds the same queue from a list.

The gate is lifted with a JSON merge patch that carries the pod's ``resourceVersion``: the API
server refuses it (409) if the pod changed since the controller looked, so a stale view can never
book a slice twice. The admitted pod is counted as *in flight* at once, before the watch reports
it, so one decision pass never hands the same free slice to two pods.

The controller is an ordinary object: the hub creates it, calls :meth:`start` and :meth:`stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.adapters.k8s_informer import Informer, Obj, read_json
from hub_ext.core.admission import (
    AdmissionDecision,
    AdmissionInput,
    AdmissionPolicy,
    Admitted,
    CourseSlug,
    EntryKey,
    QueueEntry,
    RunningSession,
    UserName,
    Waiting,
    decide,
)
from hub_ext.core.capacity import Node, Pod, PodPhase, PodUid, SliceCount, SliceType
from hub_ext.core.capacity_index import CapacityIndex
from hub_ext.core.manifests import (
    ANNOTATION_FALLBACKS,
    ANNOTATION_SERVER,
    ANNOTATION_USER,
    LABEL_COURSE,
    LABEL_GROUP,
    LABEL_SLICE_TYPE,
    SLICE_GATE,
)

log = logging.getLogger(__name__)
ANNOTATION_ENQUEUED = "labhub.io/enqueued-at"
ANNOTATION_ADMITTED = "labhub.io/admitted-at"
ANNOTATION_MEMBER = "labhub.io/course-member"
ANNOTATION_IDLE = "labhub.io/idle-timeout-seconds"
ANNOTATION_RUNTIME = "labhub.io/max-runtime-seconds"
ANNOTATION_DETACHED = "labhub.io/detached-at"
"""Set on a queued pod whose hub restarted: it keeps its place but is not admitted until the
student presses Start again (which removes the annotation)."""
PolicySource = Callable[[datetime], AdmissionPolicy]


def _now() -> datetime:
    return datetime.now(UTC)


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _seconds(text: str | None) -> timedelta | None:
    try:
        return timedelta(seconds=int(text)) if text else None
    except ValueError:
        return None


def _count(value: Any) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0


def _rv(obj: Obj) -> int:
    return _count((obj.get("metadata") or {}).get("resourceVersion") or 0)


def node_from_object(obj: Obj) -> Node:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    allocatable = {
        k: _count(v) for k, v in (status.get("allocatable") or {}).items() if k.startswith("nvidia")
    }
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return Node.from_labels(
        str(meta.get("name")),
        meta.get("labels") or {},
        allocatable,
        ready=ready,
        unschedulable=bool(spec.get("unschedulable")),
    )


def pod_from_object(obj: Obj) -> Pod:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    requests: dict[str, int] = {}
    for container in spec.get("containers") or []:
        res = container.get("resources") or {}
        merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
        for name, qty in merged.items():
            if name.startswith("nvidia.com/"):
                requests[name] = requests.get(name, 0) + _count(qty)
    try:
        phase = PodPhase(status.get("phase") or "Pending")
    except ValueError:
        phase = PodPhase.UNKNOWN
    gated = any(g.get("name") == SLICE_GATE for g in spec.get("schedulingGates") or [])
    return Pod(
        PodUid(str(meta.get("uid") or meta.get("name"))),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        requests,
        spec.get("nodeName"),
        phase,
        meta.get("labels") or {},
        gated,
    )


def entry_key(obj: Obj) -> EntryKey | None:
    notes = (obj.get("metadata") or {}).get("annotations") or {}
    user = notes.get(ANNOTATION_USER)
    return EntryKey(UserName(user), notes.get(ANNOTATION_SERVER, "")) if user else None


def queue_entry(obj: Obj) -> QueueEntry | None:
    """The queue entry of a gated LabHub pod; None for anything else."""
    pod = pod_from_object(obj)
    key = entry_key(obj)
    if key is None or not pod.gated or pod.phase.terminated:
        return None
    meta = obj["metadata"]
    notes, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    if notes.get(ANNOTATION_DETACHED) or meta.get("deletionTimestamp"):
        return None
    types = [t for t in (notes.get(ANNOTATION_FALLBACKS) or "").split(",") if t]
    if not types and labels.get(LABEL_SLICE_TYPE):
        types = [labels[LABEL_SLICE_TYPE]]
    enqueued = parse_time(notes.get(ANNOTATION_ENQUEUED)) or parse_time(
        meta.get("creationTimestamp")
    )
    return QueueEntry(
        key,
        CourseSlug(labels.get(LABEL_COURSE, "")),
        notes.get(LABEL_GROUP) or labels.get(LABEL_GROUP) or None,
        tuple(SliceType(t) for t in types[:1]),
        enqueued or _now(),
        notes.get(ANNOTATION_MEMBER, "true") != "false",
    )


def running_session(obj: Obj, now: datetime) -> RunningSession | None:
    pod = pod_from_object(obj)
    key = entry_key(obj)
    meta = obj.get("metadata") or {}
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    slice_type = labels.get(LABEL_SLICE_TYPE)
    if key is None or pod.gated or pod.phase.terminated or not slice_type:
        return None
    if meta.get("deletionTimestamp"):
        return None
    started = parse_time(notes.get(ANNOTATION_ADMITTED)) or parse_time(
        meta.get("creationTimestamp")
    )
    started = started or now
    return RunningSession(
        key,
        CourseSlug(labels.get(LABEL_COURSE, "")),
        labels.get(LABEL_GROUP) or None,
        SliceType(slice_type),
        started,
        started,
        _seconds(notes.get(ANNOTATION_IDLE)),
        _seconds(notes.get(ANNOTATION_RUNTIME)),
    )


class AdmissionController:
    """Lifts the slice-admission gate of the pods the policy admits, one pass per change."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        policy: PolicySource | None = None,
        clock: Callable[[], datetime] = _now,
        resync_seconds: float = 30.0,
    ) -> None:
        self.namespace = namespace
        self.core = CoreV1Api(api_client)
        self._policy = policy or (lambda _now: AdmissionPolicy())
        self._clock = clock
        self._resync = resync_seconds
        self.index = CapacityIndex()
        self.decision: AdmissionDecision | None = None
        self.admissions = 0
        self.conflicts = 0
        self._dirty = asyncio.Event()
        self._updated = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._patched: dict[PodUid, Obj] = {}
        self._nodes = Informer(self.core.list_node, self._on_node, "nodes")
        self._pods = Informer(
            lambda **kw: self.core.list_namespaced_pod(namespace, **kw), self._on_pod, "pods"
        )

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start watching; returns once nodes and pods are listed and the loop runs."""
        if self._task is not None:
            return
        self._nodes.start()
        self._pods.start()
        await asyncio.gather(self._nodes.synced.wait(), self._pods.synced.wait())
        self._task = asyncio.create_task(self._loop(), name="labhub-slice-admission")
        self._dirty.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._nodes.stop()
        await self._pods.stop()

    # -- queries for the spawner ----------------------------------------------------------------

    def status(self, user: str, server_name: str = "") -> Admitted | Waiting | None:
        if self.decision is None:
            return None
        return self.decision.status(EntryKey(UserName(user), server_name))

    def queue_length(self, slice_type: str) -> int:
        if self.decision is None:
            return 0
        return sum(1 for w in self.decision.waiting if w.slice_type == slice_type)

    def totals(self) -> dict[SliceType, SliceCount]:
        return self.index.totals()

    def free(self, slice_type: str) -> int:
        return self.index.free(slice_type)

    async def wait_for_update(self, timeout: float) -> None:
        """Return after the next decision pass, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._updated.wait(), timeout)

    def poke(self) -> None:
        """Ask for a decision pass (for example after a reservation window opened)."""
        self._dirty.set()

    # -- events ---------------------------------------------------------------------------------

    def _on_node(self, kind: str, obj: Obj) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        if kind == "DELETED":
            self.index.remove_node(name)
        else:
            self.index.update_node(node_from_object(obj))
        self._dirty.set()

    def _on_pod(self, kind: str, obj: Obj) -> None:
        pod = pod_from_object(obj)
        if kind == "DELETED":
            self._patched.pop(pod.uid, None)
            self.index.remove_pod(pod.uid)
        else:
            ours = self._patched.get(pod.uid)
            if ours is not None:
                if _rv(obj) < _rv(ours):
                    # an event older than our own patch: keep the admitted view
                    self._pods.cache[(pod.namespace, pod.name)] = ours
                    return
                del self._patched[pod.uid]
            self.index.update_pod(pod)
        self._dirty.set()

    # -- decisions ------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self._resync)
            self._dirty.clear()
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("slice admission pass failed; retrying")
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def run_once(self) -> AdmissionDecision:
        """One decision pass: admit whom the policy admits, publish positions for the rest."""
        now = self._clock()
        objects = list(self._pods.cache.values())
        entries, running, by_key = [], [], {}
        for obj in objects:
            entry = queue_entry(obj)
            if entry is not None:
                entries.append(entry)
                by_key[entry.key] = obj
                continue
            session = running_session(obj, now)
            if session is not None:
                running.append(session)
        state = AdmissionInput(
            now, self.index.free_by_type(), tuple(entries), tuple(running), self._policy(now)
        )
        decision = decide(state)
        results = await asyncio.gather(
            *(self._admit(by_key[a.key], a, now) for a in decision.admitted)
        )
        if not all(results):
            self._dirty.set()  # a pod changed under us: decide again with the fresh view
        self.decision = decision
        self._updated.set()
        self._updated = asyncio.Event()
        return decision

    async def _admit(self, obj: Obj, admitted: Admitted, now: datetime) -> bool:
        meta, spec = obj["metadata"], obj.get("spec") or {}
        gates = [g for g in spec.get("schedulingGates") or [] if g.get("name") != SLICE_GATE]
        body = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "labels": {LABEL_SLICE_TYPE: admitted.slice_type},
                "annotations": {ANNOTATION_ADMITTED: now.isoformat()},
            },
            "spec": {"schedulingGates": gates or None},
        }
        try:
            resp = await self.core.patch_namespaced_pod(
                meta["name"],
                meta.get("namespace") or self.namespace,
                body,
                _content_type="application/merge-patch+json",
                _preload_content=False,
            )
            fresh = await read_json(resp)
        except ApiException as exc:
            if exc.status in (404, 409):
                self.conflicts += 1
                return False
            raise
        pod = pod_from_object(fresh)
        key = (pod.namespace, pod.name)
        current = self._pods.cache.get(key)
        if current is None or _rv(current) < _rv(fresh):
            self._pods.cache[key] = fresh
            self._patched[pod.uid] = fresh
            self.index.update_pod(pod)
        self.admissions += 1
        log.info("admitted %s on a %s slice", meta["name"], admitted.slice_type)
        return True
