"""Daily CSI VolumeSnapshots of the users' home volumes, with retention.

Run by the chart's backup CronJob as ``python -m hub_ext.services.backup`` (or ``labhub-backup``).
One run lists the home volume claims (label selector and name pattern), creates one
VolumeSnapshot per claim named ``<claim>-YYYYMMDD`` (a second run on the same day finds it and
moves on), then deletes the snapshots that the retention rule in
:mod:`hub_ext.core.retention` no longer keeps. Only snapshots this job created (label
``app.kubernetes.io/managed-by=labhub-backup``) are ever deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.core.k8s_names import (
    ANNOTATION_SOURCE_PVC,
    ANNOTATION_TAKEN_AT,
    LABEL_MANAGED_BY,
    LABEL_PART_OF,
)
from hub_ext.core.retention import (
    RetentionPolicy,
    Snapshot,
    SnapshotName,
    VolumeName,
    plan_retention,
    snapshot_name,
)
from hub_ext.services import offsite_cli

log = logging.getLogger("labhub.backup")

GROUP = "snapshot.storage.k8s.io"
VERSION = "v1"
PLURAL = "volumesnapshots"
MANAGED_BY = "labhub-backup"
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
TAKEN_AT = ANNOTATION_TAKEN_AT
SOURCE_PVC = ANNOTATION_SOURCE_PVC


@dataclass(frozen=True)
class BackupConfig:
    """What one backup run does."""

    namespace: str
    policy: RetentionPolicy
    selector: str = "component=singleuser-storage"
    name_pattern: str = "*"
    snapshot_class: str | None = None
    dry_run: bool = False


@dataclass
class BackupReport:
    """What one backup run did."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def volume_snapshot_manifest(pvc: str, cfg: BackupConfig, now: datetime) -> dict[str, Any]:
    """The VolumeSnapshot object taken of ``pvc`` on ``now``'s date."""
    spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": pvc}}
    if cfg.snapshot_class:
        spec["volumeSnapshotClassName"] = cfg.snapshot_class
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": snapshot_name(VolumeName(pvc), now),
            "namespace": cfg.namespace,
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_PART_OF: "labhub",
            },
            "annotations": {TAKEN_AT: now.isoformat(), SOURCE_PVC: pvc},
        },
        "spec": spec,
    }


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def snapshot_from_object(obj: dict[str, Any]) -> Snapshot | None:
    """The retention view of a VolumeSnapshot object (None when it has no usable date)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    source = ((obj.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")
    volume = annotations.get(SOURCE_PVC) or source
    taken_at = _parse_time(annotations.get(TAKEN_AT)) or _parse_time(meta.get("creationTimestamp"))
    if not volume or taken_at is None or not meta.get("name"):
        return None
    status = obj.get("status") or {}
    usable: bool | None
    if status.get("readyToUse") is True:
        usable = True
    elif status.get("error"):
        usable = False
    else:
        usable = None
    return Snapshot(
        name=SnapshotName(meta["name"]),
        volume=VolumeName(volume),
        taken_at=taken_at,
        usable=usable,
    )


async def list_home_claims(core: client.CoreV1Api, cfg: BackupConfig) -> list[str]:
    """Names of the claims to snapshot: matching the label selector and the name pattern."""
    claims = await core.list_namespaced_persistent_volume_claim(
        cfg.namespace, label_selector=cfg.selector or None
    )
    names = [c.metadata.name for c in claims.items if c.metadata.deletion_timestamp is None]
    return sorted(n for n in names if fnmatch.fnmatchcase(n, cfg.name_pattern))


async def run_backup(api: client.ApiClient, cfg: BackupConfig, now: datetime) -> BackupReport:
    """Take today's snapshots and apply retention; errors are collected, not raised."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    report = BackupReport()
    planned: dict[str, str] = {}
    for pvc in await list_home_claims(core, cfg):
        body = volume_snapshot_manifest(pvc, cfg, now)
        name = body["metadata"]["name"]
        planned[name] = pvc
        if cfg.dry_run:
            report.created.append(name)
            continue
        try:
            await custom.create_namespaced_custom_object(
                GROUP, VERSION, cfg.namespace, PLURAL, body
            )
            report.created.append(name)
        except ApiException as exc:
            if exc.status == 409:
                report.existing.append(name)
            else:
                report.errors.append(f"snapshot {name} of {pvc}: HTTP {exc.status} {exc.reason}")
    listing = await custom.list_namespaced_custom_object(
        GROUP, VERSION, cfg.namespace, PLURAL, label_selector=MANAGED_SELECTOR
    )
    snapshots = [s for s in map(snapshot_from_object, listing.get("items", [])) if s is not None]
    if cfg.dry_run:
        known = {s.name for s in snapshots}
        snapshots += [
            Snapshot(SnapshotName(n), VolumeName(planned[n]), now)
            for n in report.created
            if n not in known
        ]
    decision = plan_retention(snapshots, cfg.policy, now)
    report.kept = sorted(decision.keep)
    for name in sorted(decision.delete):
        if cfg.dry_run:
            report.deleted.append(name)
            continue
        try:
            await custom.delete_namespaced_custom_object(
                GROUP, VERSION, cfg.namespace, PLURAL, name
            )
            report.deleted.append(name)
        except ApiException as exc:
            if exc.status == 404:
                report.deleted.append(name)
            else:
                report.errors.append(f"delete snapshot {name}: HTTP {exc.status} {exc.reason}")
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labhub-backup",
        description="Snapshot every LabHub home volume, then keep N daily and M weekly snapshots.",
    )
    parser.add_argument("--namespace", required=True, help="namespace of the home volume claims")
    parser.add_argument("--selector", default="component=singleuser-storage")
    parser.add_argument("--name-pattern", default="*", help="shell pattern of claim names")
    parser.add_argument("--snapshot-class", default=None)
    parser.add_argument("--keep-daily", type=int, default=7)
    parser.add_argument("--keep-weekly", type=int, default=4)
    parser.add_argument("--time-zone", default="Etc/UTC", help="IANA zone for snapshot dates")
    parser.add_argument("--kubeconfig", type=Path, default=None)
    parser.add_argument("--dry-run", action="store_true", help="only print what would be done")
    return parser


