"""The incremental capacity index answers exactly what a full recomputation answers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub_ext.core.capacity.index import CapacityIndex
from hub_ext.core.capacity.model import Node, Pod, PodPhase, PodUid, compute_capacity

NODE_NAMES = ["n0", "n1", "n2", "n3"]
POD_UIDS = [f"p{i}" for i in range(8)]
MIXED = {"nvidia.com/mig.strategy": "mixed", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
SINGLE = {
    "nvidia.com/mig.strategy": "single",
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb",
}
SHARED = {"nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.product": "NVIDIA-A30"}
RESOURCES = ["nvidia.com/mig-1g.10gb", "nvidia.com/mig-3g.40gb", "nvidia.com/gpu", "cpu"]


@st.composite
def nodes(draw: st.DrawFn) -> Node:
    labels = dict(draw(st.sampled_from([MIXED, SINGLE, SHARED, {}])))
    labels["topology.kubernetes.io/zone"] = draw(st.sampled_from(["room-a", "room-b"]))
    alloc = draw(st.dictionaries(st.sampled_from(RESOURCES), st.integers(0, 5), max_size=3))
    return Node.from_labels(
        draw(st.sampled_from(NODE_NAMES)),
        labels,
        alloc,
        ready=draw(st.booleans()),
        unschedulable=draw(st.integers(0, 4)) == 0,
    )


@st.composite
def pods(draw: st.DrawFn) -> Pod:
    return Pod(
        PodUid(draw(st.sampled_from(POD_UIDS))),
        "labhub",
        "pod",
        draw(st.dictionaries(st.sampled_from(RESOURCES), st.integers(0, 3), max_size=2)),
        draw(st.sampled_from([None, *NODE_NAMES, "gone"])),
        draw(st.sampled_from(list(PodPhase))),
        draw(st.sampled_from([{}, {"labhub.io/slice-type": "1g.10gb"}])),
        draw(st.booleans()),
    )


operations = st.one_of(
    st.tuples(st.just("node"), nodes()),
    st.tuples(st.just("remove-node"), st.sampled_from(NODE_NAMES)),
    st.tuples(st.just("pod"), pods()),
    st.tuples(st.just("remove-pod"), st.sampled_from(POD_UIDS)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(operations, max_size=40))
def test_incremental_equals_recompute(ops: list[tuple[str, object]]) -> None:
    index = CapacityIndex()
    node_map: dict[str, Node] = {}
    pod_map: dict[PodUid, Pod] = {}
    for kind, arg in ops:
        if kind == "node":
            assert isinstance(arg, Node)
            index.update_node(arg)
            node_map[arg.name] = arg
        elif kind == "remove-node":
            assert isinstance(arg, str)
            index.remove_node(arg)
            node_map.pop(arg, None)
        elif kind == "pod":
            assert isinstance(arg, Pod)
            index.add_pod(arg)
            pod_map[arg.uid] = arg
        else:
            index.remove_pod(PodUid(str(arg)))
            pod_map.pop(PodUid(str(arg)), None)
        full = compute_capacity(node_map.values(), pod_map.values())
        assert index.snapshot().canonical() == full.canonical()
        assert index.free_by_type() == full.free_by_type()
        for slice_type in ("1g.10gb", "gpu.shared", "1g.10gb.shared", "3g.40gb"):
            assert index.free(slice_type) == full.free(slice_type)
            for zone in ("room-a", "room-b"):
                assert index.free(slice_type, zone=zone) == full.free(slice_type, zone=zone)


def test_one_pod_event_changes_only_its_node() -> None:
    index = CapacityIndex()
    for i in range(3):
        labels = {**MIXED, "topology.kubernetes.io/zone": "room-a"}
        index.update_node(Node.from_labels(f"n{i}", labels, {"nvidia.com/mig-1g.10gb": 7}))
    pod = Pod(PodUid("p"), "labhub", "p", {"nvidia.com/mig-1g.10gb": 1}, "n1", PodPhase.RUNNING)
    index.add_pod(pod)
    assert [index.free("1g.10gb", node=f"n{i}") for i in range(3)] == [7, 6, 7]
    index.add_pod(Pod(pod.uid, "labhub", "p", pod.requests, "n1", PodPhase.SUCCEEDED))
    assert index.free("1g.10gb") == 21
    index.add_pod(pod)
    index.remove_pod(pod.uid)
    index.remove_pod(pod.uid)  # removing twice is harmless
    assert index.free("1g.10gb", zone="room-a") == 21


def test_node_going_not_ready_and_back() -> None:
    index = CapacityIndex()
    labels = {**MIXED, "topology.kubernetes.io/zone": "room-b"}
    node = Node.from_labels("n", labels, {"nvidia.com/mig-1g.10gb": 4})
    index.update_node(node)
    index.add_pod(Pod(PodUid("p"), "ns", "p", {"nvidia.com/mig-1g.10gb": 1}, "n", PodPhase.RUNNING))
    assert index.free("1g.10gb") == 3
    index.update_node(Node.from_labels("n", labels, {"nvidia.com/mig-1g.10gb": 4}, ready=False))
    assert index.free("1g.10gb") == 0 and index.totals() == {}
    index.update_node(node)
    assert index.free("1g.10gb") == 3
