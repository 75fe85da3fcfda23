"""LabKubeSpawner end to end: real JupyterHub, configurable-http-proxy, jupyterhub-singleuser
processes and the emulated cluster (one node with two 1g.10gb slices, so the queue is short)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import parse_cluster_config

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CHP = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
HERE = Path(__file__).resolve().parent

HUB_CONFIG = """
import sys
sys.path.insert(0, {here!r})
import e2e_profiles
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
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:users", "admin:groups"],
}}]
c.JupyterHub.spawner_class = "hub_ext.hub.spawner.LabKubeSpawner"
c.LabKubeSpawner.namespace = "default"
c.LabKubeSpawner.profile_provider = e2e_profiles.provider
c.LabKubeSpawner.cmd = [{singleuser!r}]
c.LabKubeSpawner.args = {extra_args!r}
c.LabKubeSpawner.start_timeout = 90
c.LabKubeSpawner.http_timeout = 60
c.LabKubeSpawner.queue_timeout = 120
c.LabKubeSpawner.events_enabled = False
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_config() -> Any:
    node = {
        "name": "gpu-a",
        "zone": "room-a",
        "cpu": 16,
        "memory": "64Gi",
        "gpus": {"model": "A100-SXM4-40GB", "migLayout": {"1g.10gb": 2}},
    }
    return parse_cluster_config({"name": "e2e", "nodes": [node]})


async def eventually(probe: Any, timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_students_spawn_queue_and_keep_their_files(tmp_path: Path) -> None:
    assert CHP.exists(), "configurable-http-proxy is not installed (npm install)"
    token = secrets.token_hex(16)
    port = free_port()
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    (hub_dir / "jupyterhub_config.py").write_text(
        HUB_CONFIG.format(
            here=str(HERE),
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=str(CHP),
            token=token,
            singleuser=str(VENV_BIN / "jupyterhub-singleuser"),
            extra_args=["--allow-root"] if os.geteuid() == 0 else [],
        )
    )
    async with DevCluster(cluster_config(), tmp_path / "state") as cluster:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
        env.update(KUBECONFIG=str(cluster.kubeconfig), PATH=f"{VENV_BIN}:{env['PATH']}")
        log = open(hub_dir / "hub.log", "wb")  # noqa: SIM115 - closed below
        hub = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "jupyterhub"),
            "-f",
            "jupyterhub_config.py",
            cwd=hub_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            await _scenario(cluster, f"http://127.0.0.1:{port}", token)
        except BaseException:
            print((hub_dir / "hub.log").read_text()[-8000:])
            raise
        finally:
            if hub.returncode is None:
                hub.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(hub.wait(), 20)
                except TimeoutError:
                    hub.kill()
                    await hub.wait()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(hub.pid, signal.SIGKILL)
            log.close()


async def _scenario(cluster: DevCluster, hub: str, token: str) -> None:
    headers = {"Authorization": f"token {token}"}
    async with (
        aiohttp.ClientSession(headers=headers) as api,
        ApiClient(configuration=Configuration(host=cluster.api.url)) as client,
    ):
        core = CoreV1Api(client)

        async def hub_up() -> bool:
            try:
                async with api.get(f"{hub}/hub/api/") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(hub_up, 60, "JupyterHub up")
        for group, users in {"ml101-a": ["ada", "bob", "cem"], "intro": ["eve"]}.items():
            for user in users:
                async with api.post(f"{hub}/hub/api/users/{user}") as resp:
                    assert resp.status in (201, 409), await resp.text()
            async with api.post(f"{hub}/hub/api/groups/{group}", json={"users": users}) as resp:
                assert resp.status == 201, await resp.text()

        # ada logs in over HTTP and sees only her course on the spawn form
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as browser:
            async with browser.get(f"{hub}/hub/login") as resp:
                page = await resp.text()
            xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page)
            form = {"username": "ada", "password": "any"}
            if xsrf:
                form["_xsrf"] = xsrf.group(1)
            async with browser.post(f"{hub}/hub/login", data=form) as resp:
                assert resp.status == 200, await resp.text()
            async with browser.get(f"{hub}/hub/spawn") as resp:
                page = await resp.text()
            assert 'value="ml-101"' in page
            assert "cv-201" not in page and "intro-python" not in page
            assert "GPU slice 1g.10gb: 2 of 2 free" in page

        # eve is not in the course: 403 with a message naming the membership
        async with api.post(f"{hub}/hub/api/users/eve/server", json={"profile": "ml-101"}) as r:
            assert r.status == 403
            assert "ml101-a or ml101-b" in await r.text()

        async def start(user: str) -> None:
            async with api.post(
                f"{hub}/hub/api/users/{user}/server", json={"profile": "ml-101"}
            ) as r:
                assert r.status in (201, 202), await r.text()

        async def ready(user: str) -> bool:
            async with api.get(f"{hub}/hub/api/users/{user}") as resp:
                server = (await resp.json())["servers"].get("")
            return bool(server and server.get("ready"))

        async def stop(user: str) -> None:
            async with api.delete(f"{hub}/hub/api/users/{user}/server") as r:
                assert r.status in (202, 204), await r.text()

            async def gone() -> bool:
                async with api.get(f"{hub}/hub/api/users/{user}") as resp:
                    return "" not in (await resp.json())["servers"]

            await eventually(gone, 60, f"{user} stopped")

        await start("ada")
        await eventually(lambda: ready("ada"), 90, "ada ready")
        async with api.get(f"{hub}/user/ada/api/status") as resp:
            assert resp.status == 200
        note = {"type": "file", "format": "text", "content": "gradient descent"}
        async with api.put(f"{hub}/user/ada/api/contents/notes.txt", json=note) as resp:
            assert resp.status in (200, 201), await resp.text()
        pod = (await core.read_namespaced_pod("jupyter-ada", "default")).to_dict()
        assert pod["metadata"]["labels"]["labhub.io/course"] == "ml-101"
        assert pod["metadata"]["labels"]["labhub.io/seminar-group"] == "ml101-a"
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/mig-1g.10gb"] == "1"
        await stop("ada")
        pvc = await core.read_namespaced_persistent_volume_claim("claim-ada", "default")
        assert pvc.spec.storage_class_name == "ceph-rbd"

        # bob and cem take both slices; ada has to queue behind them
        await start("bob")
        await start("cem")
        await eventually(lambda: ready("bob"), 90, "bob ready")
        await eventually(lambda: ready("cem"), 90, "cem ready")
        await start("ada")

        async def queued_progress() -> str | None:
            async with api.get(f"{hub}/hub/api/users/ada/server/progress") as resp:
                async for line in resp.content:
                    text = line.decode()
                    if "position 1 of 1" in text:
                        return text
            return None

        message = await asyncio.wait_for(queued_progress(), 30)
        assert "Waiting for a 1g.10gb GPU slice: position 1 of 1" in message
        assert not await ready("ada")
        await stop("bob")
        await eventually(lambda: ready("ada"), 90, "ada admitted after bob stopped")
        async with api.get(f"{hub}/user/ada/api/contents/notes.txt") as resp:
            assert resp.status == 200
            assert (await resp.json())["content"] == "gradient descent"
        await stop("ada")
        await stop("cem")
