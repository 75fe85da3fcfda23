"""The status of a Deployment: replica counts and the Available and Progressing conditions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.controllers.deployments import KEY, max_unavailable

if TYPE_CHECKING:
    from hub_ext.devcluster.controllers.manager import ControllerManager

Obj = dict[str, Any]


def _count(rss: list[Obj], field: str) -> int:
    return sum(int((rs.get("status") or {}).get(field) or 0) for rs in rss)


def _condition(old: list[Obj], kind: str, status: str, reason: str, message: str, now: str) -> Obj:
    previous = next((c for c in old if c.get("type") == kind), None)
    cond = {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }
    if previous is not None:
        if previous.get("status") == status:
            cond["lastTransitionTime"] = previous.get("lastTransitionTime", now)
        if previous.get("status") == status and previous.get("reason") == reason:
            cond["lastUpdateTime"] = previous.get("lastUpdateTime", now)
            cond["message"] = message
    return cond


def update(m: ControllerManager, d: Obj, new: Obj | None, owned: list[Obj], created: bool) -> None:
    from hub_ext.devcluster.controllers.manager import iso, parse_time

    spec = d["spec"]
    replicas = int(spec["replicas"])
    old_status = d.get("status") or {}
    old_conditions = list(old_status.get("conditions") or [])
    now = m.now()
    stamp = iso(now)
    available = _count(owned, "availableReplicas")
    total_spec = sum(int(rs["spec"].get("replicas", 0)) for rs in owned)
    status: Obj = {
        "observedGeneration": d["metadata"].get("generation", 1),
        "replicas": _count(owned, "replicas"),
        "updatedReplicas": _count([new], "replicas") if new is not None else 0,
        "readyReplicas": _count(owned, "readyReplicas"),
        "availableReplicas": available,
    }
    if total_spec - available > 0:
        status["unavailableReplicas"] = total_spec - available
    if available >= replicas - max_unavailable(d):
        avail = _condition(
            old_conditions,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            stamp,
        )
    else:
        avail = _condition(
            old_conditions,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            stamp,
        )
    rs_name = new["metadata"]["name"] if new is not None else ""
    complete = (
        new is not None
        and status["updatedReplicas"] == replicas
        and status["replicas"] == replicas
        and available >= replicas
        and _count([new], "availableReplicas") >= replicas
    )
    previous = next((c for c in old_conditions if c.get("type") == "Progressing"), None)
    counts = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    moved = created or any(old_status.get(k) != status.get(k) for k in counts)
    if spec.get("paused"):
        progressing = _condition(
            old_conditions,
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
            stamp,
        )
    elif complete:
        progressing = _condition(
            old_conditions,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{rs_name}" has successfully progressed.',
            stamp,
        )
    elif created:
        progressing = _condition(
            old_conditions,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            f'Created new replica set "{rs_name}"',
            stamp,
        )
    elif moved or previous is None or previous.get("reason") == "NewReplicaSetAvailable":
        progressing = _condition(
            old_conditions,
            "Progressing",
            "True",
            "ReplicaSetUpdated",
            f'ReplicaSet "{rs_name}" is progressing.',
            stamp,
        )
        progressing["lastUpdateTime"] = stamp
    else:
        progressing = dict(previous)
        deadline = int(spec.get("progressDeadlineSeconds", 600))
        since = parse_time(previous.get("lastUpdateTime")) or now
        if previous.get("reason") != "ProgressDeadlineExceeded" and since + deadline < now:
            progressing = _condition(
                old_conditions,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
                stamp,
            )
        elif previous.get("reason") != "ProgressDeadlineExceeded":
            m.requeue_after(
                (KEY, d["metadata"]["namespace"], d["metadata"]["name"]),
                max(1.0, since + deadline - now + 0.5),
            )
    status["conditions"] = [avail, progressing]
    if old_status.get("collisionCount") is not None:
        status["collisionCount"] = old_status["collisionCount"]
    m.set_status(KEY, d, status)
