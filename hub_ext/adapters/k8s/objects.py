"""Pods and nodes as JSON dicts -> the typed values of the admission policy.

Queue state lives in the pods: the ``labhub.io/slice-admission`` gate, the course and group
labels, and the annotations named here. A restarted hub rebuilds the same queue from a list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hub_ext.adapters.k8s.informer import Obj
from hub_ext.core.admission.model import (
    AdmissionDecision,
    AdmissionPolicy,
    CourseSlug,
    EntryKey,
    QueueEntry,
    RunningSession,
    UserName,
)
from hub_ext.core.admission.overview import (
    AdmissionOverview,
    OverviewInput,
    build_overview,
    holders_of,
)
from hub_ext.core.admission.rules import RuleNote
from hub_ext.core.capacity.model import Capacity, Node, Pod, PodPhase, PodUid, SliceType
from hub_ext.core.k8s_names import (
    ANNOTATION_ADMITTED,
    ANNOTATION_DETACHED,
    ANNOTATION_ENQUEUED,
    ANNOTATION_FALLBACKS,
    ANNOTATION_IDLE,
    ANNOTATION_MEMBER,
    ANNOTATION_RUNTIME,
    ANNOTATION_SERVER,
    ANNOTATION_USER,
    LABEL_COURSE,
    LABEL_GROUP,
    LABEL_SLICE_TYPE,
    NVIDIA_PREFIX,
    SLICE_GATE,
    ZONE_LABEL,
)


def now_utc() -> datetime:
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


def resource_version(obj: Obj) -> int:
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
            if name.startswith(NVIDIA_PREFIX):
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


def queue_entry(obj: Obj, include_detached: bool = False) -> QueueEntry | None:
    """The queue entry of a gated LabHub pod; None for anything else.

    A detached pod (its hub restarted) is an entry marked ``detached`` when
    ``include_detached`` is true (it keeps its place in the queue), else None.
    """
    pod = pod_from_object(obj)
    key = entry_key(obj)
    if key is None or not pod.gated or pod.phase.terminated:
        return None
    meta = obj["metadata"]
    notes, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    detached = bool(notes.get(ANNOTATION_DETACHED))
    if (detached and not include_detached) or meta.get("deletionTimestamp"):
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
        tuple(SliceType(t) for t in types),
        enqueued or now_utc(),
        notes.get(ANNOTATION_MEMBER, "true") != "false",
        detached,
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


def is_gated(obj: Obj) -> bool:
    return any(
        g.get("name") == SLICE_GATE for g in (obj.get("spec") or {}).get("schedulingGates") or []
    )


def detached_since(obj: Obj) -> datetime | None:
    """When a queued pod was detached from its (restarted) hub; None if it is not."""
    return parse_time(
        ((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_DETACHED)
    )


def requested_slice_type(obj: Obj) -> str:
    """The slice type a pod's resources ask for (its ``labhub.io/slice-type`` label)."""
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_SLICE_TYPE) or "")


@dataclass(frozen=True)
class OverviewParts:
    """The controller's state that goes into an overview besides the watched objects."""

    capacity: Capacity
    decision: AdmissionDecision | None
    entries: Mapping[EntryKey, QueueEntry]
    running: tuple[RunningSession, ...]
    policy: AdmissionPolicy
    notes: tuple[RuleNote, ...] = ()


def overview_from_objects(
    now: datetime, pods: Iterable[Obj], nodes: Iterable[Obj], parts: OverviewParts
) -> AdmissionOverview:
    """The admin overview from the watched pods and nodes and the last decision."""
    holders = []
    for obj in pods:
        session = running_session(obj, now)
        if session is not None:
            meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
            holders.append((session, str(meta.get("name")), spec.get("nodeName")))
    zones = {}
    ready = set()
    for node in nodes:
        meta = node.get("metadata") or {}
        zones[str(meta.get("name"))] = str((meta.get("labels") or {}).get(ZONE_LABEL, ""))
        if node_from_object(node).ready:
            ready.add(str(meta.get("name")))
    lost = frozenset(n for _, _, n in holders if n and n not in ready)
    return build_overview(
        OverviewInput(
            now,
            parts.capacity,
            zones,
            holders_of(holders),
            parts.decision,
            parts.entries,
            parts.running,
            parts.policy,
            lost | frozenset(zones.keys() - ready),
            parts.notes,
        )
    )
