"""A snapshot controller: cuts VolumeSnapshots as copies of the claim's directory.

When a ``snapshot.storage.k8s.io/v1`` VolumeSnapshot of a bound claim appears, the controller
copies the claim's host directory (``<state_dir>/volumes/<namespace>/<claim>``) to
``<state_dir>/snapshots/<content>``, creates the cluster-scoped VolumeSnapshotContent bound to
it (``status.snapshotHandle`` is the copy) and sets the snapshot's status as the CSI snapshotter
does: ``boundVolumeSnapshotContentName``, ``creationTime``, ``restoreSize`` (the claim's
capacity) and ``readyToUse: true``. Files written to the claim afterwards are not in the
snapshot. A snapshot whose claim is missing or not bound gets ``status.error`` with a message
and is retried while it exists. Deleting the snapshot deletes its content and its copy
(``deletionPolicy: Delete``). The volume provisioner
(:mod:`hub_ext.devcluster.controllers.volumes`) fills a claim whose ``dataSource`` is a
VolumeSnapshot from the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.informer import Informer, api_client, key_of, request

log = logging.getLogger(__name__)
Obj = dict[str, Any]
GROUP, VERSION = "snapshot.storage.k8s.io", "v1"
MERGE = "application/merge-patch+json"
DRIVER = "devcluster.labhub.io"
RETRY_SECONDS = 1.0


def content_name(snapshot: Obj) -> str:
    """``snapcontent-<snapshot uid>``, as the CSI snapshot controller names it."""
    return f"snapcontent-{(snapshot.get('metadata') or {}).get('uid', '')}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SnapshotController:
    """Cuts snapshots as they appear and removes their copies when they go."""

    def __init__(self, api_url: str, volumes_root: Path, snapshots_root: Path) -> None:
        self.volumes_root = volumes_root
        self.snapshots_root = snapshots_root
        self._client = api_client(api_url, "volumes")
        self._core = CoreV1Api(self._client)
        self._custom = CustomObjectsApi(self._client)
        listing = functools.partial(
            self._custom.list_cluster_custom_object, GROUP, VERSION, "volumesnapshots"
        )
        self._informer = Informer(listing, self._on_snapshot, "volumesnapshots")
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

    def _on_snapshot(self, kind: str, snapshot: Obj) -> None:
        if kind == "DELETED":
            self._spawn(self._remove(content_name(snapshot)))
            return
        if (snapshot.get("status") or {}).get("readyToUse") is True:
            return
        if (snapshot.get("metadata") or {}).get("deletionTimestamp"):
            return
        if key_of(snapshot) in self._busy:
            return
        self._busy.add(key_of(snapshot))
        self._spawn(self._cut(snapshot))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cut(self, snapshot: Obj) -> None:
        namespace, name = key_of(snapshot)
        try:
            while True:
                error = await self._try_cut(snapshot)
                if error is None:
                    return
                await self._patch_status(namespace, name, {"readyToUse": False, "error": error})
                await asyncio.sleep(RETRY_SECONDS)
                try:
                    snapshot = await request(
                        self._custom.get_namespaced_custom_object(
                            GROUP, VERSION, namespace, "volumesnapshots", name,
                            _preload_content=False,
                        )
                    )  # fmt: skip
                except ApiException as exc:
                    if exc.status == 404:
                        return
                    raise
        except (ApiException, aiohttp.ClientError, OSError) as exc:
            log.debug("cutting snapshot %s/%s failed: %r", namespace, name, exc)
        finally:
            self._busy.discard((namespace, name))

    async def _try_cut(self, snapshot: Obj) -> Obj | None:
        """Cut the snapshot; the status error to report when it cannot be cut yet."""
        namespace, name = key_of(snapshot)
        spec = snapshot.get("spec") or {}
        claim_name = (spec.get("source") or {}).get("persistentVolumeClaimName")
        if not claim_name:
            return _error("spec.source.persistentVolumeClaimName is required (pre-provisioned "
                          "snapshots from volumeSnapshotContentName are not emulated)")  # fmt: skip
        try:
            claim = await request(
                self._core.read_namespaced_persistent_volume_claim(
                    claim_name, namespace, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            return _error(f'failed to get input parameters to create snapshot {name}: "the '
                          f'PersistentVolumeClaim {claim_name} not found"')  # fmt: skip
        status = claim.get("status") or {}
        if status.get("phase") != "Bound":
            return _error(f"the source claim {claim_name} is not bound yet")
        content = content_name(snapshot)
        copy = self.snapshots_root / content
        source = self.volumes_root / namespace / claim_name
        if not copy.exists():
            await asyncio.to_thread(copy_tree, source, copy)
        size = (status.get("capacity") or {}).get("storage") or "0"
        created = _now()
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "VolumeSnapshotContent",
            "metadata": {"name": content},
            "spec": {
                "deletionPolicy": "Delete",
                "driver": DRIVER,
                "source": {"volumeHandle": str((claim.get("spec") or {}).get("volumeName"))},
                "volumeSnapshotRef": {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "VolumeSnapshot",
                    "name": name,
                    "namespace": namespace,
                    "uid": (snapshot.get("metadata") or {}).get("uid"),
                },
                **(
                    {"volumeSnapshotClassName": spec["volumeSnapshotClassName"]}
                    if spec.get("volumeSnapshotClassName")
                    else {}
                ),
            },
        }
        with contextlib.suppress(ApiException):
            await request(self._custom.create_cluster_custom_object(
                GROUP, VERSION, "volumesnapshotcontents", body, _preload_content=False
            ))  # fmt: skip
        await request(self._custom.patch_cluster_custom_object_status(
            GROUP, VERSION, "volumesnapshotcontents", content,
            {"status": {"readyToUse": True, "snapshotHandle": str(copy),
                        "restoreSize": _bytes(copy), "creationTime": _nanos()}},
            _content_type=MERGE, _preload_content=False,
        ))  # fmt: skip
        await self._patch_status(namespace, name, {
            "boundVolumeSnapshotContentName": content, "creationTime": created,
            "readyToUse": True, "restoreSize": size, "error": None,
        })  # fmt: skip
        return None

    async def _patch_status(self, namespace: str, name: str, status: Obj) -> None:
        await request(self._custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, "volumesnapshots", name, {"status": status},
            _content_type=MERGE, _preload_content=False,
        ))  # fmt: skip

    async def _remove(self, content: str) -> None:
        with contextlib.suppress(ApiException, aiohttp.ClientError, OSError):
            await request(self._custom.delete_cluster_custom_object(
                GROUP, VERSION, "volumesnapshotcontents", content, _preload_content=False
            ))  # fmt: skip
        await asyncio.to_thread(shutil.rmtree, self.snapshots_root / content, True)


def _error(message: str) -> Obj:
    return {"message": message, "time": _now()}


def _nanos() -> int:
    return int(datetime.now(UTC).timestamp() * 1e9)


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def copy_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` whole or not at all (a half copy is never visible)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    if source.is_dir():
        shutil.copytree(source, partial, symlinks=True)
    else:
        partial.mkdir(mode=0o700)
    partial.rename(target)


def snapshot_copy(snapshots_root: Path, content: Obj) -> Path | None:
    """The copy a ready VolumeSnapshotContent stands for (None when it is not ready)."""
    status = content.get("status") or {}
    handle = status.get("snapshotHandle")
    if status.get("readyToUse") is not True or not handle:
        return None
    path = Path(str(handle))
    return path if path.parent == snapshots_root and path.is_dir() else None
