"""VolumeSnapshots on the development cluster: a snapshot is a copy of the claim's directory at
the time it is cut, and a claim with a VolumeSnapshot dataSource starts as that copy."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes_asyncio.client import CustomObjectsApi
from workload_testing import Lab, lab

from hub_ext.devcluster.informer import request

__all__ = ["lab"]
pytestmark = pytest.mark.slow
T = TypeVar("T")
GROUP, VERSION = "snapshot.storage.k8s.io", "v1"


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    for _ in range(240):
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def claim(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "10Gi"}},
            **spec,
        },
    }


async def bound(lab: Lab, name: str) -> dict[str, Any] | None:
    found = await request(
        lab.core.read_namespaced_persistent_volume_claim(name, "default", _preload_content=False)
    )
    return found if (found.get("status") or {}).get("phase") == "Bound" else None


async def test_a_snapshot_copies_the_claim_and_a_claim_restores_from_it(lab: Lab) -> None:
    custom = CustomObjectsApi(lab.client)
    await request(lab.core.create_namespaced_persistent_volume_claim(
        "default", claim("claim-alice"), _preload_content=False
    ))  # fmt: skip
    await eventually(lambda: bound(lab, "claim-alice"), "claim-alice to be bound")
    home = lab.cluster.state_dir / "volumes" / "default" / "claim-alice"
    (home / "notes").mkdir()
    (home / "notes" / "week1.txt").write_text("before the snapshot\n")
    snapshot = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VolumeSnapshot",
        "metadata": {"name": "claim-alice-20261204"},
        "spec": {"source": {"persistentVolumeClaimName": "claim-alice"}},
    }
    await custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", "volumesnapshots", snapshot
    )

    async def ready() -> dict[str, Any] | None:
        found = await custom.get_namespaced_custom_object(
            GROUP, VERSION, "default", "volumesnapshots", "claim-alice-20261204"
        )
        return found if (found.get("status") or {}).get("readyToUse") is True else None

    cut = await eventually(ready, "the snapshot to be ready")
    assert cut["status"]["restoreSize"] == "10Gi"
    content = await custom.get_cluster_custom_object(
        GROUP, VERSION, "volumesnapshotcontents", cut["status"]["boundVolumeSnapshotContentName"]
    )
    assert content["spec"]["volumeSnapshotRef"]["name"] == "claim-alice-20261204"
    assert content["status"]["readyToUse"] is True
    (home / "notes" / "week2.txt").write_text("after the snapshot\n")

    source = {"apiGroup": GROUP, "kind": "VolumeSnapshot", "name": "claim-alice-20261204"}
    await request(lab.core.create_namespaced_persistent_volume_claim(
        "default", claim("alice-restored", dataSource=source), _preload_content=False
    ))  # fmt: skip
    await eventually(lambda: bound(lab, "alice-restored"), "the restored claim to be bound")
    restored = lab.cluster.state_dir / "volumes" / "default" / "alice-restored"
    assert (restored / "notes" / "week1.txt").read_text() == "before the snapshot\n"
    assert not (restored / "notes" / "week2.txt").exists()

    await custom.delete_namespaced_custom_object(
        GROUP, VERSION, "default", "volumesnapshots", "claim-alice-20261204"
    )
    copy = content["status"]["snapshotHandle"]

    async def gone() -> bool | None:
        listing = await custom.list_cluster_custom_object(GROUP, VERSION, "volumesnapshotcontents")
        return True if not listing["items"] and not Path(copy).exists() else None

    await eventually(gone, "the content and its copy to be deleted")


async def test_a_claim_from_a_missing_snapshot_stays_pending_with_an_event(lab: Lab) -> None:
    source = {"apiGroup": GROUP, "kind": "VolumeSnapshot", "name": "no-such-snapshot"}
    await request(lab.core.create_namespaced_persistent_volume_claim(
        "default", claim("orphan", dataSource=source), _preload_content=False
    ))  # fmt: skip

    async def event() -> str | None:
        events = await request(lab.core.list_namespaced_event("default", _preload_content=False))
        messages = [e["message"] for e in events["items"] if e["reason"] == "ProvisioningFailed"]
        return messages[0] if messages else None

    message = await eventually(event, "a ProvisioningFailed event")
    assert message == 'failed to provision volume from snapshot "no-such-snapshot" not found'
    found = await request(
        lab.core.read_namespaced_persistent_volume_claim(
            "orphan", "default", _preload_content=False
        )
    )
    assert (found.get("status") or {}).get("phase") != "Bound"
