"""The GPU idle culler against the emulated cluster and a real JupyterHub.

The hub runs the culler as a managed service with the command and scopes the Helm chart gives
it. Students' servers are light local processes (the hub only needs an HTTP answer); their pods
(built by the spawner's manifest code) live in the emulated cluster, where the culler reads them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from support import eventually, free_port, start_jupyterhub

from hub_ext.adapters.k8s.admission import ANNOTATION_ENQUEUED
from hub_ext.adapters.k8s.gpu_pods import gpu_pods_from_objects, list_gpu_pods
from hub_ext.core.admission.model import EntryKey, UserName
from hub_ext.core.manifests import PodRequest, build_pod
from hub_ext.core.profiles.model import GpuRequest
from hub_ext.demo.processes import stop_process_async
from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import parse_cluster_config

ROOT = Path(__file__).resolve().parents[2]
CHP = ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
# A student's server: answers 200 on JUPYTERHUB_SERVICE_URL, all the hub needs to route to it.
LIGHT_SERVER = """
import os, http.server, urllib.parse
url = urllib.parse.urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((url.hostname, url.port), H).serve_forever()
"""
SLICE = "1g.10gb"

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
c.JupyterHub.services = [
    {{"name": "test-admin", "api_token": {token!r}}},
    {{
        "name": "gpu-idle-culler",
        "command": [
            {python!r}, "-m", "hub_ext.services.gpu_culler",
            "--idle-timeout-when-queued=3", "--cull-every=1", "--min-queued=0",
            "--namespace=default",
        ],
        "environment": {{"KUBECONFIG": {kubeconfig!r}}},
    }},
]
c.JupyterHub.load_roles = [
    {{
        "name": "test-admin",
        "services": ["test-admin"],
        "scopes": ["admin:users", "admin:servers"],
    }},
    {{
        "name": "gpu-idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["gpu-idle-culler"],
    }},
]
"""


def pod(user: str, gpu: bool = True, queued_at: datetime | None = None) -> dict[str, Any]:
    manifest = build_pod(
        PodRequest(
            pod_name=f"jupyter-{user}",
            namespace="default",
            username=user,
            server_name="",
            course="ml-101",
            group="ml101-a",
            image="ignored",
            command=(sys.executable, "-c", "import time; time.sleep(300)"),
            port=8888,
            home_claim=f"claim-{user}",
            cpu_guarantee=0.01,
            cpu_limit=1,
            memory_guarantee=2**20,
            memory_limit=2**30,
            gpu=GpuRequest((SLICE,)) if gpu else None,
        )
    )
    manifest["spec"]["volumes"] = []
    manifest["spec"]["containers"][0]["volumeMounts"] = []
    if queued_at is None:
        manifest["spec"].pop("schedulingGates", None)
    else:
        manifest["metadata"]["annotations"][ANNOTATION_ENQUEUED] = queued_at.isoformat()
    return manifest


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[DevCluster]:
    nodes = [
        {
            "name": "gpu-a",
            "zone": "room-a",
            "cpu": 16,
            "memory": "64Gi",
            "gpus": {"model": "A100-SXM4-40GB", "migLayout": {SLICE: 2}},
        }
    ]
    config = parse_cluster_config({"name": "culler", "nodes": nodes})
    async with DevCluster(config, tmp_path / "cluster") as dev:
        yield dev


@pytest.fixture
async def core(cluster: DevCluster) -> AsyncIterator[CoreV1Api]:
    async with ApiClient(configuration=Configuration(host=cluster.api.url)) as api:
        yield CoreV1Api(api)


async def test_adapter_reads_queued_and_running_gpu_pods(core: CoreV1Api) -> None:
    queued = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    for manifest in (pod("gpu-a"), pod("cpu-c", gpu=False), pod("wait-w", queued_at=queued)):
        await core.create_namespaced_pod("default", manifest)
    now = datetime.now(UTC)
    found = await list_gpu_pods(core, "default", now)
    assert [(w.key, w.slice_types, w.queued_since) for w in found.waiters] == [
        (EntryKey(UserName("wait-w"), ""), (SLICE,), queued)
    ]
    assert [(s.key.user, s.slice_type, s.pod_name, s.stopping) for s in found.servers] == [
        ("gpu-a", SLICE, "jupyter-gpu-a", False)
    ]
    # a slice holder being deleted is reported as stopping (its slice is about to be free)
    objs = [core.api_client.sanitize_for_serialization(pod("gpu-a"))]
    objs[0]["metadata"]["deletionTimestamp"] = now.isoformat()
    assert [s.stopping for s in gpu_pods_from_objects(objs, now).servers] == [True]
    # a detached queued pod (its hub restarted) waits for nothing
    detached = pod("wait-x", queued_at=queued)
    detached["metadata"]["annotations"]["labhub.io/detached-at"] = now.isoformat()
    assert gpu_pods_from_objects([detached], now).waiters == ()


