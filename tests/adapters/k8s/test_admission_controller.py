"""The admission controller's fallbacks, clean-up, overview, metrics and shutdown hook."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from prometheus_client import REGISTRY
from test_admission_k8s import client, config, gated_pod, settle, ungated

from hub_ext.adapters.k8s.admission import AdmissionController, PassReport
from hub_ext.core.admission.model import AdmissionPolicy, CourseSlug, Reservation
from hub_ext.core.capacity.model import SliceType
from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import parse_cluster_config
from hub_ext.hub.spawner import admission as spawner_admission
from hub_ext.hub.spawner.admission import (
    MetricsPublisher,
    admission_quotas,
    install_shutdown_hook,
)

NOW = datetime.now(UTC).replace(microsecond=0)


def fallback_pod(i: int, enqueued: datetime) -> dict[str, Any]:
    pod = gated_pod(i, enqueued)
    limits = pod["spec"]["containers"][0]["resources"]
    for section in ("limits", "requests"):
        limits[section]["nvidia.com/mig-1g.5gb"] = limits[section].pop("nvidia.com/mig-1g.10gb")
    pod["metadata"]["labels"]["labhub.io/slice-type"] = "1g.5gb"
    pod["metadata"]["annotations"]["labhub.io/slice-types"] = "1g.5gb,2g.10gb"
    return pod


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def list_pods(api: ApiClient) -> list[dict[str, Any]]:
    result = await CoreV1Api(api).list_namespaced_pod("default")
    return [api.sanitize_for_serialization(p) for p in result.items]


async def wait_until(probe: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await probe():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_fallback_slice_type_overview_and_metrics(tmp_path: Path) -> None:
    node = {
        "name": "gpu-0",
        "zone": "room-a",
        "cpu": 64,
        "memory": "512Gi",
        "gpus": {"model": "A100-SXM4-40GB", "migLayout": {"1g.5gb": 1, "2g.10gb": 1}},
    }
    lab = parse_cluster_config({"name": "fallback", "nodes": [node]})
    session = Reservation(
        CourseSlug("ml-101"), "ml101-b", SliceType("1g.5gb"), 1, NOW, NOW + timedelta(hours=1)
    )
    async with DevCluster(lab, tmp_path) as dev, client(dev) as api:
        core = CoreV1Api(api)
        controller = AdmissionController(
            api, "default", policy=lambda _now: AdmissionPolicy(reservations=(session,))
        )
        controller.observers.append(MetricsPublisher(controller))
        admitted_before = sample("labhub_admissions_total", slice_type="2g.10gb", course="ml-101")
        await controller.start()
        try:
            first, second, third = (fallback_pod(i, NOW + timedelta(seconds=i)) for i in (1, 2, 3))
            first["metadata"]["labels"]["labhub.io/seminar-group"] = "ml101-b"
            for pod in (first, second, third):
                await core.create_namespaced_pod("default", pod)

            async def two_admitted() -> bool:
                await settle(controller, 1)
                return len(ungated(await list_pods(api))) == 2

            await wait_until(two_admitted)
            pods = {p["metadata"]["name"]: p for p in await list_pods(api)}
            # s002 waited behind nobody on 2g.10gb: its pod was replaced by one asking for it
            moved = pods["jupyter-s002"]
            limits = moved["spec"]["containers"][0]["resources"]["limits"]
            assert limits.get("nvidia.com/mig-2g.10gb") == "1"
            assert "nvidia.com/mig-1g.5gb" not in limits
            assert moved["metadata"]["labels"]["labhub.io/slice-type"] == "2g.10gb"
            assert "labhub.io/admitted-at" in moved["metadata"]["annotations"]
            kept = pods["jupyter-s001"]["spec"]["containers"][0]["resources"]["limits"]
            assert kept.get("nvidia.com/mig-1g.5gb") == "1"
            assert controller.replaced == 1
            assert pods["jupyter-s003"]["spec"].get("schedulingGates")

            async def both_bound() -> bool:
                await settle(controller, 1)
                view = controller.overview()
                return sum(len(r.holders) for r in view.nodes) == 2

            await wait_until(both_bound)
            view = controller.overview()
            rows = {(r.node, r.slice_type): r for r in view.nodes}
            assert [h.user for h in rows[("gpu-0", SliceType("2g.10gb"))].holders] == ["s002"]
            assert [h.user for h in rows[("gpu-0", SliceType("1g.5gb"))].holders] == ["s001"]
            assert rows[("gpu-0", SliceType("1g.5gb"))].free == 0
            (queue,) = view.queues
            assert queue.course == "ml-101"
            assert [(e.user, e.position) for e in queue.entries] == [("s003", 1)]
            (held,) = view.reservations
            assert (held.group, held.seats, held.claimed, held.held) == ("ml101-b", 1, 1, 0)
            assert view.queue_lengths() == {(SliceType("1g.5gb"), CourseSlug("ml-101")): 1}

            assert sample("labhub_slices_total", slice_type="2g.10gb", zone="room-a") == 1
            assert sample("labhub_slices_used", slice_type="1g.5gb", zone="room-a") == 1
            assert sample("labhub_queue_length", slice_type="1g.5gb", course="ml-101") == 1
            assert sample("labhub_reservations_active", course="ml-101") == 1
            after = sample("labhub_admissions_total", slice_type="2g.10gb", course="ml-101")
            assert after == admitted_before + 1
        finally:
            await controller.stop()


async def test_abandoned_and_cancelled_queue_entries(tmp_path: Path) -> None:
    async with DevCluster(config([1]), tmp_path) as dev, client(dev) as api:
        core = CoreV1Api(api)
        old = NOW - timedelta(minutes=30)
        running, abandoned, leaving = (gated_pod(i, old + timedelta(seconds=i)) for i in (1, 2, 3))
        for pod in (running, abandoned, leaving):
            await core.create_namespaced_pod("default", pod)
        reports: list[PassReport] = []
        spawning = {"s001", "s003"}  # this hub still waits for s001 and s003, not for s002
        controller = AdmissionController(
            api,
            "default",
            resync_seconds=0.2,
            abandon_after=0.5,
            spawning=lambda key: key.user in spawning,
        )
        controller.orphan_grace = 0.0
        controller.observers.append(reports.append)
        timeouts_before = sample(
            "labhub_queue_wait_duration_seconds_count", slice_type="1g.10gb", outcome="timeout"
        )
        controller.observers.append(MetricsPublisher(controller))
        await controller.start()
        try:

            async def abandoned_gone() -> bool:
                names = {p["metadata"]["name"] for p in await list_pods(api)}
                return "jupyter-s002" not in names

            await wait_until(abandoned_gone)
            assert controller.cleaned == 1
            # s003 stops waiting (the student pressed Stop): a cancelled queue entry
            await core.delete_namespaced_pod("jupyter-s003", "default", grace_period_seconds=0)

            async def cancelled() -> bool:
                await settle(controller, 1)
                return any(e.outcome == "cancelled" for r in reports for e in r.exits)

            await wait_until(cancelled)
            outcomes = {(e.key.user, e.outcome) for r in reports for e in r.exits}
            assert outcomes == {("s001", "admitted"), ("s002", "timeout"), ("s003", "cancelled")}
            timeouts = sample(
                "labhub_queue_wait_duration_seconds_count", slice_type="1g.10gb", outcome="timeout"
            )
            assert timeouts == timeouts_before + 1
        finally:
            await controller.stop()


async def test_shutdown_hook_stops_the_controllers(tmp_path: Path) -> None:
    from jupyterhub.app import JupyterHub

    assert not install_shutdown_hook()  # no hub in this process yet
    app = JupyterHub.instance()
    cleaned: list[bool] = []

    async def hub_cleanup() -> None:
        cleaned.append(True)

    app.cleanup = hub_cleanup
    try:
        async with DevCluster(config([1]), tmp_path) as dev:
            api = ApiClient(configuration=client(dev).configuration)
            async with api:
                controller = await spawner_admission.controller_for(
                    api, "default", lambda _now: AdmissionPolicy(), 60
                )
                assert controller is spawner_admission.existing_controller("default")
                assert controller.running
                await app.cleanup()  # what JupyterHub runs on SIGTERM
                assert cleaned == [True]
                assert not controller.running
                assert spawner_admission.existing_controller("default") is None
    finally:
        JupyterHub.clear_instance()


def test_quotas_from_the_profile_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "allowed_registries: [registry.example.org]\n"
        "quotas:\n  courses: {ml-101: 20, cv-201: 5}\n  slice_types: {2g.10gb: 4}\n"
    )
    quotas = admission_quotas({"courses": {"ml-101": 30, "nlp-301": 8}}, str(policy))
    assert dict(quotas.per_course) == {"ml-101": 20, "cv-201": 5, "nlp-301": 8}
    assert dict(quotas.per_slice_type) == {"2g.10gb": 4}
    assert admission_quotas({}, "").per_course == {}
    policy.write_text("quotas: [1, 2]\n")
    with pytest.raises(ValueError, match="quotas must map courses and slice_types"):
        admission_quotas({}, str(policy))
