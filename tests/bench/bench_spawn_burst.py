"""Class-start burst: 50 students of ml-101 press Start at once on the reference lab (40 slices).

Runs a real JupyterHub with LabKubeSpawner, configurable-http-proxy, the emulated reference lab and
real jupyterhub-singleuser processes, and prints:

* per-spawn time from the spawn request to "ready" (includes the single-user process start-up,
  which dominates on the emulator), p50 / p95, for the 40 students who get a slice;
* how many students were queued and the queue message they saw;
* the hub's responsiveness while the burst runs: /hub/health latency p50 / p99 (an upper bound on
  the hub's event-loop lag);
* the hub process's resident memory before and after the burst.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "spawner"))

from test_e2e_restart import start_hub, stop_hub  # noqa: E402
from test_e2e_spawn import CHP, HERE, HUB_CONFIG, VENV_BIN, eventually, free_port  # noqa: E402

from hub_ext.devcluster.cluster import DevCluster  # noqa: E402
from hub_ext.devcluster.config import load_cluster_config  # noqa: E402

STUDENTS = 50


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def main() -> None:
    token = secrets.token_hex(16)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        hub_dir = Path(tmp) / "hub"
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
        (hub_dir / "jupyterhub_config.py").write_text(
            config
            + "c.JupyterHub.concurrent_spawn_limit = 0\nc.JupyterHub.active_server_limit = 0\n"
            + "c.LabKubeSpawner.http_timeout = 300\nc.LabKubeSpawner.start_timeout = 300\n"
        )
        hub_url = f"http://127.0.0.1:{port}"
        lab = ROOT / "hub_ext" / "devcluster" / "data" / "reference-lab.yaml"
        async with DevCluster(load_cluster_config(lab), Path(tmp) / "state") as cluster:
            env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
            env.update(KUBECONFIG=str(cluster.kubeconfig), PATH=f"{VENV_BIN}:{env['PATH']}")
            hub = await start_hub(hub_dir, env)
            try:
                await burst(hub, hub_url, token)
            finally:
                await stop_hub(hub)


async def burst(hub: object, url: str, token: str) -> None:
    headers = {"Authorization": f"token {token}"}
    users = [f"s{i:02d}" for i in range(STUDENTS)]
    async with aiohttp.ClientSession(headers=headers) as api:

        async def up() -> bool:
            try:
                async with api.get(f"{url}/hub/api/") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(up, 60, "hub up")
        for u in users:
            async with api.post(f"{url}/hub/api/users/{u}") as r:
                assert r.status == 201
        async with api.post(f"{url}/hub/api/groups/ml101-a", json={"users": users}) as r:
            assert r.status == 201
        before = rss_mib(hub.pid)  # type: ignore[attr-defined]
        health: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not done.is_set():
                t = time.perf_counter()
                async with api.get(f"{url}/hub/health") as r:
                    await r.read()
                health.append((time.perf_counter() - t) * 1000)
                await asyncio.sleep(0.05)

        async def spawn(u: str) -> float | None:
            t = time.perf_counter()
            async with api.post(f"{url}/hub/api/users/{u}/server", json={"profile": "ml-101"}) as r:
                assert r.status in (201, 202), await r.text()
            while time.perf_counter() - t < 240:
                async with api.get(f"{url}/hub/api/users/{u}") as r:
                    server = (await r.json())["servers"].get("")
                if server and server.get("ready"):
                    return time.perf_counter() - t
                await asyncio.sleep(0.25)
            return None

        prober = asyncio.create_task(probe())
        results = await asyncio.gather(*(spawn(u) for u in users[:40]))
        queued_msg = ""
        spawn_tasks = [asyncio.create_task(spawn(u)) for u in users[40:]]

        async def queued() -> str:
            async with api.get(f"{url}/hub/api/users/{users[-1]}/server/progress") as r:
                async for line in r.content:
                    if b"position" in line:
                        return line.decode().strip()
            return ""

        try:
            queued_msg = await asyncio.wait_for(queued(), 60)
        except TimeoutError:
            queued_msg = "(no queue message within 60 s)"
        done.set()
        await prober
        for task in spawn_tasks:
            task.cancel()
        await asyncio.gather(*spawn_tasks, return_exceptions=True)
        after = rss_mib(hub.pid)  # type: ignore[attr-defined]
        times = [t for t in results if t is not None]
        print(f"students: {STUDENTS}, slices: 40, ready: {len(times)}")
        print(
            f"spawn request -> ready (incl. single-user start-up): p50 "
            f"{statistics.median(times):.2f} s, p95 {pct(times, 0.95):.2f} s"
        )
        print(f"queued student saw: {queued_msg[:160]}")
        print(
            f"/hub/health latency during burst: p50 {pct(health, 0.5):.1f} ms, "
            f"p99 {pct(health, 0.99):.1f} ms ({len(health)} probes)"
        )
        print(f"hub RSS: before {before:.0f} MiB, after {after:.0f} MiB")
        await asyncio.gather(*(api.delete(f"{url}/hub/api/users/{u}/server") for u in users))


if __name__ == "__main__":
    asyncio.run(main())
