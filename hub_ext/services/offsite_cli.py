"""``labhub-backup run | restore | restore-hubdb | list``: the off-site backup's command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException

from hub_ext.adapters.hub_api import HubApi, HubApiError, HubApiSettings
from hub_ext.adapters.k8s.gpu_pods import kubernetes_client
from hub_ext.core.offsite import TAG_HOME, OffsiteError, ResticRetention, parse_at
from hub_ext.services.offsite import (
    OffsiteConfig,
    restore_home,
    restore_hub_db,
    run_offsite_backup,
)
from hub_ext.services.restic import Restic, ResticError, ResticSettings

COMMANDS = ("run", "restore", "restore-hubdb", "list")
STATUS_KEY = "labhub_backup.prom"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repository",
        default=os.environ.get("RESTIC_REPOSITORY", ""),
        help="restic repository (s3:..., rest:..., sftp:... or a directory); "
        "default $RESTIC_REPOSITORY. The password comes from $RESTIC_PASSWORD(_FILE)",
    )
    parser.add_argument("--host", default="labhub", help="restic host name of the snapshots")
    parser.add_argument("--cache-dir", type=Path, default=None, help="restic's cache directory")
    parser.add_argument("--time-zone", default="Etc/UTC", help="IANA zone for --at and the log")
    parser.add_argument("--homes-root", type=Path, default=None, help="directory of the homes")
    parser.add_argument("--home-prefix", default="claim-", help="home directory name prefix")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labhub-backup",
        description="Back up LabHub's homes and hub database off-site with restic, and restore.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="back up every home and the hub database")
    _common(run)
    run.add_argument("--hub-db", default=None, help="hub database URL (sqlite:///... or postgres)")
    run.add_argument("--keep-daily", type=int, default=7)
    run.add_argument("--keep-weekly", type=int, default=4)
    run.add_argument("--keep-monthly", type=int, default=6)
    run.add_argument("--check-every-days", type=float, default=7, help="0 turns `check` off")
    run.add_argument("--initialize", action="store_true", help="create a missing repository")
    run.add_argument("--metrics-file", type=Path, default=None, help="Prometheus text file")
    run.add_argument(
        "--status-configmap",
        default=None,
        help="also keep the metrics in this ConfigMap (key labhub_backup.prom), which the hub "
        "mounts and exports on /hub/metrics",
    )
    run.add_argument("--namespace", default=os.environ.get("POD_NAMESPACE", ""))
    restore = sub.add_parser("restore", help="restore one student's home")
    _common(restore)
    restore.add_argument("student")
    restore.add_argument("--at", default=None, help="newest backup at or before this time")
    where = restore.add_mutually_exclusive_group(required=True)
    where.add_argument("--into", default=None, help="name of the new claim (directory)")
    where.add_argument("--in-place", action="store_true", help="over the current home")
    hubdb = sub.add_parser("restore-hubdb", help="restore the hub database to a new file")
    _common(hubdb)
    hubdb.add_argument("target", type=Path)
    hubdb.add_argument("--at", default=None)
    listing = sub.add_parser("list", help="list the home backups")
    _common(listing)
    listing.add_argument("student", nargs="?", default=None)
    return parser


async def _server_running(student: str) -> bool:
    """Ask the hub whether ``student`` has a server running or starting."""
    async with HubApi(HubApiSettings.from_env()) as hub:
        return any(a.key.user == student for a in await hub.active_servers())


async def _read_status(namespace: str, name: str) -> str:
    """The metrics text the previous run left in the status ConfigMap ("" when none)."""
    async with await kubernetes_client() as api:
        found = await CoreV1Api(api).read_namespaced_config_map(name, namespace)
    return str((found.data or {}).get(STATUS_KEY, ""))


async def _write_status(namespace: str, name: str, text: str) -> None:
    async with await kubernetes_client() as api:
        await CoreV1Api(api).patch_namespaced_config_map(
            name, namespace, {"data": {STATUS_KEY: text}}
        )


def _reason(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return str(exc) or type(exc).__name__


def _fail(message: str, code: int = 1) -> int:
    print(f"labhub-backup: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        zone = ZoneInfo(args.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return _fail(f"unknown --time-zone {args.time_zone!r}; use a name such as Etc/UTC", 2)
    try:
        restic = Restic(ResticSettings(args.repository, host=args.host, cache_dir=args.cache_dir))
        return _dispatch(args, restic, zone)
    except (ResticError, OffsiteError) as exc:
        return _fail(str(exc), 2 if isinstance(exc, OffsiteError) else 1)


def _dispatch(args: argparse.Namespace, restic: Restic, zone: ZoneInfo) -> int:
    at = parse_at(args.at, zone) if getattr(args, "at", None) else None
    if args.command == "run":
        if args.status_configmap and args.metrics_file is None:
            return _fail("--status-configmap needs --metrics-file (a scratch path)", 2)
        if args.status_configmap:
            try:
                previous = asyncio.run(_read_status(args.namespace, args.status_configmap))
            except (ApiException, ConfigException, aiohttp.ClientError, OSError) as exc:
                print(
                    f"labhub-backup: cannot read the status ConfigMap {args.status_configmap} "
                    f"({_reason(exc)}); the last success and check times start afresh",
                    file=sys.stderr,
                )
                previous = ""
            if previous:
                args.metrics_file.write_text(previous)
        cfg = OffsiteConfig(
            homes_root=args.homes_root,
            home_prefix=args.home_prefix,
            hub_db_url=args.hub_db,
            retention=ResticRetention(args.keep_daily, args.keep_weekly, args.keep_monthly),
            check_every=timedelta(days=args.check_every_days),
            initialize=args.initialize,
            metrics_file=args.metrics_file,
        )
        report = run_offsite_backup(restic, cfg, lambda: datetime.now(UTC))
        for name, added in sorted(report.added.items()):
            print(f"backed up {name}: {added} bytes added")
        for error in report.errors:
            print(f"error: {error}", file=sys.stderr)
        if args.status_configmap:
            text = args.metrics_file.read_text()
            try:
                asyncio.run(_write_status(args.namespace, args.status_configmap, text))
            except (ApiException, ConfigException, aiohttp.ClientError, OSError) as exc:
                return _fail(
                    f"cannot write the metrics to the ConfigMap {args.status_configmap} "
                    f"({_reason(exc)}); check the job's Role. The backup itself "
                    f"{'succeeded' if report.outcome.ok else 'failed'}"
                )
        return 0 if report.outcome.ok else 1
    if args.command == "list":
        tags = (TAG_HOME,) if args.student is None else (TAG_HOME, f"student={args.student}")
        for snap in restic.snapshots(tags):
            print(f"{snap.id[:8]}  {snap.time.astimezone(zone):%Y-%m-%d %H:%M}  {snap.student}")
        return 0
    if args.command == "restore-hubdb":
        snap = restore_hub_db(restic, args.target, at)
        print(
            f"restored the hub database of {snap.time.astimezone(zone):%Y-%m-%d %H:%M} to "
            f"{args.target}"
        )
        return 0
    if args.homes_root is None:
        return _fail("--homes-root is required for restore", 2)
    if args.in_place:
        try:
            running = asyncio.run(_server_running(args.student))
        except (HubApiError, aiohttp.ClientError, OSError) as exc:
            return _fail(
                f"cannot ask the hub whether {args.student}'s server runs ({exc}); an in-place "
                "restore needs the hub (JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN)"
            )
        if running:
            return _fail(
                f"{args.student}'s server is running: an in-place restore would change files "
                f"under it. Stop it first (hub admin page, or DELETE /hub/api/users/"
                f"{args.student}/server), or restore --into a new claim"
            )
    target, snap, kept = restore_home(
        restic,
        args.homes_root,
        args.student,
        at,
        into=args.into,
        in_place=args.in_place,
        home_prefix=args.home_prefix,
    )
    when = snap.time.astimezone(zone)
    print(
        f"restored {args.student}'s home as of {when:%Y-%m-%d %H:%M} (snapshot {snap.id[:8]}) "
        f"to {target}"
    )
    if kept is not None:
        print(f"the home as it was before is kept in {kept}")
    return 0
