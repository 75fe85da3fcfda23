"""The ReplicaSet controller: keeps ``spec.replicas`` active pods from the template.

Pods are created with ``generateName: <replicaset>-`` and a controller ownerReference; surplus
pods are deleted unscheduled first, then not ready, then newest. A pod that ended (``Failed`` or
``Succeeded``) is deleted and replaced, after a back-off that doubles per failure (1 s to 60 s)
so that a crashing pod does not turn into a storm of new pods. Status: ``replicas``,
``fullyLabeledReplicas``, ``readyReplicas``, ``availableReplicas`` (ready for
``minReadySeconds``) and ``observedGeneration``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.controllers.labels import (
    is_active,
    is_ready,
    labels_of,
    owner_reference,
    selector_matches,
)

if TYPE_CHECKING:
    from hub_ext.devcluster.controllers.manager import ControllerManager

Obj = dict[str, Any]
KEY = "replicasets.apps"
COMPONENT = "replicaset-controller"
MAX_BURST = 100


def pod_from_template(owner: Obj, template: Obj, extra: Obj | None = None) -> Obj:
    """A pod for ``owner`` from its pod template (``extra`` is merged into the spec)."""
    meta = template.get("metadata") or {}
    pod: Obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{owner['metadata']['name']}-",
            "labels": dict(meta.get("labels") or {}),
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
    if meta.get("annotations"):
        pod["metadata"]["annotations"] = dict(meta["annotations"])
    if extra:
        pod["spec"].update(copy.deepcopy(extra))
    return pod


def ready_since(pod: Obj) -> float | None:
    from hub_ext.devcluster.controllers.manager import parse_time

    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            return parse_time(cond.get("lastTransitionTime")) or 0.0
    return None


def is_available(pod: Obj, min_ready: int, now: float) -> bool:
    since = ready_since(pod) if is_ready(pod) else None
    return since is not None and (min_ready <= 0 or since + min_ready <= now)


def _deletion_rank(pod: Obj) -> tuple[int, int, str]:
    scheduled = bool((pod.get("spec") or {}).get("nodeName"))
    created = pod["metadata"].get("creationTimestamp") or ""
    inverted = "".join(chr(0x10FFFF - ord(c)) for c in created)  # newest first
    return (int(scheduled), int(is_ready(pod)), inverted)


def _backoff(m: ControllerManager, rs: Obj, failed: int) -> float:
    """Seconds to wait before replacing pods, growing with each failed pod."""
    uid = rs["metadata"]["uid"]
    memory = m.memory.setdefault("rs-failures", {})
    count, until = memory.get(uid, (0, 0.0))
    until = float(until)
    if failed:
        count += failed
        until = m.now() + min(60.0, 2.0 ** (count - 1))
        memory[uid] = (count, until)
    return max(0.0, float(until) - m.now())


def reconcile(m: ControllerManager, ns: str, name: str) -> None:
    rs = m.get(KEY, ns, name)
    if rs is None or rs["metadata"].get("deletionTimestamp"):
        return
    spec = rs["spec"]
    wanted = int(spec.get("replicas", 1))
    pods = m.owned(rs, "pods")
    finished = [p for p in pods if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")]
    failed = 0
    for pod in finished:
        if not pod["metadata"].get("deletionTimestamp"):
            failed += (pod.get("status") or {}).get("phase") == "Failed"
            m.delete("pods", ns, pod["metadata"]["name"])
    active = [p for p in pods if is_active(p) and p not in finished]
    diff = wanted - len(active)
    wait = _backoff(m, rs, failed)
    if diff > 0 and wait > 0:
        m.requeue_after((KEY, ns, name), wait)
    elif diff > 0:
        for _ in range(min(diff, MAX_BURST)):
            created = m.create("pods", ns, pod_from_template(rs, spec.get("template") or {}))
            if created is not None:
                active.append(created)
                m.event(
                    rs,
                    "SuccessfulCreate",
                    f"Created pod: {created['metadata']['name']}",
                    COMPONENT,
                )
    elif diff < 0:
        for pod in sorted(active, key=_deletion_rank)[:-diff]:
            m.delete("pods", ns, pod["metadata"]["name"])
            m.event(rs, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", COMPONENT)
            active.remove(pod)
    min_ready = int(spec.get("minReadySeconds") or 0)
    now = m.now()
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    ready = [p for p in active if is_ready(p)]
    available = [p for p in ready if is_available(p, min_ready, now)]
    if len(available) < len(ready):
        m.requeue_after((KEY, ns, name), 1.0)
    status = dict(rs.get("status") or {})
    status.update(
        {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(
                1
                for p in active
                if selector_matches({"matchLabels": template_labels}, labels_of(p))
            ),
            "readyReplicas": len(ready),
            "availableReplicas": len(available),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
    )
    m.set_status(KEY, rs, status)
