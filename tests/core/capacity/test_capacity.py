"""Capacity model: GFD label parsing, the three device-plugin conventions, what holds a slice."""

from __future__ import annotations

import pytest

from hub_ext.core.capacity.model import (
    Node,
    Pod,
    PodPhase,
    PodUid,
    SharingStrategy,
    SliceCount,
    SliceType,
    compute_capacity,
    node_slice_resources,
    parse_gpu_labels,
    resource_slice_type,
)
from hub_ext.core.k8s_names import SliceStrategy

# Label sets in the form GPU Feature Discovery publishes them (examples modelled on NVIDIA's
# gpu-feature-discovery README and the GPU Operator's MIG and GPU-sharing guides).
COMMON = {
    "nvidia.com/cuda.driver.major": "535",
    "nvidia.com/cuda.driver.minor": "104",
    "nvidia.com/cuda.driver.rev": "05",
    "nvidia.com/cuda.runtime.major": "12",
    "nvidia.com/cuda.runtime.minor": "2",
    "nvidia.com/gfd.timestamp": "1700000000",
    "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.compute.minor": "0",
    "nvidia.com/gpu.family": "ampere",
    "nvidia.com/gpu.machine": "DGX-A100",
    "nvidia.com/gpu.present": "true",
    "nvidia.com/mig.capable": "true",
    "topology.kubernetes.io/zone": "room-a",
}

MIXED_LABELS = {
    **COMMON,
    "nvidia.com/gpu.count": "2",
    "nvidia.com/gpu.memory": "40960",
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB",
    "nvidia.com/mig.strategy": "mixed",
    "nvidia.com/mig.config": "all-balanced",
    "nvidia.com/mig.config.state": "success",
    "nvidia.com/mig-1g.5gb.count": "4",
    "nvidia.com/mig-1g.5gb.engines.copy": "1",
    "nvidia.com/mig-1g.5gb.engines.decoder": "0",
    "nvidia.com/mig-1g.5gb.engines.encoder": "0",
    "nvidia.com/mig-1g.5gb.engines.jpeg": "0",
    "nvidia.com/mig-1g.5gb.engines.ofa": "0",
    "nvidia.com/mig-1g.5gb.memory": "4864",
    "nvidia.com/mig-1g.5gb.multiprocessors": "14",
    "nvidia.com/mig-1g.5gb.slices.ci": "1",
    "nvidia.com/mig-1g.5gb.slices.gi": "1",
    "nvidia.com/mig-2g.10gb.count": "2",
    "nvidia.com/mig-2g.10gb.memory": "9856",
    "nvidia.com/mig-2g.10gb.multiprocessors": "28",
    "nvidia.com/mig-2g.10gb.slices.ci": "2",
    "nvidia.com/mig-2g.10gb.slices.gi": "2",
    "nvidia.com/mig-3g.20gb.count": "2",
    "nvidia.com/mig-3g.20gb.memory": "19968",
    "nvidia.com/mig-3g.20gb.multiprocessors": "42",
    "nvidia.com/mig-3g.20gb.slices.ci": "3",
    "nvidia.com/mig-3g.20gb.slices.gi": "3",
}
MIXED_ALLOC = {
    "cpu": 64,
    "nvidia.com/gpu": 0,
    "nvidia.com/mig-1g.5gb": 4,
    "nvidia.com/mig-2g.10gb": 2,
    "nvidia.com/mig-3g.20gb": 2,
}

SINGLE_LABELS = {
    **COMMON,
    "nvidia.com/gpu.count": "7",
    "nvidia.com/gpu.memory": "4864",
    "nvidia.com/gpu.multiprocessors": "14",
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB-MIG-1g.5gb",
    "nvidia.com/gpu.slices.ci": "1",
    "nvidia.com/gpu.slices.gi": "1",
    "nvidia.com/gpu.engines.copy": "1",
    "nvidia.com/mig.strategy": "single",
    "nvidia.com/mig.config": "all-1g.5gb",
    "nvidia.com/mig.config.state": "success",
}

TIME_SLICED_LABELS = {
    "nvidia.com/gpu.count": "4",
    "nvidia.com/gpu.product": "Tesla-T4-SHARED",
    "nvidia.com/gpu.memory": "15360",
    "nvidia.com/gpu.replicas": "4",
    "nvidia.com/gpu.sharing-strategy": "time-slicing",
    "nvidia.com/gpu.family": "turing",
    "nvidia.com/mig.capable": "false",
    "topology.kubernetes.io/zone": "room-b",
}

RENAMED_SHARED_LABELS = {
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.product": "NVIDIA-A100-PCIE-40GB",
    "nvidia.com/gpu.memory": "40960",
    "nvidia.com/gpu.replicas": "8",
    "nvidia.com/gpu.sharing-strategy": "mps",
    "topology.kubernetes.io/zone": "room-b",
}


