"""The backup job against the emulated cluster's VolumeSnapshot API (devcluster ApiServer)."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from k8s_schemas import errors
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.core.retention import RetentionPolicy
from hub_ext.devcluster.apiserver.server import ApiServer
from hub_ext.services.backup import (
    GROUP,
    MANAGED_SELECTOR,
    PLURAL,
    VERSION,
    BackupConfig,
    run_backup,
)

NAMESPACE = "labhub"
HOME_LABELS = {"component": "singleuser-storage"}


async def _api_client(kubeconfig: Path) -> client.ApiClient:
    configuration = client.Configuration()
    await config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


async def _claim(core: client.CoreV1Api, name: str, labels: dict[str, str]) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "250Gi"}},
            "storageClassName": "ceph-rbd",
        },
    }
    await core.create_namespaced_persistent_volume_claim(NAMESPACE, body)


async def _snapshots(custom: client.CustomObjectsApi) -> list[dict[str, Any]]:
    listing = await custom.list_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, label_selector=MANAGED_SELECTOR
    )
    return listing["items"]


async def _mark_ready(custom: client.CustomObjectsApi) -> None:
    """Do what the CSI snapshot controller does once a snapshot is cut: set readyToUse."""
    for item in await _snapshots(custom):
        if (item.get("status") or {}).get("readyToUse"):
            continue
        item["status"] = {"readyToUse": True, "restoreSize": "250Gi"}
        await custom.replace_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, item["metadata"]["name"], item
        )


async def test_daily_snapshots_with_retention(tmp_path: Path) -> None:
    server = ApiServer(state_dir=tmp_path / "state")
    await server.start()
    try:
        kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE)
        api = await _api_client(kubeconfig)
        async with api:
            core = client.CoreV1Api(api)
            custom = client.CustomObjectsApi(api)
            try:
                await core.create_namespace({"metadata": {"name": NAMESPACE}})
            except ApiException as exc:
                assert exc.status == 409
            await _claim(core, "claim-alice", HOME_LABELS)
            await _claim(core, "claim-bob", HOME_LABELS)
            await _claim(core, "hub-db", HOME_LABELS)  # labelled, but not a home name
            await _claim(core, "claim-mallory", {"component": "other"})  # a home name, not ours
            cfg = BackupConfig(
                namespace=NAMESPACE,
                policy=RetentionPolicy(keep_daily=3, keep_weekly=2),
                selector="component=singleuser-storage",
                name_pattern="claim-*",
                snapshot_class="ceph-rbd-snapshots",
            )
            start = datetime(2026, 1, 1, 1, 30, tzinfo=UTC)  # a Thursday
            for day in range(21):
                report = await run_backup(api, cfg, start + timedelta(days=day))
                assert report.ok, report.errors
                stamp = f"{start + timedelta(days=day):%Y%m%d}"
                assert report.created == [f"claim-alice-{stamp}", f"claim-bob-{stamp}"]
                await _mark_ready(custom)

            names = sorted(i["metadata"]["name"] for i in await _snapshots(custom))
            # Last 3 days (19-21 Jan) plus the newest of the last 2 ISO weeks (week 3 ends 18 Jan).
            expected_days = ["20260118", "20260119", "20260120", "20260121"]
            assert names == sorted(
                f"{v}-{d}" for v in ("claim-alice", "claim-bob") for d in expected_days
            )
            items = await _snapshots(custom)
            for item in items:
                assert item["spec"]["volumeSnapshotClassName"] == "ceph-rbd-snapshots"
                manifest = {k: item[k] for k in ("apiVersion", "kind", "spec")}
                manifest["metadata"] = {
                    k: item["metadata"][k] for k in ("name", "namespace", "labels", "annotations")
                }
                assert errors(manifest, "1.35") == []

            # A second run on the same day finds today's snapshots and deletes nothing.
            again = await run_backup(api, cfg, start + timedelta(days=20, hours=5))
            assert again.created == [] and again.deleted == []
            assert again.existing == ["claim-alice-20260121", "claim-bob-20260121"]

            # One failing create is reported; the other claim is still snapshotted.
            server.faults.inject_error("create", "volumesnapshots", 500, times=1)
            faulty = await run_backup(api, cfg, start + timedelta(days=21))
            server.faults.clear()
            assert len(faulty.errors) == 1 and "HTTP 500" in faulty.errors[0]
            assert len(faulty.created) == 1

            # The job survives an API server restart (state kept) and goes on the next day.
            await server.restart()
            later = await run_backup(api, cfg, start + timedelta(days=22))
            assert later.ok
            assert "claim-alice-20260123" in later.created

            # The command line, as the CronJob runs it, in dry-run mode.
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "hub_ext.services.backup",
                "--namespace",
                NAMESPACE,
                "--kubeconfig",
                str(kubeconfig),
                "--name-pattern",
                "claim-*",
                "--dry-run",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
            assert process.returncode == 0, err.decode()
            assert re.search(r"would create claim-alice-\d{8}", out.decode())
            assert "claim-mallory" not in out.decode()
    finally:
        await server.stop()
