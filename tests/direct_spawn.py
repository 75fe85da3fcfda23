"""Starting LabKubeSpawner directly (no hub process) against the development cluster.

The spawner is the real class with a traitlets ``Config``, as JupyterHub would create it, for a
student object with the attributes JupyterHub's ``User`` gives a spawner. Its server is
:mod:`light_server`, a small HTTP answer on the pod IP, so that a spawn costs little.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyterhub.objects import Hub
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import kube_config
from traitlets.config import Config

from hub_ext.devcluster.cluster import DevCluster, DevClusterOptions
from hub_ext.devcluster.config import parse_cluster_config
from hub_ext.hub.spawner.spawner import LabKubeSpawner, stop_admission_controllers

SPAWNER_TESTS = Path(__file__).resolve().parent / "hub" / "spawner"
LIGHT = [sys.executable, str(SPAWNER_TESTS / "light_server.py")]
USER_SCHEDULER = "lab-user-scheduler"
TAINT = {"key": "lab.example/dedicated", "value": "students", "effect": "NoSchedule"}


def lab_cluster(storage_classes: tuple[str, ...] = ("standard",), taint: bool = True) -> Any:
    """One labelled GPU node (tainted unless ``taint`` is false) with two 1g.10gb slices."""
    return parse_cluster_config(
        {
            "name": "spawner-test",
            "storageClasses": [
                {"name": n, "default": i == 0} for i, n in enumerate(storage_classes)
            ],
            "nodes": [
                {
                    "name": "gpu-a",
                    "zone": "room-a",
                    "cpu": 16,
                    "memory": "64Gi",
                    "labels": {"lab.example/role": "gpu", "labhub.io/role": "gpu"},
                    "taints": [TAINT] if taint else [],
                    "gpus": {"model": "A100-SXM4-40GB", "migLayout": {"1g.10gb": 2}},
                }
            ],
        }
    )


@dataclass
class Group:
    name: str


@dataclass
class Student:
    """What a spawner reads from JupyterHub's User."""

    name: str
    id: int = 1
    admin: bool = False
    groups: list[Group] = field(default_factory=list)
    spawners: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"/user/{self.name}/"

    @property
    def escaped_name(self) -> str:
        return self.name


@dataclass
class Lab:
    cluster: DevCluster
    core: CoreV1Api

    def config(self, **traits: Any) -> Config:
        """Spawner settings for this cluster (the light server as command), plus ``traits``."""
        c = Config()
        s = c.LabKubeSpawner
        s.k8s_api_host = self.cluster.api.url
        s.namespace = "default"
        s.profile_provider = "e2e_profiles.provider"
        s.cmd = LIGHT
        s.start_timeout = 60
        s.http_timeout = 30
        s.events_enabled = False
        s.storage_class = "standard"
        s.tolerations = [{**TAINT, "operator": "Equal"}]
        for name, value in traits.items():
            s[name] = value
        return c

    def spawner(self, config: Config, user: str = "anna", group: str = "intro") -> Any:
        if str(SPAWNER_TESTS) not in sys.path:
            sys.path.insert(0, str(SPAWNER_TESTS))
        import e2e_profiles

        if config.LabKubeSpawner.get("profile_provider") == "e2e_profiles.provider":
            config.LabKubeSpawner.profile_provider = e2e_profiles.provider
        student = Student(user, groups=[Group(group)])
        spawner = LabKubeSpawner(
            config=config,
            user=student,
            hub=Hub(ip="127.0.0.1", port=8081, base_url="/hub/"),
            api_token="test-token",
            oauth_client_id=f"jupyterhub-user-{user}",
        )
        student.spawners[""] = spawner
        return spawner

    async def pod(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        try:
            answer = await self.core.read_namespaced_pod(name, namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return dict(self.core.api_client.sanitize_for_serialization(answer))


@contextlib.asynccontextmanager
async def lab(
    tmp: Path,
    schedulers: tuple[str, ...] = (USER_SCHEDULER,),
    storage_classes: tuple[str, ...] = ("standard",),
    namespaces: tuple[str, ...] = (),
    taint: bool = True,
) -> AsyncIterator[Lab]:
    """The test cluster (which also runs the named user schedulers) and an API client for it."""
    options = DevClusterOptions(scheduler_names=("default-scheduler", *schedulers))
    saved = kube_config.KUBE_CONFIG_DEFAULT_LOCATION
    cluster_config = lab_cluster(storage_classes, taint)
    async with DevCluster(cluster_config, tmp / "cluster", options) as cluster:
        # KubeSpawner loads the default kubeconfig (its location is read once, at import)
        kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(cluster.kubeconfig)
        try:
            async with ApiClient(configuration=Configuration(host=cluster.api.url)) as client:
                core = CoreV1Api(client)
                for namespace in namespaces:
                    await core.create_namespace({"metadata": {"name": namespace}})
                yield Lab(cluster, core)
        finally:
            await stop_admission_controllers()
            await LabKubeSpawner._stop_all_reflectors()
            kube_config.KUBE_CONFIG_DEFAULT_LOCATION = saved
