"""The development cluster: API server, scheduler, node lifecycle, one kubelet per node.

Usage::

    async with DevCluster(load_cluster_config(), state_dir) as cluster:
        ...  # KUBECONFIG=cluster.kubeconfig, or kubernetes_asyncio against cluster.api.url
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoreV1Api, StorageV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.apiserver import ApiServer
from hub_ext.devcluster.config import ClusterConfig
from hub_ext.devcluster.controllers.manager import ControllerManager
from hub_ext.devcluster.informer import api_client, request
from hub_ext.devcluster.kubelet.agent import Kubelet, KubeletSettings
from hub_ext.devcluster.network.forwarder import ServiceProxy
from hub_ext.devcluster.node_objects import node_object, storage_class_object
from hub_ext.devcluster.nodes import LifecycleSettings, NodeAgent, NodeLifecycleController
from hub_ext.devcluster.scheduler import COMPONENT, Scheduler
from hub_ext.devcluster.volumes import VolumeProvisioner

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class DevClusterOptions:
    """Tunables, mostly for tests: timings of heartbeats and eviction, scheduler names, and the
    clock of the workload controllers (CronJob schedules, deadlines, TTLs)."""

    host: str = "127.0.0.1"
    port: int = 0
    heartbeat_seconds: float = 2.0
    eviction_timeout: float = 300.0
    monitor_grace: float = 40.0
    scheduler_names: tuple[str, ...] = (COMPONENT,)
    namespace: str = "default"
    audit_log: Path | None = None  # one JSON line per API request (audit.k8s.io/v1 Event)
    clock: Callable[[], float] = time.time


class DevCluster:
    """All components of the emulator, started and stopped together."""

    def __init__(
        self, config: ClusterConfig, state_dir: Path, options: DevClusterOptions | None = None
    ) -> None:
        self.config = config
        self.state_dir = Path(state_dir)
        self.options = options or DevClusterOptions()
        self.api = ApiServer(
            state_dir=self.state_dir,
            host=self.options.host,
            port=self.options.port,
            audit_log=self.options.audit_log,
        )
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.scheduler: Scheduler | None = None
        self.lifecycle: NodeLifecycleController | None = None
        self.provisioner: VolumeProvisioner | None = None
        self.agents: dict[str, NodeAgent] = {}
        self.kubelets: dict[str, Kubelet] = {}
        self.controllers = ControllerManager(self.api.objects, self.options.clock)
        self.proxy = ServiceProxy(self.api.store)
        self._started: list[Any] = []

    async def __aenter__(self) -> DevCluster:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.api.start()
        self._started.append(self.api)
        try:
            await self._start_components()
        except BaseException:
            await self.stop()
            raise
        self.api.write_kubeconfig(self.kubeconfig, namespace=self.options.namespace)

    async def _start_components(self) -> None:
        url, opts = self.api.url, self.options
        await self._bootstrap(url)
        self.controllers.start()
        self._started.append(self.controllers)
        self.proxy.start()
        self._started.append(self.proxy)
        for spec in self.config.nodes:
            agent = NodeAgent(url, node_object(spec), opts.heartbeat_seconds)
            await agent.start()
            self.agents[spec.name] = agent
            self._started.append(agent)
        self.lifecycle = NodeLifecycleController(
            url, LifecycleSettings(opts.eviction_timeout, opts.monitor_grace)
        )
        await self.lifecycle.start()
        self._started.append(self.lifecycle)
        self.provisioner = VolumeProvisioner(url, self.state_dir / "volumes")
        await self.provisioner.start()
        self._started.append(self.provisioner)
        self.scheduler = Scheduler(url, opts.scheduler_names)
        await self.scheduler.start()
        self._started.append(self.scheduler)
        for index, spec in enumerate(self.config.nodes):
            kubelet = Kubelet(
                KubeletSettings(url, spec.name, index, self.state_dir, self.config.kubelet)
            )
            await kubelet.start()
            self.kubelets[spec.name] = kubelet
            self._started.append(kubelet)

    async def _bootstrap(self, url: str) -> None:
        """Create the system namespaces and the storage classes (existing ones are kept)."""
        async with api_client(url) as client:
            core, storage = CoreV1Api(client), StorageV1Api(client)
            calls = [
                (core.create_namespace, {"metadata": {"name": ns}}) for ns in SYSTEM_NAMESPACES
            ]
            calls += [
                (storage.create_storage_class, storage_class_object(sc))
                for sc in self.config.storage_classes
            ]
            for call, body in calls:
                await _create(call, body)

    async def stop(self) -> None:
        """Stop pod processes first, then the controllers, then the API server."""
        while self._started:
            component = self._started.pop()
            with contextlib.suppress(Exception):
                await component.stop()
        self.kubelets.clear()
        self.agents.clear()

    async def set_node_ready(self, node: str, ready: bool, message: str = "") -> None:
        """Fault injection: make ``node`` NotReady (or Ready again)."""
        if node not in self.agents:
            raise KeyError(f"no node {node!r}; nodes: {', '.join(sorted(self.agents))}")
        await self.agents[node].set_ready(ready, message)


async def _create(call: Any, body: dict[str, Any]) -> None:
    for attempt in range(20):
        try:
            await request(call(body, _preload_content=False))
            return
        except ApiException as exc:
            if exc.status == 409:
                return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(min(0.05 * 2**attempt, 1.0))
