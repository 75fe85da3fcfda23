"""Benchmark: watch event latency of the emulated API server with 1,000 pods.

The API server runs in its own process. The benchmark creates PODS pods, opens WATCHERS pod
watches (all pods, a label selector, a field selector, like the scheduler, kubelets and the
spawner do), then patches every pod's status with the send time in ``status.message``, and measures
from just before each patch is sent until each watcher has parsed the event. Target: p99 under
50 ms. ``--smoke`` uses 30 pods. Run with ``make bench`` or directly
(``python tests/bench/bench_devcluster_watch.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api

PODS = 1000
CONCURRENCY = 8
TARGET_P99_MS = 50.0
SERVER = """
import asyncio, sys
from pathlib import Path
from hub_ext.devcluster.apiserver import ApiServer

async def main():
    server = ApiServer(Path(sys.argv[1]))
    await server.start()
    print(server.url, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()

asyncio.run(main())
"""
WATCHES = (
    {},
    {"label_selector": "bench=watch"},
    {"label_selector": "bench in (watch),tier!=system"},
    {"field_selector": "status.phase=Running"},
    {"field_selector": "metadata.namespace=default"},
)


def pod(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"bench-{i:05d}", "labels": {"bench": "watch"}},
        "spec": {"containers": [{"name": "main", "image": "none", "command": ["sleep", "60"]}]},
    }


async def watcher(core: CoreV1Api, kwargs: dict[str, Any], rv: str, out: list[float]) -> None:
    resp = await core.list_pod_for_all_namespaces(
        watch=True, resource_version=rv, timeout_seconds=600, _preload_content=False, **kwargs
    )
    try:
        while True:
            line = await resp.content.readline()
            if not line:
                return
            event = json.loads(line)
            sent = (event["object"].get("status") or {}).get("message")
            if event["type"] in ("ADDED", "MODIFIED") and sent:
                out.append(time.time() - float(sent))
    finally:
        resp.close()


async def run(url: str) -> None:
    config = Configuration(host=url)
    async with ApiClient(configuration=config) as client:
        core = CoreV1Api(client)
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(PODS):
            queue.put_nowait(i)

        async def create() -> None:
            while not queue.empty():
                resp = await core.create_namespaced_pod(
                    "default", pod(queue.get_nowait()), _preload_content=False
                )
                resp.release()

        started = time.perf_counter()
        await asyncio.gather(*(create() for _ in range(CONCURRENCY)))
        created = time.perf_counter() - started
        listed = await core.list_pod_for_all_namespaces(_preload_content=False)
        rv = json.loads(await listed.read())["metadata"]["resourceVersion"]
        latencies: list[list[float]] = [[] for _ in WATCHES]
        tasks = [
            asyncio.create_task(watcher(core, kw, rv, out))
            for kw, out in zip(WATCHES, latencies, strict=True)
        ]
        await asyncio.sleep(0.5)
        for i in range(PODS):
            queue.put_nowait(i)

        async def patch() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = {"status": {"phase": "Running", "message": repr(time.time())}}
                resp = await core.patch_namespaced_pod_status(
                    f"bench-{i:05d}", "default", body, _preload_content=False
                )
                resp.release()

        started = time.perf_counter()
        await asyncio.gather(*(patch() for _ in range(CONCURRENCY)))
        patched = time.perf_counter() - started
        deadline = time.monotonic() + 30
        while any(len(o) < PODS for o in latencies):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    report(created, patched, latencies)


def report(created: float, patched: float, latencies: list[list[float]]) -> None:
    every = sorted(ms * 1000 for out in latencies for ms in out)
    print(f"devcluster watch: {PODS} pods created in {created:.2f} s ({PODS / created:.0f}/s)")
    print(
        f"devcluster watch: {PODS} status patches in {patched:.2f} s ({PODS / patched:.0f}/s), "
        f"{len(WATCHES)} watchers, {len(every)} events received"
    )
    if not every:
        print("devcluster watch: no events received")
        benchlib.target("devcluster-watch-p99", "no events", f"< {TARGET_P99_MS:.0f} ms", False)
        return
    p50 = statistics.median(every)
    p99 = every[min(len(every) - 1, int(len(every) * 0.99))]
    print(
        f"devcluster watch: event latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {every[-1]:.1f} ms"
    )
    benchlib.target(
        "devcluster-watch-p99", f"{p99:.1f} ms", f"< {TARGET_P99_MS:.0f} ms", p99 < TARGET_P99_MS
    )


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="labhub-bench-") as state:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SERVER,
            str(Path(state)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            url = (await proc.stdout.readline()).decode().strip()
            await run(url)
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


if __name__ == "__main__":
    if benchlib.arguments(__doc__).smoke:
        PODS = 30
    asyncio.run(main())
