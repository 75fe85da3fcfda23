"""Scheduler, kubelet, volumes and faults, driven through kubernetes_asyncio and kubectl."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest_asyncio
from devcluster_helpers import (
    MIG,
    get_pod,
    kubectl,
    pid_alive,
    pod_manifest,
    two_node_config,
)
from kubernetes_asyncio.client import CoreV1Api
from support import eventually

from hub_ext.devcluster.api_logs import pod_log_path
from hub_ext.devcluster.cluster import DevCluster, DevClusterOptions
from hub_ext.devcluster.informer import api_client, request

PY = sys.executable
SERVER = (
    "import http.server, os, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = os.environ['TOKEN'].encode()\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "import signal\n"
    "signal.signal(signal.SIGTERM, lambda *a: (print('terminating', flush=True), sys.exit(0)))\n"
    "print('listening on', sys.argv[1], flush=True)\n"
    "http.server.HTTPServer((sys.argv[1], 8000), H).serve_forever()\n"
)


@pytest_asyncio.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[DevCluster]:
    options = DevClusterOptions(heartbeat_seconds=0.2, eviction_timeout=1.0, monitor_grace=30)
    async with DevCluster(two_node_config(), tmp_path / "state", options) as running:
        yield running


@pytest_asyncio.fixture
async def core(cluster: DevCluster) -> AsyncIterator[CoreV1Api]:
    async with api_client(cluster.api.url) as client:
        yield CoreV1Api(client)


async def create(core: CoreV1Api, body: dict[str, Any], namespace: str = "default") -> None:
    await request(core.create_namespaced_pod(namespace, body, _preload_content=False))


async def waiting_reason(core: CoreV1Api, name: str, *reasons: str) -> dict[str, Any] | None:
    pod = await get_pod(core, name)
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if (status.get("state") or {}).get("waiting", {}).get("reason") in reasons:
            return pod
    return None


async def phase_is(core: CoreV1Api, name: str, *phases: str) -> dict[str, Any] | None:
    pod = await get_pod(core, name)
    return pod if pod and pod.get("status", {}).get("phase") in phases else None


async def events_for(core: CoreV1Api, name: str) -> list[dict[str, Any]]:
    events = await request(
        core.list_namespaced_event(
            "default", field_selector=f"involvedObject.name={name}", _preload_content=False
        )
    )
    return list(events["items"])


async def test_pod_runs_on_its_own_ip_with_env_from_a_secret(
    cluster: DevCluster, core: CoreV1Api
) -> None:
    secret = {"metadata": {"name": "tok"}, "stringData": {"token": "s3cret"}}
    await request(core.create_namespaced_secret("default", secret, _preload_content=False))
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "tok", "key": "token"}}}]
    body = pod_manifest(
        "web", [PY, "-c", SERVER], args=["0.0.0.0"], env=env, resources={"limits": {MIG: "1"}}
    )
    await create(core, body)
    pod = await eventually(lambda: phase_is(core, "web", "Running"), what="web running")
    status = pod["status"]
    assert status["podIP"].startswith("127.") and status["podIP"] != "127.0.0.1"
    assert status["hostIP"] and status["startTime"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "True" and conditions["PodScheduled"] == "True"
    assert status["containerStatuses"][0]["state"]["running"]["startedAt"]
    url = f"http://{status['podIP']}:8000/"

    async def fetch() -> str | None:
        try:
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                return await resp.text()
        except aiohttp.ClientError:
            return None

    assert await eventually(fetch, what="pod server") == "s3cret"
    logs = await kubectl(cluster.kubeconfig, "logs", "web")
    assert f"listening on {status['podIP']}" in logs
    reasons = {e["reason"] for e in await events_for(core, "web")}
    assert {"Scheduled", "Started"} <= reasons
    pid = int(status["containerStatuses"][0]["containerID"].split("//")[1])
    assert pid_alive(pid)
    as_yaml = await kubectl(cluster.kubeconfig, "get", "pod", "web", "-o", "yaml")
    assert f"podIP: {status['podIP']}" in as_yaml
    out = await kubectl(cluster.kubeconfig, "delete", "pod", "web", "--timeout=20s")
    assert 'pod "web" deleted' in out
    assert await get_pod(core, "web") is None
    assert not pid_alive(pid)


async def test_exit_code_ends_the_pod(cluster: DevCluster, core: CoreV1Api) -> None:
    await create(core, pod_manifest("ok", [PY, "-c", "print('done')"]))
    await create(core, pod_manifest("bad", [PY, "-c", "raise SystemExit(3)"]))
    await eventually(lambda: phase_is(core, "ok", "Succeeded"), what="ok succeeded")
    pod = await eventually(lambda: phase_is(core, "bad", "Failed"), what="bad failed")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"
    assert "done" in await kubectl(cluster.kubeconfig, "logs", "ok")
    await create(core, pod_manifest("image-only", []))
    pod = await eventually(
        lambda: waiting_reason(core, "image-only", "ErrImagePull", "ImagePullBackOff"), what="pull"
    )
    assert pod["status"]["phase"] == "Pending"  # as with an image that cannot be pulled
    warnings = [e["message"] for e in await events_for(core, "image-only")]
    assert any(
        'Failed to pull image "ignored:latest"' in m and "kubelet.images" in m for m in warnings
    )


async def test_deletion_waits_the_grace_period_then_kills(
    cluster: DevCluster, core: CoreV1Api
) -> None:
    stubborn = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: print('ignoring TERM', flush=True))\n"
        "print('up', flush=True)\n"
        "while True: time.sleep(1)\n"
    )
    body = pod_manifest("stubborn", [PY, "-c", stubborn], terminationGracePeriodSeconds=1)
    await create(core, body)
    await eventually(lambda: phase_is(core, "stubborn", "Running"), what="stubborn runs")
    log = pod_log_path(cluster.state_dir, "default", "stubborn", "main")

    async def up() -> bool:
        return log.exists() and "up" in log.read_text()

    await eventually(up, what="process up")
    started = asyncio.get_running_loop().time()
    await request(core.delete_namespaced_pod("stubborn", "default", _preload_content=False))
    await eventually(lambda: _gone(core, "stubborn"), what="pod removed")
    assert asyncio.get_running_loop().time() - started >= 1.0
    assert "ignoring TERM" in log.read_text()


async def test_unschedulable_pods_wait_for_capacity(cluster: DevCluster, core: CoreV1Api) -> None:
    sleep = [PY, "-c", "import time; time.sleep(60)"]
    for name in ("s1", "s2", "s3"):
        await create(core, pod_manifest(name, sleep, resources={"limits": {MIG: "1"}}))
        if name != "s3":
            await eventually(lambda n=name: phase_is(core, n, "Running"), what=f"{name} runs")
    nodes = {(await get_pod(core, n))["spec"]["nodeName"] for n in ("s1", "s2")}
    assert nodes == {"gpu-a", "gpu-b"}
    message = f"0/2 nodes are available: 2 Insufficient {MIG}."

    async def failed_event() -> list[str]:
        return [
            e["message"] for e in await events_for(core, "s3") if e["reason"] == "FailedScheduling"
        ]

    assert await eventually(failed_event, what="FailedScheduling") == [message]
    pod = await get_pod(core, "s3")
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", message)
    described = await kubectl(cluster.kubeconfig, "get", "events", "-A")
    assert "FailedScheduling" in described
    await kubectl(cluster.kubeconfig, "delete", "pod", "s1", "--grace-period=1")
    await eventually(lambda: phase_is(core, "s3", "Running"), what="s3 runs after s1 left")


async def test_gates_and_scheduler_names(cluster: DevCluster, core: CoreV1Api) -> None:
    sleep = [PY, "-c", "import time; time.sleep(60)"]
    await create(core, pod_manifest("gated", sleep, schedulingGates=[{"name": "labhub.io/queue"}]))
    await create(core, pod_manifest("other", sleep, schedulerName="someone-else"))

    async def gated_condition() -> dict[str, Any] | None:
        pod = await get_pod(core, "gated")
        conds = pod.get("status", {}).get("conditions") or []
        return next((c for c in conds if c.get("reason") == "SchedulingGated"), None)

    cond = await eventually(gated_condition, what="SchedulingGated condition")
    assert cond["status"] == "False" and cond["type"] == "PodScheduled"
    other = await get_pod(core, "other")
    assert not other["spec"].get("nodeName") and not other.get("status", {}).get("conditions")
    patch = {"spec": {"schedulingGates": None}}
    await request(
        core.patch_namespaced_pod(
            "gated",
            "default",
            patch,
            _content_type="application/merge-patch+json",
            _preload_content=False,
        )
    )
    await eventually(lambda: phase_is(core, "gated", "Running"), what="ungated pod runs")
    other = await get_pod(core, "other")
    assert other["status"].get("phase", "Pending") == "Pending" and not other["spec"].get(
        "nodeName"
    )


async def test_volumes_persist_across_pods(cluster: DevCluster, core: CoreV1Api) -> None:
    claim = {
        "metadata": {"name": "home-ada"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    await request(
        core.create_namespaced_persistent_volume_claim("default", claim, _preload_content=False)
    )
    volume = {
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "home-ada"}}],
        "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
    }
    write = "open('/home/jovyan/notes.txt', 'w').write('kept')"
    await create(core, pod_manifest("writer", [PY, "-c", write], args=[], **volume))
    await eventually(lambda: phase_is(core, "writer", "Succeeded"), what="writer done")
    read = "print(open('/home/jovyan/notes.txt').read())"
    await create(core, pod_manifest("reader", [PY, "-c", read], **volume))
    await eventually(lambda: phase_is(core, "reader", "Succeeded", "Failed"), what="reader done")
    logs = await kubectl(cluster.kubeconfig, "logs", "reader")
    assert logs == "kept\n"  # at its mount path, in the container's mount namespace
    assert (
        cluster.state_dir / "volumes" / "default" / "home-ada" / "notes.txt"
    ).read_text() == "kept"

    async def bound() -> bool:
        claim = await request(
            core.read_namespaced_persistent_volume_claim(
                "home-ada", "default", _preload_content=False
            )
        )
        return bool(claim.get("status", {}).get("phase") == "Bound")

    await eventually(bound, what="claim bound")
    listing = await kubectl(cluster.kubeconfig, "get", "nodes,pods,pvc,events", "-A")
    assert "gpu-a" in listing and "home-ada" in listing
    volumes = await request(core.list_persistent_volume(_preload_content=False))
    assert [v["spec"]["claimRef"]["name"] for v in volumes["items"]] == ["home-ada"]
    await kubectl(cluster.kubeconfig, "delete", "pvc", "home-ada")

    async def released() -> bool:
        volumes = await request(core.list_persistent_volume(_preload_content=False))
        return not volumes["items"]

    await eventually(released, what="volume released")
    kept = cluster.state_dir / "volumes" / "default" / "home-ada" / "notes.txt"
    assert kept.read_text() == "kept"


async def test_not_ready_node_evicts_its_pods(cluster: DevCluster, core: CoreV1Api) -> None:
    sleep = [PY, "-c", "import time; time.sleep(60)"]
    await create(
        core, pod_manifest("victim", sleep, nodeSelector={"kubernetes.io/hostname": "gpu-a"})
    )
    pod = await eventually(lambda: phase_is(core, "victim", "Running"), what="victim runs")
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("//")[1])
    await cluster.set_node_ready("gpu-a", False)
    out = await kubectl(cluster.kubeconfig, "get", "nodes")
    assert any(line.split()[:2] == ["gpu-a", "NotReady"] for line in out.splitlines())
    await eventually(lambda: _gone(core, "victim"), what="eviction", timeout=20)
    assert not pid_alive(pid)
    reasons = {e["reason"] for e in await events_for(core, "victim")}
    assert "TaintManagerEviction" in reasons
    pinned = pod_manifest("pinned", sleep, nodeSelector={"kubernetes.io/hostname": "gpu-a"})
    await create(core, pinned)

    async def refused() -> str | None:
        pod = await get_pod(core, "pinned")
        conds = pod.get("status", {}).get("conditions") or []
        return next((c["message"] for c in conds if c.get("reason") == "Unschedulable"), None)

    message = await eventually(refused, what="pinned unschedulable")
    assert "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }" in message
    await cluster.set_node_ready("gpu-a", True)
    await eventually(lambda: phase_is(core, "pinned", "Running"), what="pinned runs", timeout=20)


async def _gone(core: CoreV1Api, name: str) -> bool:
    return await get_pod(core, name) is None


async def test_controllers_resume_after_dropped_watches_and_restart(
    cluster: DevCluster, core: CoreV1Api
) -> None:
    quick = [PY, "-c", "print('hi')"]
    cluster.api.drop_watches()
    await create(core, pod_manifest("after-drop", quick))
    await eventually(lambda: phase_is(core, "after-drop", "Succeeded"), what="after drop")
    await cluster.api.restart()

    async def created() -> bool:
        try:
            await create(core, pod_manifest("after-restart", quick))
        except aiohttp.ClientError:
            return False
        return True

    await eventually(created, what="API back")
    await eventually(lambda: phase_is(core, "after-restart", "Succeeded"), what="after restart")


async def test_controllers_ride_out_injected_errors_and_latency(
    cluster: DevCluster, core: CoreV1Api
) -> None:
    faults = cluster.api.faults
    faults.inject_error("create", "pods/binding", 500, times=3)
    faults.inject_error("patch", "pods/status", 503, times=3)
    faults.inject_latency("patch", "pods/status", 0.2)
    await create(core, pod_manifest("sturdy", [PY, "-c", "raise SystemExit(7)"]))
    pod = await eventually(lambda: phase_is(core, "sturdy", "Failed"), what="pod through faults")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 7
    faults.clear()


async def test_a_restarted_cluster_keeps_objects_and_reruns_its_pods(tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = "import os; print(os.getpid(), flush=True); import time; time.sleep(120)"
    async with DevCluster(two_node_config(), state) as first, api_client(first.api.url) as client:
        core = CoreV1Api(client)
        await create(core, pod_manifest("keeper", [PY, "-c", script]))
        pod = await eventually(lambda: phase_is(core, "keeper", "Running"), what="keeper runs")
        first_pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("//")[1])
    assert not pid_alive(first_pid)
    async with DevCluster(two_node_config(), state) as second, api_client(second.api.url) as client:
        core = CoreV1Api(client)

        async def rerun() -> int | None:
            pod = await get_pod(core, "keeper")
            statuses = (pod or {}).get("status", {}).get("containerStatuses") or [{}]
            cid = statuses[0].get("containerID", "")
            return int(cid.split("//")[1]) if cid and cid != f"devcluster://{first_pid}" else None

        second_pid = await eventually(rerun, what="pod started again after the restart")
        assert pid_alive(second_pid)


async def test_stopping_the_cluster_leaves_no_processes(tmp_path: Path) -> None:
    code = (
        "import subprocess, sys, time\n"
        f"c = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(120)'])\n"
        "print(c.pid, flush=True); time.sleep(120)\n"
    )
    async with (
        DevCluster(two_node_config(), tmp_path / "s") as cluster,
        api_client(cluster.api.url) as client,
    ):
        core = CoreV1Api(client)
        await create(core, pod_manifest("sleeper", [PY, "-c", code]))
        # restarted containers and sidecars must not come back while the cluster stops
        marker = f"import time; time.sleep(120)  # {tmp_path}"
        always = pod_manifest("always", [PY, "-c", marker])
        sidecar = {**always["spec"]["containers"][0], "name": "side", "restartPolicy": "Always"}
        always["spec"].update(restartPolicy="Always", initContainers=[sidecar])
        await create(core, always)
        pod = await eventually(lambda: phase_is(core, "sleeper", "Running"), what="sleeper")
        pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("//")[1])
        running = await eventually(lambda: phase_is(core, "always", "Running"), what="always")
        status = running["status"]
        others = [
            int(c["containerID"].split("//")[1])
            for c in status["containerStatuses"] + status["initContainerStatuses"]
        ]

        async def child_pid() -> int | None:
            text = await kubectl(cluster.kubeconfig, "logs", "sleeper")
            return int(text.split()[0]) if text.strip() else None

        child = await eventually(child_pid, what="child pid")
        assert pid_alive(pid) and pid_alive(child)
    await asyncio.sleep(0.1)
    assert not pid_alive(pid) and not pid_alive(child)
    assert not any(pid_alive(p) for p in others)
    left = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert not left  # no container started again during the stop
