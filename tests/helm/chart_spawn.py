"""The user pod LabHub creates from a rendered chart: the chart's hub config, loaded as the hub
loads it, configures LabKubeSpawner, which spawns on the development cluster.

Only what the development cluster cannot run is replaced: the server command (it runs no
images, so the server is the tests' small stand-in) and the course profiles (the chart's
profiles directory is a git checkout in production).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from direct_spawn import LIGHT, lab
from hub_config import load_hub_config
from traitlets.config import Config

DEVCLUSTER_ONLY = {"cmd", "profile_provider", "k8s_api_host"}


def chart_spawner_config(docs: list[dict[str, Any]], fullname: str, root: Path) -> Config:
    """``c.LabKubeSpawner`` of the hub config the chart rendered."""
    c = load_hub_config(docs, fullname, root)
    config = Config()
    config.LabKubeSpawner = Config(dict(c.LabKubeSpawner))
    return config


def created_user_pod(
    docs: list[dict[str, Any]], fullname: str, root: Path, *, taint: bool = False
) -> dict[str, Any]:
    """Spawn one CPU-only server with the chart's spawner settings; the pod read back."""
    (root / "hub-config").mkdir()
    config = chart_spawner_config(docs, fullname, root / "hub-config")
    settings = config.LabKubeSpawner
    assert not DEVCLUSTER_ONLY & set(settings), "the chart sets what the test replaces"

    async def scenario() -> dict[str, Any]:
        schedulers = tuple(s for s in [settings.get("scheduler_name")] if s)
        async with lab(
            root,
            schedulers=schedulers,
            storage_classes=(str(settings.storage_class),),
            namespaces=(str(settings.namespace),),
            taint=taint,
        ) as cluster:
            # what the values refer to exists, as an operator creates it (the kubelet, like a
            # real one, does not start a pod whose ConfigMap volume is missing)
            for volume in settings.get("volumes") or []:
                if "configMap" in volume:
                    body = {"metadata": {"name": volume["configMap"]["name"]}, "data": {}}
                    await cluster.core.create_namespaced_config_map(str(settings.namespace), body)
            settings.k8s_api_host = cluster.cluster.api.url
            settings.cmd = LIGHT
            settings.profile_provider = "e2e_profiles.provider"
            settings.events_enabled = False
            spawner = cluster.spawner(config)
            spawner.user_options = {"profile": "intro-python"}
            await asyncio.wait_for(spawner.start(), 90)
            pod = await cluster.pod(spawner.pod_name, spawner.namespace)
            await spawner.stop(now=True)
            assert pod is not None
            return pod

    return asyncio.run(scenario())