async def _main_async(args: argparse.Namespace) -> int:
    try:
        zone = ZoneInfo(args.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        print(
            f"labhub-backup: unknown --time-zone {args.time_zone!r}; use an IANA name such as "
            "Europe/Berlin or Etc/UTC",
            file=sys.stderr,
        )
        return 2
    try:
        policy = RetentionPolicy(keep_daily=args.keep_daily, keep_weekly=args.keep_weekly)
    except ValueError as exc:
        print(f"labhub-backup: {exc}", file=sys.stderr)
        return 2
    cfg = BackupConfig(
        namespace=args.namespace,
        policy=policy,
        selector=args.selector,
        name_pattern=args.name_pattern,
        snapshot_class=args.snapshot_class,
        dry_run=args.dry_run,
    )
    try:
        if args.kubeconfig is not None:
            await config.load_kube_config(config_file=str(args.kubeconfig))
        else:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                await config.load_kube_config()
    except (config.ConfigException, OSError) as exc:
        print(
            f"labhub-backup: no usable Kubernetes credentials ({exc}); run inside the cluster "
            "with the chart's service account or pass --kubeconfig PATH",
            file=sys.stderr,
        )
        return 2
    try:
        async with client.ApiClient() as api:
            report = await run_backup(api, cfg, datetime.now(zone))
    except (ApiException, aiohttp.ClientError, OSError) as exc:
        reason = f"HTTP {exc.status} {exc.reason}" if isinstance(exc, ApiException) else str(exc)
        print(
            f"labhub-backup: cannot list claims or snapshots in namespace {cfg.namespace} "
            f"({reason}); check the API server and the job's RBAC role",
            file=sys.stderr,
        )
        return 1
    prefix = "would " if args.dry_run else ""
    for name in report.created:
        print(f"{prefix}create {name}")
    for name in report.existing:
        print(f"exists {name}")
    for name in report.deleted:
        print(f"{prefix}delete {name}")
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``labhub-backup``.

    ``labhub-backup run | restore | restore-hubdb | list`` is the off-site backup
    (:mod:`hub_ext.services.offsite_cli`); ``labhub-backup snapshot`` (or no sub-command) takes
    the VolumeSnapshots.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in offsite_cli.COMMANDS:
        return offsite_cli.main(args)
    if args and args[0] == "snapshot":
        args = args[1:]
    return asyncio.run(_main_async(_parser().parse_args(args)))


if __name__ == "__main__":
    sys.exit(main())
