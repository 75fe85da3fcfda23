"""GPU-idle culling against a real Prometheus scraping a DCGM-format test exporter.

Prometheus (the Debian package's binary) runs on loopback with a one-second scrape interval and
scrapes an exporter written here, which serves dcgm-exporter's metrics for two students' pods:
one GPU idle, one busy. The hub is a real JupyterHub, the pods live in the devcluster.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from support import eventually, free_port, start_jupyterhub
from test_gpu_culler import CHP, LIGHT_SERVER, SLICE, pod

from hub_ext.adapters.hub_api import HubApi, HubApiSettings
from hub_ext.adapters.prometheus import PrometheusSettings, gpu_utilisation
from hub_ext.core.cull import CullPolicy
from hub_ext.demo.processes import stop_process_async
from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import parse_cluster_config
from hub_ext.services.gpu_culler import CullerConfig, GpuSource, cull_once

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
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {home!r}
c.Spawner.cmd = [{python!r}, "-c", {light!r}]
c.Spawner.args = []
c.JupyterHub.services = [{{"name": "culler", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "culler", "services": ["culler"], "scopes": ["admin:users", "admin:servers"]}},
]
"""


def dcgm_metrics() -> str:
    """What dcgm-exporter serves for two MIG slices of one A100 in Kubernetes mode."""
    lines = [
        "# HELP DCGM_FI_PROF_GR_ENGINE_ACTIVE Ratio of time the graphics engine is active.",
        "# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge",
    ]
    base = 'gpu="0",UUID="GPU-5c1f",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",'
    for gi, (user, active) in enumerate((("gpu-idle", 0.0), ("gpu-busy", 0.87)), start=1):
        lines.append(
            f'DCGM_FI_PROF_GR_ENGINE_ACTIVE{{{base}GPU_I_PROFILE="{SLICE}",GPU_I_ID="{gi}",'
            f'Hostname="gpu-a",container="notebook",namespace="default",pod="jupyter-{user}"}} '
            f"{active}"
        )
    # a cluster where profiling metrics are off only has the utilisation in percent
    lines += [
        "# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).",
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge",
        f'DCGM_FI_DEV_GPU_UTIL{{{base}namespace="other-lab",pod="jupyter-x"}} 42',
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
async def exporter() -> AsyncIterator[int]:
    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=dcgm_metrics(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


class Prometheus:
    def __init__(self, work: Path, target_port: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        work.mkdir(parents=True)
        (work / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: dcgm\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{target_port}']}}]\n"
        )
        self.work = work
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed; run .ci/system-deps (Debian prometheus)")
        log = open(self.work / "prometheus.log", "wb")  # noqa: SIM115 (kept for the process)
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={self.work / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.work / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()

        async def has_data() -> bool:
            settings = PrometheusSettings(self.url)
            try:
                async with aiohttp.ClientSession() as session:
                    usage = await gpu_utilisation(
                        session, settings, "default", timedelta(seconds=5)
                    )
            except Exception:
                return False
            return len(usage.peak_percent) == 2

        await eventually(has_data, 60, "Prometheus scraped the exporter", interval=0.5)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            await stop_process_async(proc, 20)


@pytest.fixture
async def prometheus(tmp_path: Path, exporter: int) -> AsyncIterator[Prometheus]:
    running = Prometheus(tmp_path / "prometheus", exporter)
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def lab(
    tmp_path: Path,
) -> AsyncIterator[tuple[CoreV1Api, HubApi, aiohttp.ClientSession, str]]:
    nodes = [
        {
            "name": "gpu-a",
            "zone": "room-a",
            "cpu": 16,
            "memory": "64Gi",
            "gpus": {"model": "A100-SXM4-40GB", "migLayout": {SLICE: 2}},
        }
    ]
    config = parse_cluster_config({"name": "gpu-idle", "nodes": nodes})
    work = tmp_path / "hub"
    (work / "homes").mkdir(parents=True)
    port, token = free_port(), secrets.token_hex(16)
    (work / "jupyterhub_config.py").write_text(
        HUB_CONFIG.format(
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=str(CHP),
            home=str(work / "homes" / "{username}"),
            python=sys.executable,
            light=LIGHT_SERVER,
            token=token,
        )
    )
    url = f"http://127.0.0.1:{port}/hub/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "JUPYTER"))}
    async with DevCluster(config, tmp_path / "cluster") as dev:
        with open(work / "hub.log", "wb") as log:
            proc = await start_jupyterhub(work, env, log)
        session = aiohttp.ClientSession(headers={"Authorization": f"token {token}"})
        try:
            async with (
                ApiClient(configuration=Configuration(host=dev.api.url)) as api,
                HubApi(HubApiSettings(url, token)) as hub,
            ):

                async def up() -> bool:
                    try:
                        async with session.get(f"{url}/") as resp:
                            return resp.status == 200
                    except aiohttp.ClientError:
                        return False

                await eventually(up, 60, "JupyterHub up")
                yield CoreV1Api(api), hub, session, url
        finally:
            await session.close()
            await stop_process_async(proc, 20)


async def _running(session: aiohttp.ClientSession, url: str, user: str) -> bool:
    async with session.get(f"{url}/users/{user}") as resp:
        server = (await resp.json())["servers"].get("")
    return bool(server and server.get("ready"))


async def _spawn(session: aiohttp.ClientSession, url: str, user: str) -> None:
    async with session.post(f"{url}/users/{user}") as resp:
        assert resp.status in (201, 409)
    async with session.post(f"{url}/users/{user}/server") as resp:
        assert resp.status in (201, 202), await resp.text()
    await eventually(lambda: _running(session, url, user), 60, f"{user}'s server ready")


def _config(prometheus_url: str) -> CullerConfig:
    policy = CullPolicy(
        idle_timeout_when_queued=timedelta(seconds=2),
        min_queued=timedelta(0),
        gpu_idle_timeout=timedelta(seconds=3),
    )
    return CullerConfig("default", policy, 1.0, prometheus=PrometheusSettings(prometheus_url))


async def test_idle_gpu_is_stopped_busy_kept_and_without_prometheus_the_hub_rule_returns(
    prometheus: Prometheus,
    lab: tuple[CoreV1Api, HubApi, aiohttp.ClientSession, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    core, hub, session, url = lab
    for user in ("gpu-idle", "gpu-busy"):
        await _spawn(session, url, user)
        await core.create_namespaced_pod("default", pod(user))
    now = datetime.now(UTC)
    await core.create_namespaced_pod("default", pod("wait-1", queued_at=now - timedelta(1)))
    await asyncio.sleep(4)  # both servers are now older than the 3 s GPU window
    cfg = _config(prometheus.url)
    gpu = GpuSource(cfg.prometheus)
    try:
        # both are idle by the hub's measure (2 s); the GPU says only one is
        orders = await cull_once(core, hub, cfg, gpu=gpu)
        assert [o.key.user for o in orders] == ["gpu-idle"]
        await eventually(lambda: _not(_running(session, url, "gpu-idle")), 30, "gpu-idle stopped")
        assert await _running(session, url, "gpu-busy")

        # Prometheus goes away: the culler says so once and falls back to the hub rule
        await prometheus.stop()
        await core.delete_namespaced_pod("jupyter-gpu-idle", "default", grace_period_seconds=0)
        await core.delete_namespaced_pod("jupyter-wait-1", "default", grace_period_seconds=0)
        await core.create_namespaced_pod(
            "default", pod("wait-2", queued_at=datetime.now(UTC) - timedelta(1))
        )
        with caplog.at_level(logging.INFO, logger="hub_ext.gpu_culler"):
            orders = await cull_once(core, hub, cfg, [], gpu=gpu)
            assert [o.key.user for o in orders] == ["gpu-busy"]
            await cull_once(core, hub, cfg, [], gpu=gpu)
        outage = [r for r in caplog.records if "culling by hub activity only" in r.getMessage()]
        assert len(outage) == 1
        assert f"127.0.0.1:{prometheus.port}" in outage[0].getMessage()
        await eventually(lambda: _not(_running(session, url, "gpu-busy")), 30, "gpu-busy stopped")
    finally:
        await gpu.close()


async def _not(probe: Any) -> bool:
    return not await probe


async def test_utilisation_falls_back_to_dev_gpu_util(prometheus: Prometheus) -> None:
    async with aiohttp.ClientSession() as session:
        settings = PrometheusSettings(prometheus.url)
        profiled = await gpu_utilisation(session, settings, "default", timedelta(seconds=5))
        plain = await gpu_utilisation(session, settings, "other-lab", timedelta(seconds=5))
    assert profiled.metric == "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
    assert profiled.idle_pods(5.0) == {"jupyter-gpu-idle"}
    assert profiled.peak_percent["jupyter-gpu-busy"] == pytest.approx(87.0)
    assert plain.metric == "DCGM_FI_DEV_GPU_UTIL"
    assert plain.peak_percent == {"jupyter-x": 42.0}
