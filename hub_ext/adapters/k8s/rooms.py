"""Room-first packing on the Kubernetes side: room use from nodes and pods, and the node
affinity that sends an admitted pod to its room (see :mod:`hub_ext.core.capacity.rooms`)."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from hub_ext.adapters.k8s.informer import Obj
from hub_ext.adapters.k8s.objects import is_gated, requested_slice_type
from hub_ext.core.capacity.model import Capacity, SliceType
from hub_ext.core.capacity.rooms import RoomUse, room_use_table
from hub_ext.core.k8s_names import ANNOTATION_ROOM, ZONE_LABEL

_TERMINAL = {"Succeeded", "Failed"}


def room_in_flight(pods: Iterable[Obj]) -> dict[tuple[str, SliceType], int]:
    """Pods admitted to a room but not bound to a node yet, per (room, slice type)."""
    out: dict[tuple[str, SliceType], int] = {}
    for obj in pods:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        room = (meta.get("annotations") or {}).get(ANNOTATION_ROOM)
        slice_type = requested_slice_type(obj)
        if not room or not slice_type or spec.get("nodeName") or is_gated(obj):
            continue
        if meta.get("deletionTimestamp") or (obj.get("status") or {}).get("phase") in _TERMINAL:
            continue
        key = (str(room), SliceType(slice_type))
        out[key] = out.get(key, 0) + 1
    return out


def room_use(capacity: Capacity, pods: Iterable[Obj]) -> dict[SliceType, dict[str, RoomUse]]:
    """Per slice type and room: slices of the Ready nodes, held and free, with in-flight pods."""
    by_zone = {
        zone: {t: (c.capacity, c.used, c.free) for t, c in counts.items()}
        for zone, counts in capacity.by_zone.items()
    }
    return room_use_table(by_zone, room_in_flight(pods))


def with_room_affinity(spec: Obj, room: str) -> dict[str, Any]:
    """The pod's ``affinity`` with a required node affinity for ``room`` added.

    Kubernetes lets a gated pod gain required node affinity: a new term when it has none, or one
    more match expression in each existing term (terms are ORed, so each must require the room).
    """
    affinity = copy.deepcopy(spec.get("affinity") or {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or []
    expression = {"key": ZONE_LABEL, "operator": "In", "values": [room]}
    if not terms:
        terms = [{"matchExpressions": [expression]}]
    else:
        for term in terms:
            term.setdefault("matchExpressions", []).append(expression)
    required["nodeSelectorTerms"] = terms
    return affinity
