"""A volume provisioner: binds pending PersistentVolumeClaims to new PersistentVolumes.

Each claim gets a PersistentVolume backed by the host directory
``<state_dir>/volumes/<namespace>/<claim>`` (the kubelet mounts the same directory), with the
requested capacity, so that clients that wait for ``Bound`` claims see them bound. Deleting the
claim deletes the PersistentVolume object but keeps the directory.

A claim whose ``spec.dataSource`` (or ``dataSourceRef``) is a ``snapshot.storage.k8s.io``
VolumeSnapshot starts as a copy of that snapshot
(:mod:`hub_ext.devcluster.controllers.snapshots`); it stays ``Pending`` until the snapshot is
ready, with a ``ProvisioningFailed`` event while the snapshot is missing or not ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.controllers.snapshots import GROUP, VERSION, copy_tree, snapshot_copy
from hub_ext.devcluster.informer import Informer, api_client, key_of, request

log = logging.getLogger(__name__)
Obj = dict[str, Any]
MERGE = "application/merge-patch+json"


class VolumeProvisioner:
    """Provisions and binds claims as they appear."""

    def __init__(
        self, api_url: str, volumes_root: Path, snapshots_root: Path | None = None
    ) -> None:
        self.volumes_root = volumes_root
        self.snapshots_root = snapshots_root or volumes_root.parent / "snapshots"
        self._client = api_client(api_url, "volumes")
        self._core = CoreV1Api(self._client)
        self._custom = CustomObjectsApi(self._client)
        self._informer = Informer(
            self._core.list_persistent_volume_claim_for_all_namespaces, self._on_claim, "pvcs"
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy: set[tuple[str, str]] = set()

    async def start(self) -> None:
        self._informer.start()

    async def stop(self) -> None:
        await self._informer.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.close()

    def _on_claim(self, kind: str, claim: Obj) -> None:
        if kind == "DELETED":
            volume = (claim.get("spec") or {}).get("volumeName")
            if volume:
                self._spawn(self._release(str(volume)))
            return
        if (claim.get("status") or {}).get("phase") == "Bound":
            return
        if (claim.get("metadata") or {}).get("deletionTimestamp") or key_of(claim) in self._busy:
            return
        self._busy.add(key_of(claim))
        self._spawn(self._bind(claim))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _release(self, volume: str) -> None:
        """The claim is gone: remove its PersistentVolume object. The directory is kept (the
        emulator never deletes student data; remove ``<state_dir>/volumes`` to forget it)."""
        with contextlib.suppress(ApiException, aiohttp.ClientError, OSError):
            await request(self._core.delete_persistent_volume(volume, _preload_content=False))

    async def _bind(self, claim: Obj) -> None:
        namespace, name = key_of(claim)
        spec = claim.get("spec") or {}
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        volume_name = f"pvc-{(claim.get('metadata') or {}).get('uid', name)}"
        path = self.volumes_root / namespace / name
        source = spec.get("dataSourceRef") or spec.get("dataSource") or {}
        from_snapshot = source.get("kind") == "VolumeSnapshot" and source.get("apiGroup") == GROUP
        filled = True
        if from_snapshot and not path.exists():
            try:
                filled = await self._fill_from_snapshot(claim, source, path)
            except (ApiException, aiohttp.ClientError, OSError) as exc:
                log.debug("claim %s/%s: copying the snapshot failed: %r", namespace, name, exc)
                filled = False
        if not filled:
            self._busy.discard((namespace, name))
            return
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume_name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": spec.get("storageClassName") or "",
                "hostPath": {"path": str(path)},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": namespace,
                    "name": name,
                    "uid": (claim.get("metadata") or {}).get("uid"),
                },
            },
        }
        try:
            with contextlib.suppress(ApiException):
                await request(self._core.create_persistent_volume(pv, _preload_content=False))
            await request(
                self._core.patch_persistent_volume_status(
                    volume_name,
                    {"status": {"phase": "Bound"}},
                    _content_type=MERGE,
                    _preload_content=False,
                )
            )
            await request(
                self._core.patch_namespaced_persistent_volume_claim(
                    name,
                    namespace,
                    {"spec": {"volumeName": volume_name}},
                    _content_type=MERGE,
                    _preload_content=False,
                )
            )
            status = {
                "phase": "Bound",
                "accessModes": pv["spec"]["accessModes"],
                "capacity": {"storage": size},
            }
            await request(
                self._core.patch_namespaced_persistent_volume_claim_status(
                    name, namespace, {"status": status}, _content_type=MERGE, _preload_content=False
                )
            )
        except (ApiException, aiohttp.ClientError, OSError) as exc:
            log.debug("binding claim %s/%s failed: %r", namespace, name, exc)
        finally:
            self._busy.discard((namespace, name))

    async def _fill_from_snapshot(self, claim: Obj, source: Obj, path: Path) -> bool:
        """Copy the snapshot into the claim's directory; False while it cannot be copied yet
        (the claim is looked at again after a second)."""
        namespace, name = key_of(claim)
        snapshot_name = str(source.get("name") or "")
        message = ""
        for _ in range(120):
            snapshot: Obj | None = None
            with contextlib.suppress(ApiException):
                snapshot = await request(
                    self._custom.get_namespaced_custom_object(
                        GROUP, VERSION, namespace, "volumesnapshots", snapshot_name,
                        _preload_content=False,
                    )
                )  # fmt: skip
            status = (snapshot or {}).get("status") or {}
            content_name = status.get("boundVolumeSnapshotContentName")
            copy: Path | None = None
            if content_name and status.get("readyToUse") is True:
                with contextlib.suppress(ApiException):
                    content = await request(self._custom.get_cluster_custom_object(
                        GROUP, VERSION, "volumesnapshotcontents", content_name,
                        _preload_content=False,
                    ))  # fmt: skip
                    copy = snapshot_copy(self.snapshots_root, content)
            if copy is not None:
                await asyncio.to_thread(copy_tree, copy, path)
                return True
            new = (
                f'snapshot "{snapshot_name}" not found'
                if snapshot is None
                else f'snapshot "{snapshot_name}" is not ready to use yet'
            )
            if new != message:
                message = new
                await self._event(claim, f"failed to provision volume from {message}")
            await asyncio.sleep(1.0)
        log.debug("claim %s/%s: gave up waiting for snapshot %s", namespace, name, snapshot_name)
        return False

    async def _event(self, claim: Obj, message: str) -> None:
        namespace, name = key_of(claim)
        meta = claim.get("metadata") or {}
        body = {
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "kind": "PersistentVolumeClaim", "namespace": namespace, "name": name,
                "uid": meta.get("uid"), "apiVersion": "v1",
            },
            "reason": "ProvisioningFailed", "message": message, "type": "Warning",
            "source": {"component": "persistentvolume-controller"},
        }  # fmt: skip
        with contextlib.suppress(ApiException, aiohttp.ClientError, OSError):
            await request(
                self._core.create_namespaced_event(namespace, body, _preload_content=False)
            )
