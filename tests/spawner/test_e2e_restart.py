"""The hub restarts while students wait for slices: running servers are kept, queued students keep
their place, and no slice is booked twice."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from test_e2e_spawn import (
    CHP,
    HERE,
    HUB_CONFIG,
    VENV_BIN,
    cluster_config,
    eventually,
    free_port,
)

from hub_ext.devcluster.cluster import DevCluster


async def start_hub(hub_dir: Path, env: dict[str, str]) -> Any:
    log = open(hub_dir / "hub.log", "ab")  # noqa: SIM115 - closed by stop_hub
    proc = await asyncio.create_subprocess_exec(
        str(VENV_BIN / "jupyterhub"),
        "-f",
        "jupyterhub_config.py",
        cwd=hub_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log_file = log
    return proc


async def stop_hub(proc: Any) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.log_file.close()


@pytest.mark.slow
async def test_hub_restart_keeps_servers_and_queue(tmp_path: Path) -> None:
    token = secrets.token_hex(16)
    port = free_port()
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    config = HUB_CONFIG.format(
        here=str(HERE),
        port=port,
        hub_port=free_port(),
        proxy_api_port=free_port(),
        chp=str(CHP),
        token=token,
        singleuser=str(VENV_BIN / "jupyterhub-singleuser"),
        extra_args=["--allow-root"] if os.geteuid() == 0 else [],
    )
    config += "c.JupyterHub.cleanup_servers = False\n"
    (hub_dir / "jupyterhub_config.py").write_text(config)
    hub_url = f"http://127.0.0.1:{port}"
    async with DevCluster(cluster_config(), tmp_path / "state") as cluster:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
        env.update(KUBECONFIG=str(cluster.kubeconfig), PATH=f"{VENV_BIN}:{env['PATH']}")
        hubs = [await start_hub(hub_dir, env)]
        try:
            async with (
                aiohttp.ClientSession(headers={"Authorization": f"token {token}"}) as api,
                ApiClient(configuration=Configuration(host=cluster.api.url)) as client,
            ):
                await _scenario(api, CoreV1Api(client), hub_url, hubs, hub_dir, env)
        except BaseException:
            print((hub_dir / "hub.log").read_text()[-8000:])
            raise
        finally:
            for hub in hubs:
                await stop_hub(hub)


async def _scenario(
    api: aiohttp.ClientSession, core: CoreV1Api, hub: str, hubs: list[Any], hub_dir: Path, env: Any
) -> None:
    async def hub_up() -> bool:
        try:
            async with api.get(f"{hub}/hub/api/") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def start(user: str) -> None:
        async with api.post(f"{hub}/hub/api/users/{user}/server", json={"profile": "ml-101"}) as r:
            assert r.status in (201, 202, 400), await r.text()

    async def ready(user: str) -> bool:
        async with api.get(f"{hub}/hub/api/users/{user}") as resp:
            server = (await resp.json())["servers"].get("")
        return bool(server and server.get("ready"))

    async def gated() -> list[str]:
        pods = (await core.list_namespaced_pod("default")).items
        return sorted(p.metadata.name for p in pods if p.spec.scheduling_gates)

    await eventually(hub_up, 60, "JupyterHub up")
    users = ["ada", "bob", "cem", "dan"]
    for user in users:
        async with api.post(f"{hub}/hub/api/users/{user}") as resp:
            assert resp.status == 201
    async with api.post(f"{hub}/hub/api/groups/ml101-a", json={"users": users}) as resp:
        assert resp.status == 201
    await start("bob")
    await start("cem")
    await eventually(lambda: ready("bob"), 90, "bob ready")
    await eventually(lambda: ready("cem"), 90, "cem ready")
    bob_uid = (await core.read_namespaced_pod("jupyter-bob", "default")).metadata.uid
    await start("ada")
    await asyncio.sleep(0.5)
    await start("dan")
    await eventually(
        lambda: _equal(gated(), ["jupyter-ada", "jupyter-dan"]), 30, "ada and dan queued"
    )

    await stop_hub(hubs.pop())
    hubs.append(await start_hub(hub_dir, env))
    await eventually(hub_up, 60, "JupyterHub up again")
    assert await ready("bob") and await ready("cem")
    assert (await core.read_namespaced_pod("jupyter-bob", "default")).metadata.uid == bob_uid
    async with api.get(f"{hub}/user/bob/api/status") as resp:
        assert resp.status == 200
    # dan presses Start first after the restart, ada second: ada keeps her earlier place
    await start("dan")
    await start("ada")
    assert sorted(await gated()) == ["jupyter-ada", "jupyter-dan"]
    async with api.delete(f"{hub}/hub/api/users/bob/server") as resp:
        assert resp.status in (202, 204)
    await eventually(lambda: ready("ada"), 90, "ada admitted first")
    assert await gated() == ["jupyter-dan"]
    assert not await ready("dan")
    pods = (await core.list_namespaced_pod("default")).items
    holding = [p for p in pods if not p.spec.scheduling_gates and not p.metadata.deletion_timestamp]
    assert len(holding) <= 2


async def _equal(probe: Any, expected: list[str]) -> bool:
    return await probe == expected
