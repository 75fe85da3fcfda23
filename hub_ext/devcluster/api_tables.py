"""Server-side ``Table`` rendering (meta.k8s.io/v1), which ``kubectl get`` asks for."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub_ext.devcluster.resources import ResourceType

Obj = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def age(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "<unknown>"
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _init_reason(spec: Obj, status: Obj) -> str | None:
    """kubectl's ``Init:1/2`` (or ``Init:<reason>``) while regular init containers run."""
    sidecars = {
        c.get("name")
        for c in spec.get("initContainers") or []
        if c.get("restartPolicy") == "Always"
    }
    inits = [c for c in status.get("initContainerStatuses") or [] if c.get("name") not in sidecars]
    for index, c in enumerate(inits):
        state = c.get("state") or {}
        terminated = state.get("terminated") or {}
        if terminated.get("exitCode") == 0:
            continue
        why = (state.get("waiting") or {}).get("reason") or terminated.get("reason")
        if why and why not in ("PodInitializing", "ContainerCreating"):
            return f"Init:{why}"
        return f"Init:{index}/{len(inits)}"
    return None


def _pod_cells(obj: Obj, now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for c in statuses:
        waiting = (c.get("state") or {}).get("waiting") or {}
        terminated = (c.get("state") or {}).get("terminated") or {}
        reason = waiting.get("reason") or terminated.get("reason") or reason
    reason = _init_reason(spec, status) or reason
    if spec.get("schedulingGates"):
        reason = "SchedulingGated"
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return [
        obj["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        restarts,
        age(obj["metadata"].get("creationTimestamp"), now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _node_cells(obj: Obj, now: datetime) -> list[Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    state = (
        "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    )
    if (obj.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = (obj.get("metadata") or {}).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    info = (obj.get("status") or {}).get("nodeInfo") or {}
    return [
        obj["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        age(obj["metadata"].get("creationTimestamp"), now),
        info.get("kubeletVersion") or "",
    ]


def _pvc_cells(obj: Obj, now: datetime) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    modes = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX"}
    return [
        obj["metadata"]["name"],
        status.get("phase") or "",
        spec.get("volumeName") or "",
        (status.get("capacity") or {}).get("storage") or "",
        ",".join(modes.get(m, m) for m in status.get("accessModes") or []),
        spec.get("storageClassName") or "",
        age(obj["metadata"].get("creationTimestamp"), now),
    ]


def _event_cells(obj: Obj, now: datetime) -> list[Any]:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    stamp = (
        obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    )
    kind = str(involved.get("kind") or "").lower()
    return [
        age(stamp[:19] + "Z" if stamp else None, now),
        obj.get("type") or "",
        obj.get("reason") or "",
        f"{kind}/{involved.get('name') or ''}",
        obj.get("message") or obj.get("note") or "",
    ]


def _default_cells(obj: Obj, now: datetime) -> list[Any]:
    return [obj["metadata"]["name"], age(obj["metadata"].get("creationTimestamp"), now)]


LAYOUTS: dict[str, tuple[list[Column], Any]] = {
    "pods": (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "integer", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
        ],
        _pod_cells,
    ),
    "nodes": (
        [
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
        ],
        _node_cells,
    ),
    "persistentvolumeclaims": (
        [
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Volume", "string", 0),
            ("Capacity", "string", 0),
            ("Access Modes", "string", 0),
            ("StorageClass", "string", 0),
            ("Age", "string", 0),
        ],
        _pvc_cells,
    ),
    "events": (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _event_cells,
    ),
}
LAYOUTS["events.events.k8s.io"] = LAYOUTS["events"]  # both event APIs print alike
DEFAULT_LAYOUT: tuple[list[Column], Any] = (
    [("Name", "string", 0), ("Age", "string", 0)],
    _default_cells,
)


def table(rtype: ResourceType, items: list[Obj], rv: str, include: str) -> Obj:
    """A Table of ``items``; ``include`` is the includeObject parameter."""
    columns, cells = LAYOUTS.get(rtype.key, DEFAULT_LAYOUT)
    now = datetime.now(UTC)
    rows = []
    for obj in items:
        row: Obj = {"cells": cells(obj, now)}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [
            {
                "name": n,
                "type": t,
                "format": "name" if n == "Name" else "",
                "description": n,
                "priority": p,
            }
            for n, t, p in columns
        ],
        "rows": rows,
    }


def _add_workload_layouts() -> None:
    from hub_ext.devcluster.api_tables_workloads import WORKLOAD_LAYOUTS

    LAYOUTS.update(WORKLOAD_LAYOUTS)


_add_workload_layouts()
