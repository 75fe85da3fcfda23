"""The DaemonSet controller: one pod on every node that the pod template fits.

A node is eligible when the template's ``nodeSelector`` and required node affinity match its
labels and the template tolerates its ``NoSchedule`` and ``NoExecute`` taints (with the
tolerations every daemon pod gets: not-ready, unreachable, disk-, memory- and pid-pressure,
unschedulable). Each pod is pinned to its node with a required node affinity on
``metadata.name`` and bound by the scheduler, as in Kubernetes. Pods on nodes that are no longer
eligible are deleted. A changed template (label ``controller-revision-hash``) is rolled out with
``RollingUpdate`` (at most ``maxUnavailable`` nodes without an available pod) or waits for the
pods to be deleted (``OnDelete``). The status carries the counts ``kubectl rollout status``
reads.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from hub_ext.devcluster import scheduling
from hub_ext.devcluster.controllers.deployments import template_hash
from hub_ext.devcluster.controllers.labels import is_active, is_ready, scaled
from hub_ext.devcluster.controllers.replicasets import is_available, pod_from_template

if TYPE_CHECKING:
    from hub_ext.devcluster.controllers.manager import ControllerManager

Obj = dict[str, Any]
KEY = "daemonsets.apps"
COMPONENT = "daemonset-controller"
HASH_LABEL = "controller-revision-hash"
DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def _tolerations(template_spec: Obj) -> list[Obj]:
    own = list(template_spec.get("tolerations") or [])
    keys = {(t.get("key"), t.get("effect")) for t in own}
    return own + [
        copy.deepcopy(t) for t in DAEMON_TOLERATIONS if (t["key"], t["effect"]) not in keys
    ]


def eligible(template_spec: Obj, node: Obj) -> bool:
    """Whether a daemon pod with this spec belongs on ``node``."""
    probe = {"spec": {**template_spec, "tolerations": _tolerations(template_spec)}}
    return scheduling.matches_node_selector(probe, node) and (
        scheduling.untolerated_taint(probe, node) is None
    )


def _pinned_affinity(spec: Obj, node: str) -> Obj:
    affinity = copy.deepcopy(spec.get("affinity") or {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
    }
    return affinity


def target_node(pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return str(field["values"][0])
    return None


def reconcile(m: ControllerManager, ns: str, name: str) -> None:
    ds = m.get(KEY, ns, name)
    if ds is None or ds["metadata"].get("deletionTimestamp"):
        return
    spec = ds["spec"]
    template = copy.deepcopy(spec.get("template") or {})
    hash_ = template_hash(template)
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hash_
    tspec = template.get("spec") or {}
    nodes = {n["metadata"]["name"]: n for n in m.store.objects.get("nodes", {}).values()}
    wanted = {n for n, node in nodes.items() if eligible(tspec, node)}
    by_node: dict[str, list[Obj]] = {}
    for pod in m.owned(ds, "pods"):
        if (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
            if not pod["metadata"].get("deletionTimestamp"):
                m.delete("pods", ns, pod["metadata"]["name"])  # replaced below
            continue
        if is_active(pod):
            by_node.setdefault(target_node(pod) or "", []).append(pod)
    misscheduled = 0
    for node, pods in list(by_node.items()):
        if node not in wanted:
            misscheduled += sum(1 for p in pods if (p.get("spec") or {}).get("nodeName"))
            for pod in pods:
                m.delete("pods", ns, pod["metadata"]["name"])
            del by_node[node]
        elif len(pods) > 1:
            keep = sorted(pods, key=lambda p: (not is_ready(p), p["metadata"]["creationTimestamp"]))
            for pod in keep[1:]:
                m.delete("pods", ns, pod["metadata"]["name"])
            by_node[node] = keep[:1]
    for node in sorted(wanted - set(by_node)):
        extra = {
            "affinity": _pinned_affinity(tspec, node),
            "tolerations": _tolerations(tspec),
        }
        created = m.create("pods", ns, pod_from_template(ds, template, extra))
        if created is not None:
            by_node[node] = [created]
            m.event(
                ds, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", COMPONENT
            )
    min_ready = int(spec.get("minReadySeconds") or 0)
    now = m.now()
    pods = [p[0] for p in by_node.values()]
    outdated = [p for p in pods if (p["metadata"].get("labels") or {}).get(HASH_LABEL) != hash_]
    strategy = spec.get("updateStrategy") or {}
    if outdated and strategy.get("type", "RollingUpdate") == "RollingUpdate":
        limit = scaled(
            (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), len(wanted), True
        )
        unavailable = sum(1 for p in pods if not is_available(p, min_ready, now))
        budget = max(1, limit) - unavailable
        for pod in sorted(outdated, key=is_ready):
            if budget <= 0 and is_available(pod, min_ready, now):
                break
            m.delete("pods", ns, pod["metadata"]["name"])
            budget -= 1 if is_available(pod, min_ready, now) else 0
    ready = sum(1 for p in pods if is_ready(p))
    available = sum(1 for p in pods if is_available(p, min_ready, now))
    if available < ready:
        m.requeue_after((KEY, ns, name), 1.0)
    status = {
        "currentNumberScheduled": sum(1 for p in pods if (p.get("spec") or {}).get("nodeName")),
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": len(wanted),
        "numberReady": ready,
        "numberAvailable": available,
        "updatedNumberScheduled": len(pods) - len(outdated),
        "observedGeneration": ds["metadata"].get("generation", 1),
    }
    if len(wanted) - available > 0:
        status["numberUnavailable"] = len(wanted) - available
    m.set_status(KEY, ds, status)
