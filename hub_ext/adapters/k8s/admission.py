"""The slice admission controller: the Kubernetes side of :mod:`hub_ext.core.admission.model`.

It watches nodes and pods, keeps the free capacity per slice type in a
:class:`~hub_ext.core.capacity.index.CapacityIndex` (updated per event), rebuilds the queue from
the pods on each decision pass and lifts the ``labhub.io/slice-admission`` gate of each pod the
policy admits. All queue state lives in the pods (gate, labels, ``labhub.io/enqueued-at``), so
a restarted hub rebuilds the same queue.

The gate is lifted with a merge patch carrying the pod's ``resourceVersion`` (409 if the pod
changed since the controller looked: a stale view never books a slice twice), and the admitted
pod counts as in flight at once. Admission on a declared fallback type replaces the queued pod by
one asking for that type (resource requests cannot change in place). Queued pods nobody waits for
are detached, and deleted once detached for longer than ``abandon_after`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.adapters.k8s.informer import Informer, Obj, read_json
from hub_ext.adapters.k8s.objects import (
    ANNOTATION_ADMITTED,
    ANNOTATION_DETACHED,
    ANNOTATION_ENQUEUED,
    ANNOTATION_IDLE,
    ANNOTATION_MEMBER,
    ANNOTATION_RUNTIME,
    OverviewParts,
    detached_since,
    entry_key,
    is_gated,
    node_from_object,
    now_utc,
    overview_from_objects,
    parse_time,
    pod_from_object,
    queue_entry,
    requested_slice_type,
    resource_version,
    running_session,
)
from hub_ext.adapters.k8s.rooms import room_use, with_room_affinity
from hub_ext.core.admission.book import decide
from hub_ext.core.admission.model import (
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
)
from hub_ext.core.admission.overview import (
    AdmissionOverview,
    QueueChange,
    QueueExit,
    queue_exits,
)
from hub_ext.core.capacity.index import CapacityIndex
from hub_ext.core.capacity.model import PodUid, SliceCount, SliceType
from hub_ext.core.capacity.rooms import RoomOrder, assign_rooms
from hub_ext.core.k8s_names import ANNOTATION_ROOM, LABEL_COURSE, LABEL_SLICE_TYPE, SLICE_GATE
from hub_ext.core.manifests import retarget_pod

__all__ = [
    "ANNOTATION_ADMITTED",
    "ANNOTATION_DETACHED",
    "ANNOTATION_ENQUEUED",
    "ANNOTATION_IDLE",
    "ANNOTATION_MEMBER",
    "ANNOTATION_RUNTIME",
    "AdmissionController",
    "PassReport",
    "QueueExit",
    "parse_time",
]

log = logging.getLogger(__name__)
PolicySource = Callable[[datetime], AdmissionPolicy]
Spawning = Callable[[EntryKey], bool]


@dataclass(frozen=True)
class PassReport:
    """What one decision pass did (for metrics)."""

    now: datetime
    decision: AdmissionDecision
    policy: AdmissionPolicy
    exits: tuple[QueueExit, ...]


class AdmissionController:
    """Lifts the slice-admission gate of the pods the policy admits, one pass per change."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        policy: PolicySource | None = None,
        clock: Callable[[], datetime] = now_utc,
        resync_seconds: float = 30.0,
        abandon_after: float | None = None,
        spawning: Spawning | None = None,
        rooms: RoomOrder | None = None,
    ) -> None:
        self.namespace = namespace
        self.core = CoreV1Api(api_client)
        self._policy = policy or (lambda _now: AdmissionPolicy())
        self._clock = clock
        self._resync = resync_seconds
        self.abandon_after = abandon_after
        self.orphan_grace = 120.0
        """Seconds a queued pod nobody spawns may wait before it is detached."""
        self._spawning = spawning
        self.rooms = rooms
        """Room-first packing: admitted pods get a required node affinity for their room."""
        self.index = CapacityIndex()
        self.decision: AdmissionDecision | None = None
        self.observers: list[Callable[[PassReport], None]] = []
        self.admissions = self.conflicts = self.replaced = self.cleaned = 0
        self._dirty = asyncio.Event()
        self._updated = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._patched: dict[PodUid, Obj] = {}
        self._queued: dict[EntryKey, QueueEntry] = {}
        self._outcomes: dict[EntryKey, str] = {}
        self._last: tuple[dict[EntryKey, QueueEntry], tuple[RunningSession, ...], Any] = (
            {},
            (),
            AdmissionPolicy(),
        )
        self._started_at: datetime | None = None
        self._watchers: dict[EntryKey, set[asyncio.Event]] = {}
        self._late_exits: list[QueueExit] = []
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
        self._started_at = self._clock()
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
        log.info("slice admission controller for namespace %s stopped", self.namespace)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- queries for the spawner and the admin view ---------------------------------------------

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

    def node_objects(self) -> list[Any]:
        """The Node objects the controller's informer holds (read-only copies are not made)."""
        return list(self._nodes.cache.values())

    def overview(self, now: datetime | None = None) -> AdmissionOverview:
        """A read-only snapshot: slices per node and type with holders, the queue per course
        with positions, and the active lab-session reservations (as of the last pass)."""
        entries, running, policy = self._last
        return overview_from_objects(
            now or self._clock(),
            self._pods.cache.values(),
            self._nodes.cache.values(),
            OverviewParts(self.index.snapshot(), self.decision, entries, running, policy),
        )

    async def wait_for_update(self, timeout: float) -> None:
        """Return after the next decision pass, or after ``timeout`` seconds (always after
        yielding to the event loop, so that a caller looping on it never starves it)."""
        if not self.running:
            await asyncio.sleep(timeout)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._updated.wait()
        await asyncio.sleep(0)

    async def wait_for_change(self, user: str, server_name: str, timeout: float) -> None:
        """Return when the status or the pod of one server changed, or after ``timeout``.

        Only that server's waiters wake up, so a hundred waiting spawns cost nothing while
        other students' pods come and go.
        """
        if not self.running:
            await asyncio.sleep(timeout)
            return
        key = EntryKey(UserName(user), server_name)
        event = asyncio.Event()
        self._watchers.setdefault(key, set()).add(event)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
        finally:
            waiting = self._watchers.get(key)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._watchers[key]
        await asyncio.sleep(0)

    def _notify(self, key: EntryKey | None) -> None:
        for event in self._watchers.get(key, ()) if key is not None else ():
            event.set()

    def poke(self) -> None:
        """Ask for a decision pass (for example after a reservation window opened)."""
        self._dirty.set()

    def note_exit(self, user: str, server_name: str, outcome: str) -> None:
        """Record why an entry is about to leave the queue (``timeout``; default cancelled)."""
        self._outcomes[EntryKey(UserName(user), server_name)] = outcome

    # -- events ---------------------------------------------------------------------------------

    def _on_node(self, kind: str, obj: Obj) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        if kind == "DELETED":
            self.index.remove_node(name)
        else:
            self.index.update_node(node_from_object(obj))
        self._dirty.set()

    def _on_pod(self, kind: str, obj: Obj) -> None:
        self._notify(entry_key(obj))
        pod = pod_from_object(obj)
        if kind == "DELETED":
            self._patched.pop(pod.uid, None)
            self.index.remove_pod(pod.uid)
        else:
            ours = self._patched.get(pod.uid)
            if ours is not None:
                if resource_version(obj) < resource_version(ours):
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
                async with asyncio.timeout(self._resync):
                    await self._dirty.wait()
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
        entries: dict[EntryKey, QueueEntry] = {}
        running: list[RunningSession] = []
        by_key: dict[EntryKey, Obj] = {}
        detached: set[EntryKey] = set()
        chores: list[Any] = []
        limit = timedelta(seconds=self.abandon_after or 0)
        for obj in list(self._pods.cache.values()):
            entry = queue_entry(obj)
            if entry is not None:
                entries[entry.key], by_key[entry.key] = entry, obj
                if self._orphaned(obj, entry, now):
                    chores.append(self._detach(obj, now))
                continue
            session = running_session(obj, now)
            if session is not None:
                running.append(session)
                continue
            key, since = entry_key(obj), detached_since(obj)
            if key is not None and since is not None and is_gated(obj):
                detached.add(key)
                if self.abandon_after is not None and now - since > limit:
                    chores.append(self._abandon(obj, key, now))
        policy = self._policy(now)
        decision = decide(
            AdmissionInput(
                now, self.index.free_by_type(), tuple(entries.values()), tuple(running), policy
            )
        )
        rooms = self._rooms_for(decision.admitted)
        results = await asyncio.gather(
            *(
                self._admit(by_key[a.key], a, now, room)
                for a, room in zip(decision.admitted, rooms, strict=True)
            )
        )
        if not all(results):
            self._dirty.set()  # a pod changed under us: decide again with the fresh view
        admitted_now = {a.key for a, ok in zip(decision.admitted, results, strict=True) if ok}
        exits = queue_exits(
            QueueChange(now, self._queued, entries, detached, decision.admitted, admitted_now),
            self._outcomes,
        )
        self._queued = {k: e for k, e in entries.items() if k not in admitted_now}
        for key in [k for k in self._outcomes if k not in self._queued]:
            del self._outcomes[key]
        if chores:
            await asyncio.gather(*chores)
        previous, self.decision = self.decision, decision
        for key in list(self._watchers):
            if previous is None or previous.status(key) != decision.status(key):
                self._notify(key)
        self._last = (entries, tuple(running), policy)
        exits += self._late_exits
        self._late_exits = []
        report = PassReport(now, decision, policy, tuple(exits))
        for observer in list(self.observers):
            try:
                observer(report)
            except Exception:
                log.exception("slice admission observer failed")
        self._updated.set()
        self._updated = asyncio.Event()
        return decision

    # -- clean-up of queued pods nobody waits for -----------------------------------------------

    def _orphaned(self, obj: Obj, entry: QueueEntry | None, now: datetime) -> bool:
        if entry is None or self._spawning is None or self._started_at is None:
            return False
        grace = timedelta(seconds=self.orphan_grace)
        if now - self._started_at < grace or now - entry.enqueued_at < grace:
            return False
        return not self._spawning(entry.key)

    async def _detach(self, obj: Obj, now: datetime) -> None:
        name = obj["metadata"]["name"]
        log.info("queued pod %s is not spawned by this hub any more: detaching it", name)
        body = {"metadata": {"annotations": {ANNOTATION_DETACHED: now.isoformat()}}}
        with contextlib.suppress(ApiException):
            await self.core.patch_namespaced_pod(
                name, self.namespace, body, _content_type="application/merge-patch+json"
            )

    async def _abandon(self, obj: Obj, key: EntryKey, now: datetime) -> None:
        meta = obj["metadata"]
        log.info("deleting queued pod %s: nobody pressed Start again in time", meta["name"])
        try:
            await self.core.delete_namespaced_pod(
                meta["name"], self.namespace, grace_period_seconds=0
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("could not delete abandoned pod %s: %s", meta["name"], exc.status)
            return
        self.cleaned += 1
        enqueued = parse_time((meta.get("annotations") or {}).get(ANNOTATION_ENQUEUED)) or now
        course = CourseSlug((meta.get("labels") or {}).get(LABEL_COURSE, ""))
        slice_type = SliceType(requested_slice_type(obj))
        self._late_exits.append(QueueExit(key, course, slice_type, now - enqueued, "timeout"))

    # -- admission ------------------------------------------------------------------------------

    def _rooms_for(self, admitted: tuple[Admitted, ...]) -> tuple[str | None, ...]:
        """The room of each admitted pod under room-first packing (None: no room asked)."""
        if self.rooms is None or not admitted:
            return tuple(None for _ in admitted)
        use = room_use(self.index.snapshot(), self._pods.cache.values())
        return assign_rooms(self.rooms, use, [a.slice_type for a in admitted])

    async def _admit(
        self, obj: Obj, admitted: Admitted, now: datetime, room: str | None = None
    ) -> bool:
        asked = requested_slice_type(obj)
        if asked and asked != admitted.slice_type:
            return await self._replace(obj, admitted, now, room)
        meta, spec = obj["metadata"], obj.get("spec") or {}
        gates = [g for g in spec.get("schedulingGates") or [] if g.get("name") != SLICE_GATE]
        annotations = {ANNOTATION_ADMITTED: now.isoformat()}
        new_spec: dict[str, Any] = {"schedulingGates": gates or None}
        if room is not None:
            annotations[ANNOTATION_ROOM] = room
            new_spec["affinity"] = with_room_affinity(spec, room)
        body = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "labels": {LABEL_SLICE_TYPE: admitted.slice_type},
                "annotations": annotations,
            },
            "spec": new_spec,
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
        self._took(fresh)
        where = f" in {room}" if room else ""
        log.info("admitted %s on a %s slice%s", meta["name"], admitted.slice_type, where)
        return True

    async def _replace(
        self, obj: Obj, admitted: Admitted, now: datetime, room: str | None = None
    ) -> bool:
        """Admit on a fallback type: delete the queued pod, create one asking for that type."""
        meta = obj["metadata"]
        name = meta["name"]
        manifest = retarget_pod(obj, admitted.slice_type)
        manifest["metadata"].setdefault("annotations", {})[ANNOTATION_ADMITTED] = now.isoformat()
        if room is not None:
            manifest["metadata"]["annotations"][ANNOTATION_ROOM] = room
            manifest["spec"]["affinity"] = with_room_affinity(manifest["spec"], room)
        body = {
            "preconditions": {"uid": meta.get("uid"), "resourceVersion": meta["resourceVersion"]}
        }
        try:
            await self.core.delete_namespaced_pod(
                name, self.namespace, grace_period_seconds=0, body=body
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                self.conflicts += 1
                return False
            raise
        delay = 0.05
        for _ in range(40):
            try:
                resp = await self.core.create_namespaced_pod(
                    self.namespace, manifest, _preload_content=False
                )
                fresh = await read_json(resp)
                break
            except ApiException as exc:
                if exc.status != 409:
                    raise
                await asyncio.sleep(delay)  # the old pod is still being removed
                delay = min(delay * 2, 0.5)
        else:
            log.warning("could not recreate %s on a %s slice", name, admitted.slice_type)
            return False
        self.replaced += 1
        self._took(fresh)
        log.info("admitted %s on a fallback %s slice", name, admitted.slice_type)
        return True

    def _took(self, fresh: Obj) -> None:
        """Count an admitted pod at once (in flight), before its watch event arrives."""
        pod = pod_from_object(fresh)
        key = (pod.namespace, pod.name)
        current = self._pods.cache.get(key)
        if (
            current is None
            or resource_version(current) < resource_version(fresh)
            or ((current.get("metadata") or {}).get("uid") != pod.uid)
        ):
            self._pods.cache[key] = fresh
            self._patched[pod.uid] = fresh
            self.index.update_pod(pod)
        self.admissions += 1
