"""The admission controller's writes to the API server: lifting gates, annotations, clean-up.

:class:`PodWrites` is the half of :class:`~hub_ext.adapters.k8s.admission.AdmissionController`
that changes pods. Every gate patch and annotation is retried on transient API errors (429, 5xx,
timeouts; :mod:`hub_ext.adapters.k8s.retry`) for up to ``retry.retry_timeout``
seconds. When a gate patch still fails after that, the controller gives up on that server: it
deletes the queued pod and keeps one message for the student (:meth:`PodWrites.failure`), which
the spawner shows; the next start begins clean.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.adapters.k8s.informer import Informer, Obj, read_json
from hub_ext.adapters.k8s.objects import (
    pod_from_object,
    requested_slice_type,
    resource_version,
)
from hub_ext.adapters.k8s.retry import GaveUp, RetryPolicy, describe, with_retries
from hub_ext.adapters.k8s.rooms import with_room_affinity
from hub_ext.core.admission.model import Admitted, EntryKey, QueueEntry, UserName
from hub_ext.core.capacity.index import CapacityIndex
from hub_ext.core.capacity.model import PodUid
from hub_ext.core.k8s_names import (
    ANNOTATION_ADMITTED,
    ANNOTATION_DETACHED,
    ANNOTATION_ROOM,
    LABEL_SLICE_TYPE,
    SLICE_GATE,
)
from hub_ext.core.manifests import retarget_pod

log = logging.getLogger("hub_ext.adapters.k8s.admission")


class PodWrites:
    """Gate patches, annotations and deletions of queued pods (mixed into the controller)."""

    namespace: str
    core: Any
    """A CoreV1Api, called with dict bodies and request options (``_content_type``,
    ``_preload_content``) that kubernetes_asyncio accepts but does not declare in its types."""
    retry: RetryPolicy
    index: CapacityIndex
    orphan_grace: float
    admissions: int
    conflicts: int
    replaced: int
    cleaned: int
    _spawning: Callable[[EntryKey], bool] | None
    _started_at: datetime | None
    _pods: Informer
    _patched: dict[PodUid, Obj]
    _outcomes: dict[EntryKey, str]
    _failed: dict[EntryKey, str]
    _failed_uids: set[PodUid]

    def _notify(self, key: EntryKey | None) -> None:
        raise NotImplementedError

    def _gave_up_on(self, obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        return PodUid(str(meta.get("uid") or meta.get("name"))) in self._failed_uids

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
        try:
            await self.annotate(name, {ANNOTATION_DETACHED: now.isoformat()})
        except (ApiException, GaveUp) as error:
            log.warning("could not detach queued pod %s: %s (next pass tries again)", name, error)

    async def annotate(self, name: str, notes: dict[str, str | None]) -> None:
        """Set (or, with None, remove) annotations of one pod, retrying transient errors."""
        body = {"metadata": {"annotations": notes}}

        async def patch() -> None:
            await self.core.patch_namespaced_pod(
                name,
                self.namespace,
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=self.retry.request_timeout,
            )

        await with_retries(patch, f"annotating {name}", self.retry)

    # -- giving up on a queued pod the API server does not let us admit -------------------------

    def failure(self, user: str, server_name: str = "") -> str | None:
        """Why this server's spawn failed in the controller (its pod is being deleted), if so."""
        return self._failed.get(EntryKey(UserName(user), server_name))

    def forget_failure(self, user: str, server_name: str = "") -> None:
        """A new start of this server begins clean."""
        self._failed.pop(EntryKey(UserName(user), server_name), None)

    async def _give_up(self, obj: Obj, key: EntryKey, error: GaveUp) -> None:
        meta = obj["metadata"]
        name = meta["name"]
        seconds = round(self.retry.retry_timeout)
        log.error("giving up admitting %s: %s; deleting the queued pod", name, error)
        self._failed[key] = (
            f"Your server could not be given its GPU slice: the cluster's API server kept "
            f"answering {describe(error.cause)} for {seconds} s, so you have left the queue. "
            "Press Start to try again; tell the lab's operators if it keeps happening."
        )
        self._failed_uids.add(PodUid(str(meta.get("uid") or name)))
        self._outcomes[key] = "failed"
        self._notify(key)
        try:
            await with_retries(
                lambda: self.core.delete_namespaced_pod(
                    name, self.namespace, grace_period_seconds=0
                ),
                f"deleting {name}",
                self.retry,
            )
        except (ApiException, GaveUp) as exc:
            log.warning("could not delete %s: %s (its spawner deletes it)", name, exc)

    async def _abandon(self, obj: Obj, key: EntryKey) -> None:
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
        # the entry leaves the queue when the deletion is seen: count it as a timeout then
        self._outcomes[key] = "timeout"

    # -- admission ------------------------------------------------------------------------------

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
        if room is not None:  # room-first packing: the room's node affinity, while still gated
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

        async def patch() -> Obj:
            resp = await self.core.patch_namespaced_pod(
                meta["name"],
                meta.get("namespace") or self.namespace,
                body,
                _content_type="application/merge-patch+json",
                _preload_content=False,
                _request_timeout=self.retry.request_timeout,
            )
            fresh: Obj = await read_json(resp)
            return fresh

        try:
            fresh = await with_retries(patch, f"lifting the gate of {meta['name']}", self.retry)
        except ApiException as exc:
            if exc.status in (404, 409):
                self.conflicts += 1
                return False
            raise
        except GaveUp as error:
            await self._give_up(obj, admitted.key, error)
            return False
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
