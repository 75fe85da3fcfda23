"""Scheduling predicates and kube-scheduler wording (pure functions, no server)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hub_ext.devcluster.controllers import scheduling

MIG = "nvidia.com/mig-1g.10gb"


def node(
    name: str,
    ready: bool = True,
    labels: dict | None = None,
    taints: list | None = None,
    **alloc: str,
) -> dict[str, Any]:
    allocatable = {"cpu": "8", "memory": "32Gi", "pods": "110", **alloc}
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or []},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(requests: dict | None = None, limits: dict | None = None, **spec: Any) -> dict[str, Any]:
    container = {"name": "c", "resources": {"requests": requests or {}, "limits": limits or {}}}
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [container], **spec},
    }


def test_extended_resource_shortage_is_worded_like_kube_scheduler() -> None:
    nodes = [node("a", **{MIG: "1"}), node("b", **{MIG: "1"})]
    used = {"a": Counter({MIG: 1}), "b": Counter({MIG: 1})}
    decision = scheduling.decide(pod(limits={MIG: "1"}), nodes, used)
    assert decision.node is None
    assert decision.message == f"0/2 nodes are available: 2 Insufficient {MIG}."


def test_limits_stand_in_for_requests_and_free_capacity_wins() -> None:
    nodes = [node("a", **{MIG: "4"}), node("b")]
    assert scheduling.decide(pod(limits={MIG: "1"}), nodes, {}).node == "a"
    assert scheduling.pod_requests(pod(limits={MIG: "1", "cpu": "500m"})) == {
        MIG: 1,
        "cpu": 500,
        "pods": 1,
    }


def test_mixed_reasons_are_counted_and_sorted() -> None:
    nodes = [
        node("a", ready=False),
        node("b", labels={"zone": "x"}),
        node("c", cpu="1"),
    ]
    p = pod(requests={"cpu": "2"}, nodeSelector={"zone": "x"})
    message = scheduling.decide(p, nodes, {"b": Counter({"cpu": 7000})}).message
    assert message == (
        "0/3 nodes are available: 1 Insufficient cpu, "
        "2 node(s) didn't match Pod's node affinity/selector."
    )
    p = pod(requests={"cpu": "2"})
    message = scheduling.decide(p, [node("a", ready=False), node("c", cpu="1")], {}).message
    assert message == (
        "0/2 nodes are available: 1 Insufficient cpu, "
        "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
    )


def test_required_node_affinity_operators() -> None:
    nodes = [node("a", labels={"zone": "room-a", "gen": "3"}), node("b", labels={"zone": "room-b"})]

    def affinity(*exprs: dict) -> dict:
        terms = [{"matchExpressions": list(exprs)}]
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }

    cases = [
        ({"key": "zone", "operator": "In", "values": ["room-b"]}, "b"),
        ({"key": "zone", "operator": "NotIn", "values": ["room-b"]}, "a"),
        ({"key": "gen", "operator": "Exists"}, "a"),
        ({"key": "gen", "operator": "DoesNotExist"}, "b"),
        ({"key": "gen", "operator": "Gt", "values": ["2"]}, "a"),
    ]
    for expr, expected in cases:
        assert scheduling.decide(pod(affinity=affinity(expr)), nodes, {}).node == expected
    none = scheduling.decide(
        pod(affinity=affinity({"key": "zone", "operator": "In", "values": ["room-c"]})), nodes, {}
    )
    assert none.message.endswith("2 node(s) didn't match Pod's node affinity/selector.")


def test_taints_need_tolerations() -> None:
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    nodes = [node("gpu", taints=[taint])]
    refused = scheduling.decide(pod(), nodes, {})
    assert refused.message == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}."
    )
    for toleration in (
        {"key": "nvidia.com/gpu", "operator": "Exists"},
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"},
        {"operator": "Exists"},
    ):
        assert scheduling.decide(pod(tolerations=[toleration]), nodes, {}).node == "gpu"
    wrong = {"key": "nvidia.com/gpu", "value": "absent"}
    assert scheduling.decide(pod(tolerations=[wrong]), nodes, {}).node is None
    soft = [node("soft", taints=[{**taint, "effect": "PreferNoSchedule"}])]
    assert scheduling.decide(pod(), soft, {}).node == "soft"


def test_gates_scheduler_name_and_terminal_pods() -> None:
    gated = pod(schedulingGates=[{"name": "labhub.io/admission"}])
    assert scheduling.is_gated(gated)
    assert scheduling.scheduler_name(pod()) == "default-scheduler"
    assert scheduling.scheduler_name(pod(schedulerName="other")) == "other"
    done = {**pod(requests={"cpu": "8"}, nodeName="a"), "status": {"phase": "Succeeded"}}
    running = pod(requests={"cpu": "3"}, nodeName="a")
    assert scheduling.used_on_nodes([done, running])["a"]["cpu"] == 3000


def test_init_containers_and_pod_count() -> None:
    p = pod(requests={"cpu": "1"})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "3"}}}]
    assert scheduling.pod_requests(p)["cpu"] == 3000
    full = node("a", pods="1")
    message = scheduling.decide(pod(), [full], {"a": Counter({"pods": 1})}).message
    assert message == "0/1 nodes are available: 1 Too many pods."
    assert scheduling.decide(pod(), [], {}).message == "no nodes available to schedule pods"


def test_least_allocated_node_is_preferred() -> None:
    nodes = [node("a"), node("b")]
    used = {"a": Counter({"cpu": 6000, "memory": 2**34})}
    assert scheduling.decide(pod(requests={"cpu": "1"}), nodes, used).node == "b"