def pod(uid: str, node: str | None, phase: PodPhase = PodPhase.RUNNING, **requests: int) -> Pod:
    """``mig_1g_5gb=1`` requests ``nvidia.com/mig-1g.5gb``; ``gpu=1`` ``nvidia.com/gpu``."""
    reqs = {}
    for key, qty in requests.items():
        if key.startswith("mig_"):
            reqs["nvidia.com/mig-" + key[4:].replace("_", ".", 1).replace("_", ".")] = qty
        elif key == "gpu":
            reqs["nvidia.com/gpu"] = qty
        else:
            reqs[key] = qty
    return Pod(PodUid(uid), "labhub", f"jupyter-{uid}", reqs, node, phase)


def test_mixed_labels_parse_like_gfd_publishes_them() -> None:
    info = parse_gpu_labels(MIXED_LABELS)
    assert info.mig_strategy is SliceStrategy.MIXED
    assert info.product == "NVIDIA-A100-SXM4-40GB" and info.count == 2
    assert info.mig_config == "all-balanced"
    assert info.mig_profiles == (("1g.5gb", 4), ("2g.10gb", 2), ("3g.20gb", 2))
    assert info.replicas == 1 and info.sharing is SharingStrategy.NONE


def test_mixed_node_offers_one_resource_per_profile() -> None:
    node = Node.from_labels("gpu-1", MIXED_LABELS, MIXED_ALLOC)
    resources = node_slice_resources(node)
    assert [(r.resource, r.slice_type, r.count, r.memory_mib) for r in resources] == [
        ("nvidia.com/gpu", "gpu", 0, 40960),
        ("nvidia.com/mig-1g.5gb", "1g.5gb", 4, 4864),
        ("nvidia.com/mig-2g.10gb", "2g.10gb", 2, 9856),
        ("nvidia.com/mig-3g.20gb", "3g.20gb", 2, 19968),
    ]
    assert node.zone == "room-a"


def test_single_strategy_reads_the_profile_from_the_product_label() -> None:
    node = Node.from_labels("gpu-2", SINGLE_LABELS, {"nvidia.com/gpu": 7})
    (res,) = node_slice_resources(node)
    assert (res.slice_type, res.count, res.memory_mib) == ("1g.5gb", 7, 4864)
    assert parse_gpu_labels(SINGLE_LABELS).mig_strategy is SliceStrategy.SINGLE


def test_time_slicing_without_rename_is_a_shared_gpu() -> None:
    node = Node.from_labels("t4", TIME_SLICED_LABELS, {"nvidia.com/gpu": 16})
    (res,) = node_slice_resources(node)
    assert (res.slice_type, res.count, res.replicas) == ("gpu.shared", 16, 4)
    info = parse_gpu_labels(TIME_SLICED_LABELS)
    assert info.sharing is SharingStrategy.TIME_SLICING and info.replicas == 4


def test_renamed_mps_replicas_are_shared_gpus() -> None:
    node = Node.from_labels("a100-pcie", RENAMED_SHARED_LABELS, {"nvidia.com/gpu.shared": 8})
    (res,) = node_slice_resources(node)
    assert (res.slice_type, res.count) == ("gpu.shared", 8)
    assert parse_gpu_labels(RENAMED_SHARED_LABELS).sharing is SharingStrategy.MPS


