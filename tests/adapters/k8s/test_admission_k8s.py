"""The slice admission controller against the emulated cluster."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from hub_ext.adapters.k8s.admission import ANNOTATION_ENQUEUED, AdmissionController
from hub_ext.core.manifests import PodRequest, build_pod
from hub_ext.core.profiles.model import GpuRequest
from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import parse_cluster_config

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def config(layouts: list[int]) -> Any:
    nodes = [
        {
            "name": f"gpu-{i}",
            "zone": "room-a" if i % 2 == 0 else "room-b",
            "cpu": 64,
            "memory": "512Gi",
            "gpus": {"model": "A100-SXM4-40GB", "migLayout": {"1g.10gb": n}},
        }
        for i, n in enumerate(layouts)
    ]
    return parse_cluster_config({"name": "admission", "nodes": nodes})


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[DevCluster]:
    async with DevCluster(config([4, 4, 2]), tmp_path) as dev:
        yield dev


def client(dev: DevCluster) -> ApiClient:
    conf = Configuration(host=dev.api.url)
    return ApiClient(configuration=conf)


def gated_pod(i: int, enqueued: datetime) -> dict[str, Any]:
    pod = build_pod(
        PodRequest(
            pod_name=f"jupyter-s{i:03d}",
            namespace="default",
            username=f"s{i:03d}",
            server_name="",
            course="ml-101",
            group="ml101-a",
            image="ignored",
            command=(sys.executable, "-c", "import time; time.sleep(120)"),
            port=8888,
            home_claim=f"claim-s{i:03d}",
            cpu_guarantee=0.01,
            cpu_limit=1,
            memory_guarantee=2**20,
            memory_limit=2**30,
            gpu=GpuRequest(("1g.10gb",)),
        )
    )
    pod["spec"]["volumes"] = []
    pod["spec"]["containers"][0]["volumeMounts"] = []
    pod["metadata"]["annotations"][ANNOTATION_ENQUEUED] = enqueued.isoformat()
    return pod


def ungated(pods: list[dict[str, Any]]) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods if not p["spec"].get("schedulingGates"))


async def list_pods(core: CoreV1Api) -> list[dict[str, Any]]:
    result = await core.list_namespaced_pod("default")
    return [ApiClient().sanitize_for_serialization(p) for p in result.items]


async def settle(controller: AdmissionController, passes: int = 3) -> None:
    for _ in range(passes):
        controller.poke()
        await controller.wait_for_update(2.0)


async def test_hundred_concurrent_spawns_for_ten_slices_admit_exactly_ten(
    cluster: DevCluster,
) -> None:
    async with client(cluster) as api:
        core = CoreV1Api(api)
        controller = AdmissionController(api, "default", clock=lambda: T0)
        await controller.start()
        try:
            await asyncio.gather(
                *(
                    core.create_namespaced_pod("default", gated_pod(i, T0 + timedelta(seconds=i)))
                    for i in range(100)
                )
            )
            deadline = asyncio.get_running_loop().time() + 20
            while controller.admissions < 10 and asyncio.get_running_loop().time() < deadline:
                await controller.wait_for_update(1.0)
            await settle(controller)
            pods = await list_pods(core)
            admitted = ungated(pods)
            assert len(admitted) == 10
            assert controller.admissions == 10
            # The creations race each other, so a pass may admit a student whose pod arrived
            # before an earlier-enqueued one; everyone left waits in enqueue order.
            waiting = [i for i in range(100) if f"jupyter-s{i:03d}" not in admitted]
            positions = [getattr(controller.status(f"s{i:03d}"), "position", None) for i in waiting]
            assert positions == list(range(1, 91))
            assert controller.queue_length("1g.10gb") == 90
            assert controller.free("1g.10gb") == 0
        finally:
            await controller.stop()

        # A new controller (a restarted hub) rebuilds the same queue and admits nobody more.
        second = AdmissionController(api, "default", clock=lambda: T0)
        await second.start()
        try:
            await settle(second)
            assert second.admissions == 0
            first, second_in_line = (f"s{i:03d}" for i in waiting[:2])
            assert getattr(second.status(first), "position", None) == 1
            # a student stops: the next in line gets the slice by itself
            await core.delete_namespaced_pod(admitted[3], "default", grace_period_seconds=0)
            deadline = asyncio.get_running_loop().time() + 20
            while second.admissions < 1 and asyncio.get_running_loop().time() < deadline:
                await second.wait_for_update(1.0)
            await settle(second)
            admitted = ungated(await list_pods(core))
            assert f"jupyter-{first}" in admitted
            assert f"jupyter-{second_in_line}" not in admitted
            assert second.admissions == 1
        finally:
            await second.stop()


async def test_lab_session_seats_go_to_its_group_first(tmp_path: Path) -> None:
    from hub_ext.core.admission.model import AdmissionPolicy, CourseSlug, Reservation
    from hub_ext.core.capacity.model import SliceType

    session = Reservation(
        CourseSlug("ml-101"), "ml101-b", SliceType("1g.10gb"), 2, T0, T0 + timedelta(minutes=90)
    )
    now = T0 + timedelta(minutes=2)
    async with DevCluster(config([2]), tmp_path) as dev, client(dev) as api:
        core = CoreV1Api(api)
        early = gated_pod(1, T0)  # ml101-a, asked first
        late = gated_pod(2, now)
        late["metadata"]["labels"]["labhub.io/seminar-group"] = "ml101-b"
        for pod in (early, late):
            await core.create_namespaced_pod("default", pod)
        controller = AdmissionController(
            api,
            "default",
            policy=lambda _now: AdmissionPolicy(reservations=(session,)),
            clock=lambda: now,
        )
        await controller.start()
        try:
            await settle(controller)
            assert ungated(await list_pods(core)) == ["jupyter-s002"]
            waiting = controller.status("s001")
            assert getattr(waiting, "reason", None) is not None
            assert waiting.reason.value == "reserved-for-lab-session"  # type: ignore[union-attr]
        finally:
            await controller.stop()
