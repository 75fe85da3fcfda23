"""Off-site backups of per-claim homes through VolumeSnapshots.

Where every home is its own volume (Ceph RBD claims, one per student) there is no shared
directory to read. ``labhub-backup run --from-snapshots`` then backs up each home claim in turn:

1. it takes the claim's VolumeSnapshot of the day (``<claim>-YYYYMMDD``, the one the snapshot
   step of the same job took, or a new one) and waits until it is ``readyToUse``;
2. it creates a temporary claim from it (``spec.dataSource`` kind VolumeSnapshot);
3. it runs a short-lived pod from the worker template (the hub image running ``labhub-backup
   backup-home``, restricted security, no service account token) that mounts the temporary claim
   read-only at ``/homes/<claim>`` and backs it up with restic, with the snapshot's time;
4. it deletes the pod and the temporary claim, whatever happened.

The snapshot is kept for the snapshot retention of the job. A file written to the home after the
snapshot is not in that backup. Each home's failure is reported with the student's name and
what to do; the run goes on with the next home and fails at the end.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.adapters.k8s.informer import read_json
from hub_ext.core.k8s_names import ANNOTATION_SOURCE_PVC, LABEL_MANAGED_BY, LABEL_PART_OF
from hub_ext.core.offsite import OffsiteError, home_names, parse_backup_output
from hub_ext.core.retention import RetentionPolicy
from hub_ext.services.backup import (
    GROUP,
    MANAGED_BY,
    PLURAL,
    TAKEN_AT,
    VERSION,
    BackupConfig,
    list_home_claims,
    volume_snapshot_manifest,
)
from hub_ext.services.offsite import HomeResult

Obj = dict[str, Any]
WORKER_CONTAINER = "backup"
MOUNT_ROOT = "/homes"


@dataclass(frozen=True)
class SnapshotHomesConfig:
    """Which claims to back up and how the worker pods look."""

    namespace: str
    worker_template: Obj
    selector: str = "component=singleuser-storage"
    name_pattern: str = "*"
    home_prefix: str = "claim-"
    snapshot_class: str | None = None
    timeout_seconds: float = 1800.0
    poll_seconds: float = 1.0


def temporary_claim_manifest(claim: Obj, snapshot: Obj, name: str) -> Obj:
    """The claim made from ``snapshot`` of the home claim ``claim``, for one backup."""
    spec = claim.get("spec") or {}
    requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    size = (snapshot.get("status") or {}).get("restoreSize") or requested or "1Gi"
    body: Obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_PART_OF: "labhub"},
            "annotations": {ANNOTATION_SOURCE_PVC: claim["metadata"]["name"]},
        },
        "spec": {
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            "dataSource": {
                "apiGroup": GROUP,
                "kind": "VolumeSnapshot",
                "name": snapshot["metadata"]["name"],
            },
        },
    }
    if spec.get("storageClassName"):
        body["spec"]["storageClassName"] = spec["storageClassName"]
    return body


def worker_pod_manifest(
    template: Obj, name: str, student: str, claim: str, temporary: str, at: datetime
) -> Obj:
    """The pod that backs up one temporary claim: the template, the claim mounted read-only at
    ``/homes/<claim>`` and ``labhub-backup backup-home`` as the command."""
    pod = copy.deepcopy(template)
    meta = pod.setdefault("metadata", {})
    meta["name"] = name
    meta.setdefault("labels", {})[LABEL_MANAGED_BY] = MANAGED_BY
    spec = pod.setdefault("spec", {})
    spec["restartPolicy"] = "Never"
    spec.setdefault("automountServiceAccountToken", False)
    containers = [c for c in spec.get("containers") or [] if c.get("name") == WORKER_CONTAINER]
    if not containers:
        raise OffsiteError(
            f"the worker template has no container named {WORKER_CONTAINER!r}; check the "
            "chart's backup worker ConfigMap (--worker-template)"
        )
    container = containers[0]
    path = f"{MOUNT_ROOT}/{claim}"
    extra = [str(a) for a in container.get("args") or []]
    container["args"] = ["backup-home", student, f"--path={path}", f"--at={at.isoformat()}", *extra]
    mounts = container.setdefault("volumeMounts", [])
    mounts.append({"name": "home", "mountPath": path, "readOnly": True})
    volume = {"name": "home", "persistentVolumeClaim": {"claimName": temporary, "readOnly": True}}
    spec.setdefault("volumes", []).append(volume)
    return pod


def _pending_reason(pod: Any) -> str:
    """Why a pod is not done yet, in the words of its conditions and container states."""
    status = pod.status
    said = [f"phase {status.phase if status else None}"]
    for condition in (status.conditions if status else None) or []:
        if condition.status != "True" and condition.message:
            said.append(f"{condition.type}: {condition.message}")
    for container in (status.container_statuses if status else None) or []:
        waiting = container.state.waiting if container.state else None
        if waiting is not None and waiting.reason:
            said.append(f"{container.name}: {waiting.reason} {waiting.message or ''}".strip())
    return "; ".join(said)


def _reason(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return str(exc) or type(exc).__name__


class _Homes:
    def __init__(self, api: client.ApiClient, cfg: SnapshotHomesConfig) -> None:
        self.cfg = cfg
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    async def _wait(self, what: str, probe: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.cfg.timeout_seconds
        while True:
            found, problem = await probe()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise OffsiteError(
                    f"{what} did not finish within {self.cfg.timeout_seconds:g} s"
                    + (f" ({problem})" if problem else "")
                )
            await asyncio.sleep(self.cfg.poll_seconds)

    async def snapshot(self, claim: str, now: datetime) -> Obj:
        """Today's snapshot of ``claim`` (taken now unless it exists), once ready to use."""
        policy = RetentionPolicy(keep_daily=1, keep_weekly=0)
        backup_cfg = BackupConfig(
            self.cfg.namespace, policy, snapshot_class=self.cfg.snapshot_class
        )
        body = volume_snapshot_manifest(claim, backup_cfg, now)
        name = body["metadata"]["name"]
        try:
            await self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.cfg.namespace, PLURAL, body
            )
        except ApiException as exc:
            if exc.status != 409:
                raise

        async def ready() -> tuple[Obj | None, str]:
            found = await self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.cfg.namespace, PLURAL, name
            )
            status = found.get("status") or {}
            if status.get("readyToUse") is True:
                return found, ""
            return None, str((status.get("error") or {}).get("message") or "")

        result: Obj = await self._wait(
            f"the VolumeSnapshot {name} (check the CSI snapshotter and the snapshot class)", ready
        )
        return result

    async def run_worker(self, pod: Obj) -> tuple[str, str]:
        """Run the worker pod to its end; its phase and its log."""
        name = pod["metadata"]["name"]
        ns = self.cfg.namespace
        await self._delete_pod(name)
        await self.core.create_namespaced_pod(ns, pod)

        async def finished() -> tuple[str | None, str]:
            found = await self.core.read_namespaced_pod(name, ns)
            phase = found.status.phase if found.status else None
            if phase in ("Succeeded", "Failed"):
                return phase, ""
            return None, _pending_reason(found)

        phase: str = await self._wait(f"the backup pod {name}", finished)
        # raw text: the client would parse a log that happens to be one JSON line
        resp = await self.core.read_namespaced_pod_log(
            name, ns, container=WORKER_CONTAINER, _preload_content=False
        )
        return phase, (await resp.read()).decode(errors="replace")

    async def _delete_pod(self, name: str) -> None:
        try:
            await self.core.delete_namespaced_pod(name, self.cfg.namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return
        for _ in range(600):
            try:
                await self.core.read_namespaced_pod(name, self.cfg.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            await asyncio.sleep(self.cfg.poll_seconds / 4)

    async def delete_claim(self, name: str) -> None:
        try:
            await self.core.delete_namespaced_persistent_volume_claim(name, self.cfg.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def back_up(self, claim_name: str, student: str, now: datetime) -> HomeResult:
        claim_obj = await read_json(
            await self.core.read_namespaced_persistent_volume_claim(
                claim_name, self.cfg.namespace, _preload_content=False
            )
        )
        snap = await self.snapshot(claim_name, now)
        taken = (snap["metadata"].get("annotations") or {}).get(TAKEN_AT)
        at = datetime.fromisoformat(taken) if taken else now
        temporary = f"{snap['metadata']['name']}-backup"
        body = temporary_claim_manifest(claim_obj, snap, temporary)
        try:
            try:
                await self.core.create_namespaced_persistent_volume_claim(self.cfg.namespace, body)
            except ApiException as exc:
                if exc.status != 409:  # left by an interrupted run: same snapshot, reuse it
                    raise
            pod = worker_pod_manifest(
                self.cfg.worker_template, temporary, student, claim_name, temporary, at
            )
            try:
                phase, log = await self.run_worker(pod)
            finally:
                await self._delete_pod(temporary)
        finally:
            await self.delete_claim(temporary)
        lines = [line for line in log.splitlines() if line.strip()]
        said = lines[-1].removeprefix("labhub-backup: ") if lines else "no output"
        if phase != "Succeeded":
            return HomeResult(student, None, f"the backup pod {temporary} failed: {said}")
        try:
            return HomeResult(student, parse_backup_output(log))
        except OffsiteError:
            return HomeResult(
                student, None, f"the backup pod {temporary} printed no restic summary: {said!r}"
            )


async def back_up_homes(
    api: client.ApiClient, cfg: SnapshotHomesConfig, now: datetime
) -> list[HomeResult]:
    """Back up every home claim through a snapshot; one result per student."""
    homes = _Homes(api, cfg)
    listing = BackupConfig(
        cfg.namespace, RetentionPolicy(1, 0), selector=cfg.selector, name_pattern=cfg.name_pattern
    )
    claims = home_names(await list_home_claims(homes.core, listing), cfg.home_prefix)
    results: list[HomeResult] = []
    for claim, student in claims.items():
        try:
            results.append(await homes.back_up(claim, student, now))
        except (ApiException, aiohttp.ClientError, OSError, OffsiteError, ValueError) as exc:
            results.append(HomeResult(student, None, f"claim {claim}: {_reason(exc)}"))
    return results
