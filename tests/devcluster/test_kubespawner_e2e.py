"""KubeSpawner 7.1, unmodified, spawns a real jupyterhub-singleuser on the development cluster.

A real JupyterHub (with configurable-http-proxy) runs as a subprocess with ``KUBECONFIG``
pointing at the emulator; KubeSpawner's client loads it because no in-cluster configuration
exists. The notebook server process listens on its pod IP and is reached through the proxy.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from devcluster_helpers import MIG, ROOT, get_pod, pid_alive, two_node_config
from hub_rbac import hub_kubeconfig
from kubernetes_asyncio.client import CoreV1Api
from support import VENV_BIN, eventually, free_port, start_jupyterhub

from hub_ext.demo.processes import stop_process_async
from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.informer import api_client

CHP = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"

HUB_CONFIG = """
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "e2e", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "e2e",
    "services": ["e2e"],
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"],
}}]
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.namespace = "default"
c.KubeSpawner.image = "quay.io/jupyter/base-notebook:latest"
c.KubeSpawner.cmd = [{singleuser!r}]
c.KubeSpawner.args = {extra_args!r}
c.KubeSpawner.start_timeout = 90
c.KubeSpawner.http_timeout = 60
c.KubeSpawner.profile_list = [
    {{
        "display_name": "Machine learning (one MIG slice)",
        "slug": "ml",
        "default": True,
        "kubespawner_override": {{
            "cpu_guarantee": 0.5,
            "mem_guarantee": "512M",
            "extra_resource_limits": {{"{mig}": "1"}},
        }},
    }}
]
"""


@pytest.mark.slow
async def test_kubespawner_spawns_and_stops_a_singleuser_server(tmp_path: Path) -> None:
    assert CHP.exists(), "configurable-http-proxy is not installed (npm install)"
    token = secrets.token_hex(16)
    port = free_port()
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    (hub_dir / "jupyterhub_config.py").write_text(
        HUB_CONFIG.format(
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=str(CHP),
            token=token,
            singleuser=str(VENV_BIN / "jupyterhub-singleuser"),
            mig=MIG,
            # a notebook server refuses to run as root unless told to (CI runs as root)
            extra_args=["--allow-root"] if os.geteuid() == 0 else [],
        )
    )
    async with DevCluster(two_node_config(), tmp_path / "state") as cluster:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
        # the chart's hub ServiceAccount and Role, as a real install has them
        kubeconfig = await hub_kubeconfig(cluster, tmp_path / "hub-kubeconfig")
        env.update(KUBECONFIG=str(kubeconfig))
        log = open(hub_dir / "hub.log", "wb")  # noqa: SIM115 - closed below
        hub = await start_jupyterhub(hub_dir, env, log)  # the hub and its proxy in one group
        try:
            await _spawn_and_stop(cluster, f"http://127.0.0.1:{port}", token)
        except BaseException:
            print((hub_dir / "hub.log").read_text()[-6000:])
            raise
        finally:
            await stop_process_async(hub, 20)  # and a proxy left behind, if any
            log.close()
        assert hub.returncode == 0


async def _spawn_and_stop(cluster: DevCluster, hub_url: str, token: str) -> None:
    headers = {"Authorization": f"token {token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        api_client(cluster.api.url) as client,
    ):
        core = CoreV1Api(client)

        async def hub_up() -> bool:
            try:
                async with http.get(f"{hub_url}/hub/api/") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(hub_up, timeout=60, what="JupyterHub up")
        async with http.post(f"{hub_url}/hub/api/users/ada") as resp:
            assert resp.status == 201, await resp.text()
        async with http.post(f"{hub_url}/hub/api/users/ada/server", json={"profile": "ml"}) as resp:
            assert resp.status in (201, 202), await resp.text()

        async def ready() -> dict[str, Any] | None:
            async with http.get(f"{hub_url}/hub/api/users/ada") as resp:
                server = (await resp.json())["servers"].get("")
            return server if server and server.get("ready") else None

        server = await eventually(ready, timeout=90, what="singleuser server ready")
        pod = await get_pod(core, "jupyter-ada")
        assert pod is not None and pod["status"]["phase"] == "Running"
        assert pod["spec"]["nodeName"] in ("gpu-a", "gpu-b")
        assert pod["spec"]["containers"][0]["resources"]["limits"][MIG] == "1"
        assert pod["status"]["podIP"] in server["url"] or server["url"].startswith("/user/ada")

        async def status() -> dict[str, Any] | None:
            async with http.get(f"{hub_url}/user/ada/api/status") as resp:
                return json.loads(await resp.text()) if resp.status == 200 else None

        assert "started" in await eventually(status, timeout=20, what="notebook API via proxy")
        pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("//")[1])
        assert pid_alive(pid)

        async with http.delete(f"{hub_url}/hub/api/users/ada/server") as resp:
            assert resp.status in (202, 204), await resp.text()

        async def stopped() -> bool:
            async with http.get(f"{hub_url}/hub/api/users/ada") as resp:
                servers = (await resp.json())["servers"]
            return "" not in servers and await get_pod(core, "jupyter-ada") is None

        await eventually(stopped, timeout=60, what="server stopped and pod removed")
        assert not pid_alive(pid)
