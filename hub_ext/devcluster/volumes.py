"""A volume provisioner: binds pending PersistentVolumeClaims to new PersistentVolumes.

Each claim gets a PersistentVolume backed by the host directory
``<state_dir>/volumes/<namespace>/<claim>`` (the kubelet mounts the same directory), with the
requested capacity, so that clients that wait for ``Bound`` claims see them bound. Deleting the
claim deletes the PersistentVolume object but keeps the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.informer import Informer, api_client, key_of, request

log = logging.getLogger(__name__)
Obj = dict[str, Any]
MERGE = "application/merge-patch+json"


class VolumeProvisioner:
    """Provisions and binds claims as they appear."""

    def __init__(self, api_url: str, volumes_root: Path) -> None:
        self.volumes_root = volumes_root
        self._client = api_client(api_url, "volumes")
        self._core = CoreV1Api(self._client)
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
