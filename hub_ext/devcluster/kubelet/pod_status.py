"""Pod status pieces as the kubelet reports them: QoS class and container states."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def qos_class(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k) is not None
        and (r.get("requests") or r.get("limits") or {}).get(k) == (r.get("limits") or {}).get(k)
        for r in resources
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _base(container: Obj) -> Obj:
    return {
        "name": container.get("name", ""),
        "image": container.get("image", ""),
        "imageID": "",
        "restartCount": 0,
    }


def waiting(container: Obj, reason: str, message: str) -> Obj:
    state = {"reason": reason, **({"message": message} if message else {})}
    return {**_base(container), "ready": False, "started": False, "state": {"waiting": state}}


def running(container: Obj, started: str, pid: int | None) -> Obj:
    return {
        **_base(container),
        "containerID": f"devcluster://{pid}",
        "ready": True,
        "started": True,
        "state": {"running": {"startedAt": started}},
    }


def terminated(container: Obj, code: int, finished: str, pid: int | None) -> Obj:
    return {
        **_base(container),
        "containerID": f"devcluster://{pid}",
        "ready": False,
        "started": False,
        "state": {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "finishedAt": finished,
                "containerID": f"devcluster://{pid}",
            }
        },
    }