class Hub:
    def __init__(self, work: Path, kubeconfig: Path) -> None:
        self.work = work
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hub/api"
        self.token = secrets.token_hex(16)
        self.log = work / "hub.log"
        (work / "homes").mkdir()
        (work / "jupyterhub_config.py").write_text(
            HUB_CONFIG.format(
                port=self.port,
                hub_port=free_port(),
                proxy_api_port=free_port(),
                chp=str(CHP),
                home=str(work / "homes" / "{username}"),
                python=sys.executable,
                light=LIGHT_SERVER,
                token=self.token,
                kubeconfig=str(kubeconfig),
            )
        )
        self.proc: asyncio.subprocess.Process | None = None
        self.api: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "JUPYTER"))}
        with open(self.log, "wb") as log:
            self.proc = await start_jupyterhub(self.work, env, log)
        self.api = aiohttp.ClientSession(headers={"Authorization": f"token {self.token}"})
        await eventually(self._up, 60, "JupyterHub up")

    async def _up(self) -> bool:
        assert self.api is not None and self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"JupyterHub exited: {self.log_text()[-2000:]}")
        try:
            async with self.api.get(f"{self.url}/") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    async def stop(self) -> None:
        if self.api is not None:
            await self.api.close()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        await stop_process_async(proc, 20)

    async def spawn(self, user: str) -> None:
        assert self.api is not None
        async with self.api.post(f"{self.url}/users/{user}") as resp:
            assert resp.status in (201, 409), await resp.text()
        async with self.api.post(f"{self.url}/users/{user}/server") as resp:
            assert resp.status in (201, 202), await resp.text()
        await eventually(lambda: self.running(user), 30, f"{user}'s server ready")

    async def running(self, user: str) -> bool:
        assert self.api is not None
        async with self.api.get(f"{self.url}/users/{user}") as resp:
            server = (await resp.json())["servers"].get("")
        return bool(server and server.get("ready"))

    async def stopped(self, user: str) -> bool:
        return not await self.running(user)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
async def hub(tmp_path: Path, cluster: DevCluster) -> AsyncIterator[Hub]:
    if not CHP.exists():
        pytest.fail(f"configurable-http-proxy missing at {CHP}; run npm ci")
    running = Hub(tmp_path, cluster.kubeconfig)
    try:
        await running.start()
        yield running
    finally:
        await running.stop()


async def test_service_stops_the_longest_idle_gpu_server_per_waiting_student(
    hub: Hub, core: CoreV1Api
) -> None:
    # gpu-a started first (idle longest), then gpu-b; cpu-c has no GPU and is never culled
    await hub.spawn("cpu-c")
    await hub.spawn("gpu-a")
    await asyncio.sleep(1.5)
    await hub.spawn("gpu-b")
    for user, gpu in (("gpu-a", True), ("gpu-b", True), ("cpu-c", False)):
        await core.create_namespaced_pod("default", pod(user, gpu=gpu))
    await asyncio.sleep(4)  # everyone is now idle beyond the 3 s timeout; nobody waits
    assert [await hub.running(u) for u in ("gpu-a", "gpu-b", "cpu-c")] == [True, True, True]

    now = datetime.now(UTC)
    await core.create_namespaced_pod("default", pod("wait-1", queued_at=now - timedelta(1)))
    await eventually(lambda: hub.stopped("gpu-a"), 15, "gpu-a culled for wait-1")
    # one waiter, one cull: later checks see the freed slice and leave gpu-b alone
    await asyncio.sleep(3)
    assert await hub.running("gpu-b")
    assert await hub.running("cpu-c")

    await core.create_namespaced_pod("default", pod("wait-2", queued_at=now))
    await eventually(lambda: hub.stopped("gpu-b"), 15, "gpu-b culled for wait-2")
    await asyncio.sleep(2)
    assert await hub.running("cpu-c"), "a CPU-only server must never be culled"
    log = hub.log_text()
    assert "stopped server gpu-a (pod jupyter-gpu-a, HTTP 20" in log
    assert "while 1 student(s) wait for 1g.10gb (freed for wait-1)" in log
    assert "while 2 student(s) wait for 1g.10gb (freed for wait-2)" in log
    assert "stopped server cpu-c" not in log
