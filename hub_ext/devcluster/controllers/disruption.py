"""PodDisruptionBudgets: their status, and the eviction API (``pods/eviction``) that honours them.

The expected pods of a budget are the active pods its selector matches in its namespace
(Kubernetes asks their controllers' scale; the two agree while the controllers keep their pod
counts). ``desiredHealthy`` is ``minAvailable`` (a percentage rounds up) or expected minus
``maxUnavailable``; ``disruptionsAllowed`` is ready pods minus desired. An eviction of a pod
that a budget covers is refused with ``429 TooManyRequests`` and Kubernetes' message when no
disruption is allowed; a pod that is not ready may be evicted while the budget is met
(``unhealthyPodEvictionPolicy: IfHealthyBudget``, the default) or always (``AlwaysAllow``).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.api_errors import ApiError
from hub_ext.devcluster.controllers.labels import (
    is_active,
    is_ready,
    labels_of,
    scaled,
    selector_matches,
)

if TYPE_CHECKING:
    from hub_ext.devcluster.api_objects import Objects
    from hub_ext.devcluster.controllers.manager import ControllerManager

Obj = dict[str, Any]
KEY = "poddisruptionbudgets.policy"
BUDGET_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


def _pods(store_objects: dict[str, Any], pdb: Obj) -> list[Obj]:
    ns = pdb["metadata"]["namespace"]
    selector = (pdb.get("spec") or {}).get("selector")
    if selector is None:
        return []
    return [
        p
        for (p_ns, _), p in store_objects.get("pods", {}).items()
        if p_ns == ns and is_active(p) and selector_matches(selector, labels_of(p))
    ]


def compute(store_objects: dict[str, Any], pdb: Obj, stamp: str) -> Obj:
    """The status of ``pdb`` over the pods in ``store_objects`` (the store's buckets)."""
    spec = pdb.get("spec") or {}
    pods = _pods(store_objects, pdb)
    expected = len(pods)
    healthy = sum(1 for p in pods if is_ready(p))
    if "minAvailable" in spec:
        desired = scaled(spec["minAvailable"], expected, True)
    elif "maxUnavailable" in spec:
        desired = max(0, expected - scaled(spec["maxUnavailable"], expected, True))
    else:
        desired = expected
    allowed = max(0, healthy - desired)
    old = pdb.get("status") or {}
    previous: Obj = next(
        (c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), {}
    )
    ok = allowed > 0
    condition = {
        "type": "DisruptionAllowed",
        "status": "True" if ok else "False",
        "reason": "SufficientPods" if ok else "InsufficientPods",
        "message": "",
        "observedGeneration": pdb["metadata"].get("generation", 1),
        "lastTransitionTime": previous.get("lastTransitionTime", stamp)
        if previous.get("status") == ("True" if ok else "False")
        else stamp,
    }
    return {
        "observedGeneration": pdb["metadata"].get("generation", 1),
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "disruptionsAllowed": allowed,
        "conditions": [condition],
    }


def reconcile(m: ControllerManager, ns: str, name: str) -> None:
    from hub_ext.devcluster.controllers.manager import iso

    pdb = m.get(KEY, ns, name)
    if pdb is None:
        return
    m.set_status(KEY, pdb, compute(m.store.objects, pdb, iso(m.now())))


def evict(objects: Objects, ns: str, name: str, body: Any) -> Obj:
    """Evict pod ``ns/name`` unless a disruption budget forbids it (the ``pods/eviction`` verb)."""
    from hub_ext.devcluster.api_objects import PODS, now_iso, status_success

    pod = objects.existing(PODS, ns, name)
    options = (body or {}).get("deleteOptions") or {} if isinstance(body, dict) else {}
    phase = (pod.get("status") or {}).get("phase")
    if phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
        pdb_type = objects.registry.by_key[KEY]
        budgets = [
            b
            for (b_ns, _), b in objects.store.objects.get(KEY, {}).items()
            if b_ns == ns
            and (b.get("spec") or {}).get("selector") is not None
            and selector_matches(b["spec"]["selector"], labels_of(pod))
        ]
        if len(budgets) > 1:
            raise ApiError(
                500,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource "
                "does not support.",
            )
        if budgets:
            pdb = budgets[0]
            status = compute(objects.store.objects, pdb, now_iso())
            unhealthy_ok = not is_ready(pod) and (
                (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
                or status["currentHealthy"] >= status["desiredHealthy"]
            )
            if not unhealthy_ok and status["disruptionsAllowed"] <= 0:
                raise ApiError(
                    429,
                    BUDGET_MESSAGE,
                    details={
                        "causes": [
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {pdb['metadata']['name']} "
                                f"needs {status['desiredHealthy']} healthy pods and has "
                                f"{status['currentHealthy']} currently",
                            }
                        ]
                    },
                )
            if not unhealthy_ok:
                new = copy.deepcopy(pdb)
                status["disruptionsAllowed"] -= 1
                status["disruptedPods"] = {name: now_iso()}
                new["status"] = status
                objects.update(pdb_type, ns, pdb["metadata"]["name"], new, "status")
    objects.delete(PODS, ns, name, dict(options))
    return status_success(201)
