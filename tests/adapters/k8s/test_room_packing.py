"""Room-first packing on the devcluster: two rooms of 40 slices, room A filled to 90 % first."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from support import eventually
from test_admission_k8s import client, gated_pod, settle

from hub_ext.adapters.k8s.admission import AdmissionController
from hub_ext.core.capacity.rooms import RoomOrder
from hub_ext.core.k8s_names import ANNOTATION_ROOM, ZONE_LABEL
from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import parse_cluster_config

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ORDER = RoomOrder(("room-a", "room-b"), fill_percent=90)
GPU_NODES = {"room-a": ("a-gpu-1", "a-gpu-2"), "room-b": ("b-gpu-1", "b-gpu-2")}


def two_rooms() -> Any:
    """Two rooms of 40 1g.10gb slices each (2 nodes x 5 A100 x 4 slices), plus a core node."""
    nodes: list[dict[str, Any]] = [
        {"name": "a-core", "zone": "room-a", "cpu": 16, "memory": "64Gi"},
    ]
    for room, names in GPU_NODES.items():
        for name in names:
            gpus = {"model": "A100-SXM4-40GB", "count": 5, "migConfig": "all-1g.10gb"}
            nodes.append({"name": name, "zone": room, "cpu": 96, "memory": "768Gi", "gpus": gpus})
    return parse_cluster_config({"name": "two-rooms", "nodes": nodes})


def student(i: int) -> dict[str, Any]:
    pod = gated_pod(i, T0 + timedelta(seconds=i))
    pod["spec"]["containers"][0]["command"] = ["sleep", "600"]
    return pod


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[tuple[DevCluster, ApiClient, AdmissionController]]:
    async with DevCluster(two_rooms(), tmp_path) as dev, client(dev) as api:
        controller = AdmissionController(api, "default", clock=lambda: T0, rooms=ORDER)
        await controller.start()
        try:
            yield dev, api, controller
        finally:
            await controller.stop()


async def _pods(api: ApiClient) -> list[dict[str, Any]]:
    listed = await CoreV1Api(api).list_namespaced_pod("default")
    return [api.sanitize_for_serialization(p) for p in listed.items]


async def _rooms_of_bound(api: ApiClient) -> dict[str, str]:
    """Room of every pod bound to a node, by pod name."""
    nodes = {node: room for room, names in GPU_NODES.items() for node in names}
    return {
        p["metadata"]["name"]: str(nodes[p["spec"]["nodeName"]])
        for p in await _pods(api)
        if p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp")
    }


async def _create(api: ApiClient, numbers: range) -> None:
    core = CoreV1Api(api)
    await asyncio.gather(*(core.create_namespaced_pod("default", student(i)) for i in numbers))


async def _all_bound(api: ApiClient, controller: AdmissionController, count: int) -> dict[str, str]:
    async def bound() -> dict[str, str] | None:
        await settle(controller, 1)
        rooms = await _rooms_of_bound(api)
        return rooms if len(rooms) >= count else None

    result: dict[str, str] = await eventually(bound, 120, f"{count} pods bound", interval=0.2)
    return result


async def test_45_students_fill_room_a_to_90_percent_then_room_b(
    lab: tuple[DevCluster, ApiClient, AdmissionController],
) -> None:
    _dev, api, controller = lab
    await _create(api, range(45))
    rooms = await _all_bound(api, controller, 45)
    assert Counter(rooms.values()) == {"room-a": 36, "room-b": 9}
    # the first 36 in the queue went to room A
    assert {n for n, r in rooms.items() if r == "room-a"} == {
        f"jupyter-s{i:03d}" for i in range(36)
    }
    pod = next(p for p in await _pods(api) if p["metadata"]["name"] == "jupyter-s000")
    assert pod["metadata"]["annotations"][ANNOTATION_ROOM] == "room-a"
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": ZONE_LABEL, "operator": "In", "values": ["room-a"]}]}
    ]
    # the admin view's per-room rows
    zones = {(z.zone, z.slice_type): z for z in controller.overview().zones}
    assert (zones[("room-a", "1g.10gb")].total, zones[("room-a", "1g.10gb")].used) == (40, 36)
    assert (zones[("room-b", "1g.10gb")].total, zones[("room-b", "1g.10gb")].used) == (40, 9)


async def test_with_room_a_not_ready_new_and_queued_students_go_to_room_b(
    lab: tuple[DevCluster, ApiClient, AdmissionController],
) -> None:
    dev, api, controller = lab
    # the lab fills up: 80 students on 80 slices, 5 more wait in the queue
    await _create(api, range(85))
    rooms = await _all_bound(api, controller, 80)
    assert Counter(rooms.values()) == {"room-a": 40, "room-b": 40}
    await settle(controller)
    assert controller.queue_length("1g.10gb") == 5

    # room A is lost: its GPU nodes go NotReady
    for node in GPU_NODES["room-a"]:
        await dev.set_node_ready(node, False, "power lost in room A")

    async def room_a_gone() -> bool:
        await settle(controller, 1)
        zones = {z.zone: z for z in controller.overview().zones}
        return "room-a" not in zones or zones["room-a"].total == 0

    await eventually(room_a_gone, 60, "room A's slices gone", interval=0.2)
    # eight students in room B log out: the five queued students and three new ones take
    # their slices, all in room B
    leaving = sorted(n for n, r in rooms.items() if r == "room-b")[:8]
    core = CoreV1Api(api)
    for name in leaving:
        await core.delete_namespaced_pod(name, "default", grace_period_seconds=0)
    await _create(api, range(85, 88))
    queued = [f"jupyter-s{i:03d}" for i in range(80, 88)]

    async def placed() -> dict[str, str] | None:
        await settle(controller, 1)
        now = await _rooms_of_bound(api)
        return now if all(n in now for n in queued) else None

    now = await eventually(placed, 120, "queued and new students bound", interval=0.2)
    assert {n: now[n] for n in queued} == dict.fromkeys(queued, "room-b")
    annotations = {
        p["metadata"]["name"]: p["metadata"]["annotations"].get(ANNOTATION_ROOM)
        for p in await _pods(api)
    }
    assert all(annotations[n] == "room-b" for n in queued)
