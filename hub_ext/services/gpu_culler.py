"""The GPU idle culler, a JupyterHub service.

Run by the hub (the Helm chart's ``cull.gpu``) as::

    python3 -m hub_ext.services.gpu_culler --idle-timeout-when-queued=900 --cull-every=60

Every ``--cull-every`` seconds it lists the GPU pods of the namespace. When students wait behind
the ``labhub.io/slice-admission`` gate for a slice type, the servers of that type whose users have
been inactive longer than ``--idle-timeout-when-queued`` are stopped through the hub API, the
longest idle first and never more than students are waiting. Servers without a GPU are never
stopped here (the ordinary idle culler handles them).

With ``--prometheus-url`` the culler also reads each pod's GPU utilisation (dcgm-exporter metrics,
see :mod:`hub_ext.adapters.prometheus`): a server whose GPU has been idle for
``--gpu-idle-timeout`` is stopped for a waiting student even while its browser tab is active, and
one whose GPU is busy is kept. When Prometheus does not answer, or has no data for a pod, the
hub-activity rule applies; the culler says so once in its log, and once when the data is back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.adapters.hub_api import HubApi, HubApiError, HubApiSettings
from hub_ext.adapters.k8s.gpu_pods import in_cluster_namespace, kubernetes_client, list_gpu_pods
from hub_ext.adapters.prometheus import PrometheusError, PrometheusSettings, gpu_utilisation
from hub_ext.core.cull import CullOrder, CullPolicy, Freed, GpuIdle, GpuServer, plan_culls
from hub_ext.core.cull import ServerActivity as Activity

log = logging.getLogger("hub_ext.gpu_culler")
PROG = "labhub-gpu-culler"


@dataclass(frozen=True)
class CullerConfig:
    namespace: str
    policy: CullPolicy
    every: float
    dry_run: bool = False
    prometheus: PrometheusSettings | None = None


class GpuSource:
    """GPU idleness per server from Prometheus, remembering whether it answered last time (so
    that an outage is logged once, not every check)."""

    def __init__(self, settings: PrometheusSettings | None) -> None:
        self.settings = settings
        self.available: bool | None = None
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def idle(
        self,
        namespace: str,
        window: timedelta | None,
        servers: Sequence[GpuServer],
        activity: Sequence[Activity],
        now: datetime,
    ) -> list[GpuIdle]:
        if self.settings is None or window is None:
            return []
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            usage = await gpu_utilisation(self._session, self.settings, namespace, window)
        except PrometheusError as exc:
            if self.available is not False:
                log.warning(
                    "cannot read GPU utilisation: %s; culling by hub activity only until "
                    "Prometheus answers",
                    exc,
                )
            self.available = False
            return []
        if self.available is False:
            log.info("GPU utilisation from Prometheus is back (%s)", usage.metric or "no data")
        elif self.available is None:
            log.info("GPU utilisation from Prometheus (%s)", usage.metric or "no data yet")
        self.available = True
        started = {a.key: a.started for a in activity}
        out: list[GpuIdle] = []
        for server in servers:
            peak = usage.peak_percent.get(server.pod_name)
            if peak is None:
                continue  # no GPU data for this pod: the hub-activity rule decides
            if peak >= self.settings.busy_percent:
                out.append(GpuIdle(server.key, None))
                continue
            since = started.get(server.key)
            # the window only proves idleness since the server started
            covered = window if since is None else min(window, now - since)
            out.append(GpuIdle(server.key, covered))
        return out


def _now() -> datetime:
    return datetime.now(UTC)


async def cull_once(
    core: CoreV1Api,
    hub: HubApi,
    cfg: CullerConfig,
    freed: list[Freed] | None = None,
    clock: Callable[[], datetime] = _now,
    gpu: GpuSource | None = None,
) -> list[CullOrder]:
    """One check: read the cluster and the hub, stop the servers the rule picks.

    ``freed`` carries this culler's recent culls from one check to the next (updated in place),
    so that a slice on its way to a waiter is not freed twice.
    """
    now = clock()
    freed = [] if freed is None else freed
    freed[:] = [f for f in freed if now - f.at <= cfg.policy.freed_grace]
    pods = await list_gpu_pods(core, cfg.namespace, now)
    if not pods.waiters:
        return []
    activity = await hub.active_servers()
    idle = await (gpu or GpuSource(None)).idle(
        cfg.namespace, cfg.policy.gpu_idle_timeout, pods.servers, activity, now
    )
    plan = plan_culls(now, pods.waiters, pods.servers, activity, cfg.policy, freed, idle)
    done: list[CullOrder] = []
    for order in plan.orders:
        who = order.key.user + (f"/{order.key.server_name}" if order.key.server_name else "")
        if cfg.dry_run:
            log.info("would stop server %s (pod %s): %s", who, order.pod_name, order.reason)
            done.append(order)
            continue
        try:
            status = await hub.stop_server(order.key)
        except (HubApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not stop server %s: %s", who, exc)
            continue
        log.info(
            "stopped server %s (pod %s, HTTP %d): %s", who, order.pod_name, status, order.reason
        )
        freed.append(Freed(order.key, order.slice_type, now))
        done.append(order)
    return done


async def run(cfg: CullerConfig, api: ApiClient, hub: HubApi, stop: asyncio.Event) -> None:
    """Check every ``cfg.every`` seconds until ``stop`` is set; errors are logged, not fatal."""
    core = CoreV1Api(api)
    freed: list[Freed] = []
    gpu = GpuSource(cfg.prometheus)
    if cfg.prometheus is None:
        log.info("no --prometheus-url: GPU utilisation is not used; culling by hub activity only")
    try:
        await _loop(core, hub, cfg, freed, gpu, stop)
    finally:
        await gpu.close()


async def _loop(
    core: CoreV1Api,
    hub: HubApi,
    cfg: CullerConfig,
    freed: list[Freed],
    gpu: GpuSource,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        try:
            await cull_once(core, hub, cfg, freed, gpu=gpu)
        except ApiException as exc:
            log.warning(
                "cannot list pods in namespace %s (HTTP %s %s); check the hub's RBAC role",
                cfg.namespace,
                exc.status,
                exc.reason,
            )
        except (HubApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("GPU cull check failed: %s", exc)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(cfg.every):
                await stop.wait()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Stop idle GPU servers sooner while students wait for their slice type.",
    )
    parser.add_argument(
        "--idle-timeout-when-queued",
        type=int,
        default=900,
        metavar="SECONDS",
        help="inactivity after which a GPU server is stopped while others wait (default 900)",
    )
    parser.add_argument(
        "--cull-every", type=int, default=60, metavar="SECONDS", help="seconds between checks"
    )
    parser.add_argument(
        "--min-queued",
        type=int,
        default=30,
        metavar="SECONDS",
        help="how long a student must have waited before servers are stopped (default 30)",
    )
    parser.add_argument(
        "--prometheus-url",
        default="",
        help="Prometheus with dcgm-exporter's metrics (e.g. http://prometheus:9090); empty: "
        "hub activity only",
    )
    parser.add_argument(
        "--gpu-idle-timeout",
        type=int,
        default=1800,
        metavar="SECONDS",
        help="GPU idleness after which a server is stopped while others wait, even with an "
        "active browser tab (default 1800)",
    )
    parser.add_argument(
        "--gpu-busy-percent",
        type=float,
        default=5.0,
        metavar="PERCENT",
        help="utilisation at or above which a GPU counts as busy (default 5)",
    )
    parser.add_argument(
        "--prometheus-timeout", type=float, default=5.0, metavar="SECONDS", help="per query"
    )
    parser.add_argument("--namespace", help="namespace of the user pods (default: the hub's own)")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: KUBECONFIG or in-cluster)")
    parser.add_argument("--dry-run", action="store_true", help="log decisions, stop nothing")
    parser.add_argument("--once", action="store_true", help="run one check and exit")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> CullerConfig:
    if args.cull_every < 1:
        raise ValueError(f"--cull-every must be at least 1 second, got {args.cull_every}")
    if args.idle_timeout_when_queued < 1:
        raise ValueError(
            f"--idle-timeout-when-queued must be at least 1 second, got "
            f"{args.idle_timeout_when_queued}"
        )
    if args.min_queued < 0:
        raise ValueError(f"--min-queued must be 0 or more seconds, got {args.min_queued}")
    if args.gpu_idle_timeout < 1:
        raise ValueError(
            f"--gpu-idle-timeout must be at least 1 second, got {args.gpu_idle_timeout}"
        )
    prometheus = None
    if args.prometheus_url:
        prometheus = PrometheusSettings(
            args.prometheus_url, args.prometheus_timeout, args.gpu_busy_percent
        )
    policy = CullPolicy(
        timedelta(seconds=args.idle_timeout_when_queued),
        timedelta(seconds=args.min_queued),
        gpu_idle_timeout=timedelta(seconds=args.gpu_idle_timeout) if prometheus else None,
    )
    namespace = args.namespace or in_cluster_namespace()
    return CullerConfig(namespace, policy, float(args.cull_every), args.dry_run, prometheus)


async def _main(args: argparse.Namespace, cfg: CullerConfig) -> int:
    settings = HubApiSettings.from_env()
    try:
        api = await kubernetes_client(args.kubeconfig)
    except (config.ConfigException, OSError) as exc:
        print(
            f"{PROG}: no usable Kubernetes credentials ({exc}); run in the hub pod with its "
            "service account or pass --kubeconfig PATH",
            file=sys.stderr,
        )
        return 2
    stop = asyncio.Event()
    async with api, HubApi(settings) as hub:
        if args.once:
            try:
                await cull_once(CoreV1Api(api), hub, cfg)
            except ApiException as exc:
                print(
                    f"{PROG}: cannot list pods in namespace {cfg.namespace} (HTTP {exc.status} "
                    f"{exc.reason}); check the API server and the hub's RBAC role",
                    file=sys.stderr,
                )
                return 1
            except (HubApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                print(f"{PROG}: GPU cull check failed: {exc}", file=sys.stderr)
                return 1
            return 0
        log.info(
            "GPU idle culler: namespace %s, idle timeout when queued %s s, every %s s",
            cfg.namespace,
            args.idle_timeout_when_queued,
            args.cull_every,
        )
        await run(cfg, api, hub, stop)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m hub_ext.services.gpu_culler`` and ``labhub-gpu-culler``."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="[%(levelname).1s %(asctime)s %(name)s] %(message)s"
    )
    try:
        cfg = build_config(args)
        return asyncio.run(_main(args, cfg))
    except (ValueError, HubApiError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
