"""Benchmark: pods created, bound and running per second on the development cluster.

Creates PODS pods (a trivial ``sleep`` command) through kubernetes_asyncio, with CONCURRENCY
requests in flight, and measures from the first create until the kubelets report every pod
``Running``. Target: at least 50 pods/s. ``--smoke`` creates 20 pods. Run with ``make bench``
or directly.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import benchlib
from kubernetes_asyncio.client import CoreV1Api

from hub_ext.devcluster.cluster import DevCluster
from hub_ext.devcluster.config import parse_cluster_config
from hub_ext.devcluster.informer import Informer, api_client, request

PODS = 200
CONCURRENCY = 16
TARGET = 50.0


def config():  # type: ignore[no-untyped-def]
    nodes = [
        {"name": f"bench-{i}", "zone": f"room-{i}", "cpu": 256, "memory": "1Ti", "pods": 1000}
        for i in range(2)
    ]
    return parse_cluster_config({"name": "bench", "nodes": nodes})


def pod(name: str, sleep: str) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "pods"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "main",
                    "image": "none",
                    "command": [sleep, "60"],
                    "resources": {"requests": {"cpu": "10m", "memory": "1Mi"}},
                }
            ],
        },
    }


async def main() -> None:
    sleep = shutil.which("sleep") or "/bin/sleep"
    state = Path(tempfile.mkdtemp(prefix="labhub-bench-"))
    try:
        async with DevCluster(config(), state) as cluster, api_client(cluster.api.url) as client:
            core = CoreV1Api(client)
            running: set[str] = set()
            done = asyncio.Event()

            def seen(kind: str, obj: dict) -> None:  # type: ignore[type-arg]
                if (obj.get("status") or {}).get("phase") == "Running":
                    running.add(obj["metadata"]["name"])
                    if len(running) >= PODS:
                        done.set()

            watcher = Informer(
                lambda **kw: core.list_namespaced_pod("default", label_selector="bench=pods", **kw),
                seen,
                "bench",
            )
            watcher.start()
            await watcher.synced.wait()
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(PODS):
                queue.put_nowait(i)

            async def creator() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    await request(
                        core.create_namespaced_pod(
                            "default", pod(f"bench-{i:05d}", sleep), _preload_content=False
                        )
                    )

            started = time.perf_counter()
            await asyncio.gather(*(creator() for _ in range(CONCURRENCY)))
            created = time.perf_counter() - started
            await asyncio.wait_for(done.wait(), 120)
            elapsed = time.perf_counter() - started
            await watcher.stop()
            rate = PODS / elapsed
            print(
                f"devcluster pods: {PODS} pods created in {created:.2f} s "
                f"({PODS / created:.0f} creates/s)"
            )
            print(
                f"devcluster pods: {PODS} pods created+bound+running in {elapsed:.2f} s: "
                f"{rate:.1f} pods/s"
            )
            benchlib.target(
                "devcluster-pods", f"{rate:.1f} pods/s", f">= {TARGET:.0f}/s", rate >= TARGET
            )
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    if benchlib.arguments(__doc__).smoke:
        PODS = 20
    asyncio.run(main())
