"""The StatefulSet controller: pods with stable names ``<set>-<ordinal>`` and their own claims.

Each pod gets ``hostname`` = its name and ``subdomain`` = ``spec.serviceName``, the labels
``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
``controller-revision-hash``, and for each ``volumeClaimTemplates`` entry the claim
``<template>-<set>-<ordinal>`` (created once and kept when the pod or the set goes, as in
Kubernetes). ``OrderedReady`` starts pod *n* only when pods 0 to *n-1* are running and ready and
removes pods from the highest ordinal, one at a time; ``Parallel`` does both at once. A changed
template is rolled out from the highest ordinal down to ``partition`` (``RollingUpdate``), one
pod at a time while all others are ready, or waits for pods to be deleted (``OnDelete``).
ControllerRevision objects are not written; the revisions are the template hashes.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from hub_ext.devcluster.controllers.deployments import normalized, template_hash
from hub_ext.devcluster.controllers.labels import is_active, is_ready, owner_reference
from hub_ext.devcluster.controllers.replicasets import is_available

if TYPE_CHECKING:
    from hub_ext.devcluster.controllers.manager import ControllerManager

Obj = dict[str, Any]
KEY = "statefulsets.apps"
COMPONENT = "statefulset-controller"
REVISION = "controller-revision-hash"


def _ordinal(pod: Obj, name: str) -> int | None:
    suffix = pod["metadata"]["name"][len(name) + 1 :]
    return int(suffix) if suffix.isdigit() else None


def _claims(m: ControllerManager, sts: Obj, ordinal: int) -> list[Obj]:
    """Create the pod's missing claims; the pod volumes that use them."""
    ns, name = sts["metadata"]["namespace"], sts["metadata"]["name"]
    volumes = []
    for template in sts["spec"].get("volumeClaimTemplates") or []:
        tname = (template.get("metadata") or {}).get("name", "")
        claim = f"{tname}-{name}-{ordinal}"
        if m.get("persistentvolumeclaims", ns, claim) is None:
            labels = dict(((sts["spec"].get("selector") or {}).get("matchLabels")) or {})
            body = {
                "metadata": {"name": claim, "labels": labels},
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
            m.create("persistentvolumeclaims", ns, body)
        volumes.append({"name": tname, "persistentVolumeClaim": {"claimName": claim}})
    return volumes


def _pod(m: ControllerManager, sts: Obj, ordinal: int, revision: str) -> Obj:
    name = sts["metadata"]["name"]
    template = sts["spec"].get("template") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    claimed = _claims(m, sts, ordinal)
    names = {v["name"] for v in claimed}
    spec["volumes"] = [v for v in spec.get("volumes") or [] if v.get("name") not in names] + claimed
    spec["hostname"] = f"{name}-{ordinal}"
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels.update(
        {
            "statefulset.kubernetes.io/pod-name": f"{name}-{ordinal}",
            "apps.kubernetes.io/pod-index": str(ordinal),
            REVISION: f"{name}-{revision}",
        }
    )
    meta: Obj = {
        "name": f"{name}-{ordinal}",
        "labels": labels,
        "ownerReferences": [owner_reference(sts)],
    }
    annotations = (template.get("metadata") or {}).get("annotations")
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def reconcile(m: ControllerManager, ns: str, name: str) -> None:
    sts = m.get(KEY, ns, name)
    if sts is None or sts["metadata"].get("deletionTimestamp"):
        return
    spec = sts["spec"]
    replicas = int(spec.get("replicas", 1))
    revision = f"{name}-{template_hash(normalized(spec.get('template') or {}))}"
    parallel = spec.get("podManagementPolicy") == "Parallel"
    pods: dict[int, Obj] = {}
    for pod in m.owned(sts, "pods"):
        ordinal = _ordinal(pod, name)
        if ordinal is None:
            continue
        if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
            if not pod["metadata"].get("deletionTimestamp"):
                m.delete("pods", ns, pod["metadata"]["name"])  # recreated with the same name
            continue
        pods[ordinal] = pod
    healthy = True
    for ordinal in range(replicas):
        pod = pods.get(ordinal)
        if pod is None:
            if not healthy and not parallel:
                break
            created = m.create("pods", ns, _pod(m, sts, ordinal, revision.rsplit("-", 1)[-1]))
            if created is not None:
                pods[ordinal] = created
                m.event(
                    sts,
                    "SuccessfulCreate",
                    f"create Pod {created['metadata']['name']} in StatefulSet {name} successful",
                    COMPONENT,
                )
            healthy = False
            continue
        if not (is_active(pod) and is_ready(pod)):
            healthy = False
    surplus = sorted((o for o in pods if o >= replicas), reverse=True)
    for ordinal in surplus if parallel else surplus[:1]:
        pod = pods[ordinal]
        if not pod["metadata"].get("deletionTimestamp") and (parallel or healthy):
            m.delete("pods", ns, pod["metadata"]["name"])
            m.event(
                sts,
                "SuccessfulDelete",
                f"delete Pod {pod['metadata']['name']} in StatefulSet {name} successful",
                COMPONENT,
            )
    strategy = spec.get("updateStrategy") or {}
    current = [p for o, p in pods.items() if o < replicas]
    updated = [p for p in current if (p["metadata"].get("labels") or {}).get(REVISION) == revision]
    if strategy.get("type", "RollingUpdate") == "RollingUpdate" and healthy:
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        for ordinal in sorted((o for o in pods if partition <= o < replicas), reverse=True):
            pod = pods[ordinal]
            if (pod["metadata"].get("labels") or {}).get(REVISION) != revision:
                if not pod["metadata"].get("deletionTimestamp"):
                    m.delete("pods", ns, pod["metadata"]["name"])
                break
    now = m.now()
    min_ready = int(spec.get("minReadySeconds") or 0)
    old = sts.get("status") or {}
    status: Obj = {
        "observedGeneration": sts["metadata"].get("generation", 1),
        "replicas": len([p for p in current if is_active(p)]),
        "readyReplicas": sum(1 for p in current if is_active(p) and is_ready(p)),
        "availableReplicas": sum(1 for p in current if is_available(p, min_ready, now)),
        "updatedReplicas": len(updated),
        "updateRevision": revision,
        "currentRevision": old.get("currentRevision") or revision,
        "collisionCount": 0,
    }
    if len(updated) == replicas == status["readyReplicas"]:
        status["currentRevision"] = revision
    status["currentReplicas"] = sum(
        1
        for p in current
        if (p["metadata"].get("labels") or {}).get(REVISION) == status["currentRevision"]
    )
    m.set_status(KEY, sts, status)
