"""The Deployment controller: a ReplicaSet per pod template, rolled out by the strategy.

The template's hash (label ``pod-template-hash``) names the new ReplicaSet
(``<deployment>-<hash>``); its revision (annotation ``deployment.kubernetes.io/revision``) is one
more than the highest so far, so going back to an earlier template reuses and re-numbers that
ReplicaSet (``kubectl rollout undo``). ``Recreate`` scales every old ReplicaSet to zero and waits
until their pods are gone; ``RollingUpdate`` keeps at most ``replicas + maxSurge`` pods and at
least ``replicas - maxUnavailable`` available ones. Old ReplicaSets beyond
``revisionHistoryLimit`` are deleted. Status and the ``Available`` and ``Progressing``
conditions (with ``ProgressDeadlineExceeded`` after ``progressDeadlineSeconds``) carry
Kubernetes' reasons and messages, which ``kubectl rollout status`` and ``helm --wait`` read.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.controllers.labels import owner_reference, scaled

if TYPE_CHECKING:
    from hub_ext.devcluster.controllers.manager import ControllerManager

Obj = dict[str, Any]
KEY = "deployments.apps"
RS = "replicasets.apps"
COMPONENT = "deployment-controller"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
SAFE = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: Obj, collisions: int = 0) -> str:
    """A short, stable name for a pod template (FNV-1a of its JSON, in safe characters)."""
    value = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True).encode() + str(collisions).encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(SAFE[int(c) % len(SAFE)] for c in str(value))


def normalized(value: Any) -> Any:
    """``value`` without empty fields (``null``, ``{}``, ``[]``) and without the hash label: two
    templates that differ only there are the same template (clients round-trip them through
    typed objects, which adds empty fields)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == HASH_LABEL:
                continue
            item = normalized(item)
            if item is not None and item != {} and item != []:
                out[key] = item
        return out
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def _matches(rs: Obj, template: Obj) -> bool:
    return bool(normalized(rs["spec"].get("template") or {}) == template)


def revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, 0))
    except ValueError:
        return 0


def _replicas(rs: Obj) -> int:
    return int(rs["spec"].get("replicas", 0))


def _status(rs: Obj, field: str) -> int:
    return int((rs.get("status") or {}).get(field) or 0)


def _scale(m: ControllerManager, d: Obj, rs: Obj, count: int) -> Obj:
    if _replicas(rs) == count:
        return rs
    new = copy.deepcopy(rs)
    new["spec"]["replicas"] = count
    annotations = new["metadata"].setdefault("annotations", {})
    annotations["deployment.kubernetes.io/desired-replicas"] = str(d["spec"]["replicas"])
    direction = "up" if count > _replicas(rs) else "down"
    updated = m.update(RS, new)
    m.event(
        d,
        "ScalingReplicaSet",
        f"Scaled {direction} replica set {rs['metadata']['name']} from {_replicas(rs)} to {count}",
        COMPONENT,
    )
    return updated


def _new_replicaset(m: ControllerManager, d: Obj, hash_: str, rev: int) -> Obj | None:
    meta, spec = d["metadata"], d["spec"]
    template = copy.deepcopy(spec["template"])
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hash_
    selector = copy.deepcopy(spec["selector"])
    selector.setdefault("matchLabels", {})[HASH_LABEL] = hash_
    labels = dict(template["metadata"]["labels"])
    body = {
        "metadata": {
            "name": f"{meta['name']}-{hash_}",
            "labels": labels,
            "annotations": {
                REVISION: str(rev),
                "deployment.kubernetes.io/desired-replicas": str(spec["replicas"]),
                "deployment.kubernetes.io/max-replicas": str(spec["replicas"] + _surge(d)),
            },
            "ownerReferences": [owner_reference(d)],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": spec.get("minReadySeconds", 0),
            "selector": selector,
            "template": template,
        },
    }
    created = m.create(RS, meta["namespace"], body)
    if created is not None:
        m.event(
            d, "ScalingReplicaSet", f"Created new replica set {meta['name']}-{hash_}", COMPONENT
        )
    return created


def _rolling(d: Obj) -> Obj:
    return (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}


def _surge(d: Obj) -> int:
    if (d["spec"].get("strategy") or {}).get("type") != "RollingUpdate":
        return 0
    return scaled(_rolling(d).get("maxSurge", "25%"), int(d["spec"]["replicas"]), True)


