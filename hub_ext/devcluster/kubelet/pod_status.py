"""Pod status pieces as the kubelet reports them: QoS class and container statuses."""

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


def waiting_state(reason: str, message: str = "") -> Obj:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def running_state(started: str) -> Obj:
    return {"running": {"startedAt": started}}


def terminated_state(
    code: int, started: str, finished: str, pid: int | None, reason: str = ""
) -> Obj:
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason or ("Completed" if code == 0 else "Error"),
            "startedAt": started or None,
            "finishedAt": finished,
            "containerID": f"devcluster://{pid}",
        }
    }


def container_status(
    container: Obj,
    state: Obj,
    *,
    restarts: int = 0,
    last_state: Obj | None = None,
    ready: bool = False,
    started: bool = False,
    pid: int | None = None,
) -> Obj:
    out: Obj = {
        "name": container.get("name", ""),
        "image": container.get("image", ""),
        "imageID": "",
        "restartCount": restarts,
        "ready": ready,
        "started": started,
        "state": state,
        "lastState": last_state or {},
    }
    if pid is not None:
        out["containerID"] = f"devcluster://{pid}"
    return out
