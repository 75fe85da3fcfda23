"""Scheduling predicates and scoring, worded like kube-scheduler.

Pure functions over Pod and Node objects as the API server returns them (JSON dicts). The
scheduler controller (:mod:`hub_ext.devcluster.controllers.scheduler`) feeds them its watched state.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub_ext.devcluster.quantity import QuantityError, to_units

DEFAULT_SCHEDULER = "default-scheduler"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
TERMINAL_PHASES = ("Succeeded", "Failed")

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Decision:
    """Where a pod goes: ``node`` when it fits somewhere, else the FailedScheduling message."""

    node: str | None
    message: str = ""


def is_gated(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("schedulingGates"))


def scheduler_name(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER)


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def pod_requests(pod: Obj) -> dict[str, int]:
    """Effective requests: the sum over containers (limits stand in for missing requests), at
    least the largest init container, plus one pod slot."""
    spec = pod.get("spec") or {}
    total: Counter[str] = Counter()
    for container in spec.get("containers") or []:
        total.update(_container_requests(container))
    for container in spec.get("initContainers") or []:
        for name, value in _container_requests(container).items():
            total[name] = max(total[name], value)
    for name, value in _overhead(spec).items():
        total[name] += value
    total["pods"] = 1
    return dict(total)


def _overhead(spec: Obj) -> dict[str, int]:
    return {k: to_units(k, v) for k, v in (spec.get("overhead") or {}).items()}


def _container_requests(container: Obj) -> dict[str, int]:
    res = container.get("resources") or {}
    merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
    out: dict[str, int] = {}
    for name, value in merged.items():
        try:
            out[name] = to_units(name, value)
        except QuantityError:
            continue
    return out


def node_allocatable(node: Obj) -> dict[str, int]:
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    return {name: to_units(name, value) for name, value in alloc.items()}


def node_is_ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def node_taints(node: Obj) -> list[dict[str, str]]:
    """The node's taints, plus the ones the node controller would add for readiness."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    keys = {t.get("key") for t in taints}
    if not node_is_ready(node) and NOT_READY_TAINT not in keys and UNREACHABLE_TAINT not in keys:
        taints.append({"key": NOT_READY_TAINT, "effect": "NoSchedule"})
    if (node.get("spec") or {}).get("unschedulable") and UNSCHEDULABLE_TAINT not in keys:
        taints.append({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"})
    return taints


def tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        effect = tol.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        operator = tol.get("operator") or "Equal"
        key = tol.get("key") or ""
        if operator == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def untolerated_taint(pod: Obj, node: Obj) -> dict[str, str] | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in node_taints(node):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return taint
    return None


def _match_expression(expr: Obj, value: str | None) -> bool:
    operator, values = expr.get("operator"), [str(v) for v in expr.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False
    name = (node.get("metadata") or {}).get("name")
    return all(_match_expression(e, labels.get(e.get("key"))) for e in exprs) and all(
        _match_expression(f, name if f.get("key") == "metadata.name" else None) for f in fields
    )


def matches_node_selector(pod: Obj, node: Obj) -> bool:
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if terms is not None:
        return any(_term_matches(t, node) for t in terms)
    return True


def preferred_affinity_score(pod: Obj, node: Obj) -> int:
    spec = pod.get("spec") or {}
    preferred = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "preferredDuringSchedulingIgnoredDuringExecution"
    ) or []
    return sum(
        int(p.get("weight", 0)) for p in preferred if _term_matches(p.get("preference") or {}, node)
    )


def used_on_nodes(pods: Iterable[Obj]) -> dict[str, Counter[str]]:
    """Resources requested by non-terminal pods, per node name."""
    used: dict[str, Counter[str]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and not is_terminal(pod):
            used.setdefault(node, Counter()).update(pod_requests(pod))
    return used


def node_reasons(pod: Obj, node: Obj, used: Mapping[str, int]) -> list[str]:
    """Why ``pod`` cannot run on ``node`` (empty when it fits), in kube-scheduler's words."""
    if not matches_node_selector(pod, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    taint = untolerated_taint(pod, node)
    if taint is not None:
        return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"]
    allocatable = node_allocatable(node)
    reasons = []
    for name, amount in sorted(pod_requests(pod).items()):
        if amount <= 0:
            continue
        if used.get(name, 0) + amount > allocatable.get(name, 0):
            reasons.append("Too many pods" if name == "pods" else f"Insufficient {name}")
    return reasons


def score(pod: Obj, node: Obj, used: Mapping[str, int]) -> float:
    """Higher is better: least allocated cpu and memory after placement, plus preferred affinity."""
    allocatable = node_allocatable(node)
    requests = pod_requests(pod)
    free = 0.0
    for name in ("cpu", "memory"):
        cap = allocatable.get(name, 0)
        if cap:
            free += (cap - used.get(name, 0) - requests.get(name, 0)) / cap
    return free * 50 + preferred_affinity_score(pod, node)


def failed_message(total: int, reasons: Counter[str]) -> str:
    """The FailedScheduling message: '0/2 nodes are available: 2 Insufficient cpu.'"""
    if total == 0:
        return "no nodes available to schedule pods"
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"0/{total} nodes are available: {', '.join(parts)}."


def decide(pod: Obj, nodes: Iterable[Obj], used: Mapping[str, Mapping[str, int]]) -> Decision:
    """Pick the best node for ``pod`` or explain why none fits."""
    node_list = list(nodes)
    reasons: Counter[str] = Counter()
    best: tuple[float, str] | None = None
    for node in node_list:
        name = str((node.get("metadata") or {}).get("name"))
        node_used = used.get(name, {})
        why = node_reasons(pod, node, node_used)
        if why:
            reasons.update(why)
            continue
        candidate = (score(pod, node, node_used), name)
        if best is None or candidate[0] > best[0] or (candidate[0] == best[0] and name < best[1]):
            best = candidate
    if best is not None:
        return Decision(best[1])
    return Decision(None, failed_message(len(node_list), reasons))