def max_unavailable(d: Obj) -> int:
    if (d["spec"].get("strategy") or {}).get("type") != "RollingUpdate":
        return 0
    replicas = int(d["spec"]["replicas"])
    unavailable = scaled(_rolling(d).get("maxUnavailable", "25%"), replicas, False)
    if unavailable == 0 and _surge(d) == 0:
        unavailable = 1
    return min(unavailable, replicas)


def _roll(m: ControllerManager, d: Obj, new: Obj, olds: list[Obj]) -> None:
    replicas = int(d["spec"]["replicas"])
    live_olds = [rs for rs in olds if _replicas(rs) > 0]
    if (d["spec"].get("strategy") or {}).get("type") == "Recreate":
        for rs in live_olds:
            _scale(m, d, rs, 0)
        if not any(m.owned(rs, "pods") for rs in olds):
            _scale(m, d, new, replicas)
        return
    if not live_olds:
        _scale(m, d, new, replicas)
        return
    total = sum(_replicas(rs) for rs in [new, *olds])
    if _replicas(new) < replicas:
        room = replicas + _surge(d) - total
        if room > 0:
            new = _scale(m, d, new, min(replicas, _replicas(new) + room))
    min_available = replicas - max_unavailable(d)
    new_unavailable = max(0, _replicas(new) - _status(new, "availableReplicas"))
    budget = total - min_available - new_unavailable
    by_age = sorted(live_olds, key=revision)
    for rs in by_age:  # unavailable old pods go first, they cost no availability
        if budget <= 0:
            break
        unhealthy = max(0, _replicas(rs) - _status(rs, "availableReplicas"))
        cut = min(budget, unhealthy)
        if cut:
            _scale(m, d, rs, _replicas(rs) - cut)
            budget -= cut
    refreshed = [
        m.get(RS, rs["metadata"]["namespace"], rs["metadata"]["name"]) or rs for rs in by_age
    ]
    available = sum(_status(rs, "availableReplicas") for rs in [new, *refreshed])
    allowed = available - min_available
    for rs in refreshed:
        if allowed <= 0:
            break
        cut = min(allowed, _replicas(rs))
        if cut:
            _scale(m, d, rs, _replicas(rs) - cut)
            allowed -= cut


def _cleanup(m: ControllerManager, d: Obj, olds: list[Obj]) -> None:
    limit = int(d["spec"].get("revisionHistoryLimit", 10))
    idle = [rs for rs in olds if _replicas(rs) == 0 and _status(rs, "replicas") == 0]
    for rs in sorted(idle, key=revision)[: max(0, len(idle) - limit)]:
        m.delete(RS, rs["metadata"]["namespace"], rs["metadata"]["name"])


def reconcile(m: ControllerManager, ns: str, name: str) -> None:
    d = m.get(KEY, ns, name)
    if d is None or d["metadata"].get("deletionTimestamp"):
        return
    from hub_ext.devcluster.controllers import deployment_status

    owned = m.owned(d, RS)
    template = normalized(d["spec"]["template"])
    hash_ = template_hash(template)
    new = next((rs for rs in owned if _matches(rs, template)), None)
    olds = [rs for rs in owned if rs is not new]
    top = max((revision(rs) for rs in owned), default=0)
    created = False
    if not d["spec"].get("paused"):
        if new is None:
            new = _new_replicaset(m, d, hash_, top + 1)
            created = new is not None
            if new is None:
                return
        elif revision(new) < top:
            bumped = copy.deepcopy(new)
            bumped["metadata"].setdefault("annotations", {})[REVISION] = str(top + 1)
            new = m.update(RS, bumped)
        _roll(m, d, new, olds)
        _cleanup(m, d, olds)
    owned = m.owned(d, RS)
    new = next((rs for rs in owned if _matches(rs, template)), None)
    if new is not None and (d["metadata"].get("annotations") or {}).get(REVISION) != str(
        revision(new)
    ):
        annotated = copy.deepcopy(d)
        annotated["metadata"].setdefault("annotations", {})[REVISION] = str(revision(new))
        d = m.update(KEY, annotated)
    deployment_status.update(m, d, new, owned, created)