@pytest.mark.parametrize(
    ("resource", "labels", "expected"),
    [
        ("nvidia.com/mig-1g.10gb", {}, "1g.10gb"),
        ("nvidia.com/mig-1g.10gb.shared", {}, "1g.10gb.shared"),
        ("nvidia.com/mig-1g.10gb", {"nvidia.com/gpu.replicas": "2"}, "1g.10gb.shared"),
        ("nvidia.com/mig-2g.20gb", {"nvidia.com/gpu.replicas": "1"}, "2g.20gb"),
        ("nvidia.com/gpu", {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "gpu"),
        (
            "nvidia.com/gpu",
            {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB-MIG-1g.10gb"},
            "1g.10gb",
        ),
        (
            "nvidia.com/gpu",
            {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB-MIG-1g.10gb-SHARED"},
            "1g.10gb.shared",
        ),
        (
            "nvidia.com/gpu.shared",
            {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB-MIG-3g.20gb"},
            "3g.20gb.shared",
        ),
        ("nvidia.com/gpu", {}, "gpu"),
        ("nvidia.com/gpu", {"nvidia.com/gpu.replicas": "nonsense"}, "gpu"),
        ("cpu", {}, None),
        ("example.com/fpga", {}, None),
    ],
    ids=[
        "mixed",
        "mixed-renamed-shared",
        "mixed-replicas",
        "mixed-one-replica",
        "whole-gpu",
        "single",
        "single-shared-product",
        "single-renamed-shared",
        "no-labels",
        "malformed-replicas",
        "cpu",
        "other-extended-resource",
    ],
)
def test_resource_slice_type(resource: str, labels: dict[str, str], expected: str | None) -> None:
    assert resource_slice_type(resource, labels) == expected


def reference_nodes() -> list[Node]:
    labels = {**MIXED_LABELS}
    alloc = {"nvidia.com/mig-1g.5gb": 4, "nvidia.com/mig-2g.10gb": 2}
    room_b = {**SINGLE_LABELS, "topology.kubernetes.io/zone": "room-b"}
    return [
        Node.from_labels("a1", labels, alloc),
        Node.from_labels("a2", labels, alloc),
        Node.from_labels("b1", room_b, {"nvidia.com/gpu": 7}),
        Node.from_labels("core", {"topology.kubernetes.io/zone": "room-a"}, {"cpu": 16}),
    ]


def test_free_per_node_zone_and_type() -> None:
    pods = [
        pod("p1", "a1", mig_1g_5gb=1),
        pod("p2", "a1", mig_1g_5gb=2),
        pod("p3", "a2", mig_2g_10gb=1),
        pod("p4", "b1", gpu=3),
        pod("cpu-only", "core", cpu=1),
    ]
    cap = compute_capacity(reference_nodes(), pods)
    assert cap.free("1g.5gb", node="a1") == 1
    assert cap.free("1g.5gb", node="a2") == 4
    assert cap.free("1g.5gb", zone="room-a") == 5
    assert cap.free("1g.5gb", zone="room-b") == 4
    assert cap.free("2g.10gb", zone="room-a") == 3
    assert cap.free_by_type() == {"1g.5gb": 9, "2g.10gb": 3}
    assert cap.totals()[SliceType("1g.5gb")] == SliceCount(capacity=15, used=6, free=9)
    assert "core" not in cap.by_node


@pytest.mark.parametrize(
    ("phase", "holds"),
    [
        (PodPhase.PENDING, True),
        (PodPhase.RUNNING, True),
        (PodPhase.UNKNOWN, True),
        (PodPhase.SUCCEEDED, False),
        (PodPhase.FAILED, False),
    ],
    ids=lambda v: str(getattr(v, "value", v)),
)
def test_terminated_pods_do_not_hold_slices(phase: PodPhase, holds: bool) -> None:
    cap = compute_capacity(reference_nodes(), [pod("p", "a1", phase, mig_1g_5gb=4)])
    assert cap.free("1g.5gb", node="a1") == (0 if holds else 4)


def test_not_ready_nodes_neither_offer_nor_hold_slices() -> None:
    nodes = reference_nodes()
    nodes[0] = Node.from_labels("a1", MIXED_LABELS, {"nvidia.com/mig-1g.5gb": 4}, ready=False)
    cap = compute_capacity(nodes, [pod("p", "a1", mig_1g_5gb=4)])
    assert cap.totals()[SliceType("1g.5gb")] == SliceCount(capacity=11, used=0, free=11)
    assert cap.free("1g.5gb", node="a1") == 0


def test_cordoned_nodes_keep_their_use_but_offer_nothing() -> None:
    nodes = reference_nodes()
    nodes[1] = Node.from_labels(
        "a2", MIXED_LABELS, {"nvidia.com/mig-1g.5gb": 4}, unschedulable=True
    )
    cap = compute_capacity(nodes, [pod("p", "a2", mig_1g_5gb=1)])
    assert cap.by_node["a2"][SliceType("1g.5gb")] == SliceCount(capacity=4, used=1, free=0)


def test_overcommitted_node_does_not_borrow_from_others() -> None:
    cap = compute_capacity(reference_nodes(), [pod("p", "a1", mig_1g_5gb=9)])
    assert cap.free("1g.5gb", node="a1") == 0
    assert cap.free("1g.5gb", zone="room-a") == 4


def test_admitted_unbound_pods_hold_a_slice_cluster_wide() -> None:
    nodes = reference_nodes()
    gated = Pod(PodUid("q"), "labhub", "q", {"nvidia.com/mig-1g.5gb": 1}, None, gated=True)
    flying = Pod(PodUid("f"), "labhub", "f", {"nvidia.com/mig-1g.5gb": 1}, None)
    single = Pod(
        PodUid("s"),
        "labhub",
        "s",
        {"nvidia.com/gpu": 1},
        None,
        labels={"labhub.io/slice-type": "1g.5gb"},
    )
    unknown = Pod(PodUid("u"), "labhub", "u", {"nvidia.com/gpu": 1}, None)
    cap = compute_capacity(nodes, [gated, flying, single, unknown])
    assert cap.in_flight == {"1g.5gb": 2}
    assert cap.free_by_type()[SliceType("1g.5gb")] == 15 - 2
    assert cap.free("1g.5gb", zone="room-a") == 8  # zones do not know where they will land


def test_later_duplicates_replace_earlier_ones() -> None:
    first = pod("p", "a1", mig_1g_5gb=1)
    done = pod("p", "a1", PodPhase.SUCCEEDED, mig_1g_5gb=1)
    cap = compute_capacity(reference_nodes(), [first, done])
    assert cap.free("1g.5gb", node="a1") == 4
