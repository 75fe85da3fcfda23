"""GPU usage is kept durably: a finished session is in the namespace's ConfigMap, and a new
admission controller (a restarted hub) reads it back; the budget rule sees it then."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubernetes_asyncio.client import CoreV1Api
from test_admission_k8s import client, config, gated_pod, settle

from hub_ext.adapters.k8s.admission import AdmissionController
from hub_ext.adapters.k8s.usage import CONFIGMAP, ConfigMapUsageStore
from hub_ext.core.admission.usage import UsageRecord
from hub_ext.devcluster.cluster import DevCluster

NOW = datetime.now(UTC).replace(microsecond=0)


async def eventually_records(store: ConfigMapUsageStore) -> tuple[UsageRecord, ...]:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        records = await store.load()
        if records or asyncio.get_running_loop().time() > deadline:
            return records
        await asyncio.sleep(0.2)


async def test_a_finished_session_survives_pod_deletion_and_a_new_controller(
    tmp_path: Path,
) -> None:
    async with DevCluster(config([1]), tmp_path) as dev, client(dev) as api:
        core = CoreV1Api(api)
        store = ConfigMapUsageStore(core, "default")
        assert await store.load() == ()  # no ConfigMap yet
        controller = AdmissionController(api, "default", usage=store)
        await controller.start()
        try:
            await core.create_namespaced_pod("default", gated_pod(1, NOW))
            for _ in range(100):  # admitted and holding its slice on the node
                await settle(controller, 1)
                if controller.overview().holder("s001") is not None:
                    break
            else:
                raise AssertionError("the pod was never seen running")
            await core.delete_namespaced_pod("jupyter-s001", "default", grace_period_seconds=0)
            records = await eventually_records(store)
        finally:
            await controller.stop()
        assert [(r.user, r.course, r.slice_type) for r in records] == [
            ("s001", "ml-101", "1g.10gb")
        ]
        assert records[0].end >= records[0].start
        assert (await core.read_namespaced_config_map(CONFIGMAP, "default")).metadata.labels == {
            "app.kubernetes.io/managed-by": "labhub"
        }
        restarted = AdmissionController(api, "default", usage=ConfigMapUsageStore(core, "default"))
        await restarted.start()
        try:
            assert restarted.usage.records == records
        finally:
            await restarted.stop()


async def test_unreadable_records_start_empty_and_are_replaced(tmp_path: Path) -> None:
    async with DevCluster(config([1]), tmp_path) as dev, client(dev) as api:
        core = CoreV1Api(api)
        body = {"metadata": {"name": CONFIGMAP}, "data": {"records.json": "{not json"}}
        await core.create_namespaced_config_map("default", body)
        store = ConfigMapUsageStore(core, "default")
        assert await store.load() == ()
        start = NOW - timedelta(hours=1)
        record = UsageRecord("s9", "ml-101", "1g.10gb", start, NOW)  # type: ignore[arg-type]
        await store.save((record,))
        assert await store.load() == (record,)
