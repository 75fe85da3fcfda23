"""The chart's continuous pre-puller on the development cluster: rendered with the real helm,
applied with kubectl to a lab of tainted GPU nodes, CPU-only core nodes and a CPU worker, it runs
one pod on each GPU node and none elsewhere, pulling the digests of images.lock.yaml."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import ROOT, one, render
from kubernetes_asyncio.client import AppsV1Api, CoreV1Api

from hub_ext.devcluster.cluster import DevCluster, DevClusterOptions
from hub_ext.devcluster.config import parse_cluster_config, reference_lab_path
from hub_ext.devcluster.informer import api_client, request

pytestmark = pytest.mark.slow
KUBECTL = shutil.which("kubectl") or str(ROOT / ".tools" / "bin" / "kubectl")
NAME = "gpulab-labhub-continuous-image-puller"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
LOCK = {
    "cv-201": "registry.lab.example.edu/courses/cv-201:2026.11@sha256:" + "d" * 64,
    "ml-101": "registry.lab.example.edu/courses/ml-101:2026.11@sha256:" + "e" * 64,
}


def lab_file(tmp: Path) -> Path:
    """The reference lab with its GPU nodes tainted, plus a CPU-only worker node."""
    lab = yaml.safe_load(reference_lab_path().read_text())
    for node in lab["nodes"]:
        if node.get("gpus"):
            node["taints"] = [GPU_TAINT]
    lab["nodes"].append(
        {"name": "room-a-cpu-1", "zone": "room-a", "cpu": 32, "memory": "128Gi",
         "labels": {"labhub.io/role": "cpu"}}
    )  # fmt: skip
    path = tmp / "lab.yaml"
    path.write_text(yaml.safe_dump(lab))
    return path


async def kubectl(kubeconfig: Path, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed: {out.decode()}"
    return out.decode()


def _pulled_everywhere(pods: list[dict[str, Any]], nodes: set[str]) -> bool:
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    if {p["spec"].get("nodeName") for p in live} != nodes or len(live) != len(nodes):
        return False
    for pod in live:
        status = pod.get("status") or {}
        inits = status.get("initContainerStatuses") or []
        done = [((s.get("state") or {}).get("terminated") or {}).get("exitCode") for s in inits]
        running = [
            (s.get("state") or {}).get("running") for s in status.get("containerStatuses") or []
        ]
        if status.get("phase") != "Running" or done != [0] * len(LOCK) or not all(running):
            return False
    return True


async def test_the_continuous_puller_runs_on_each_gpu_node_and_nowhere_else(
    tmp_path: Path,
) -> None:
    lock = tmp_path / "images.lock.yaml"
    lock.write_text(yaml.safe_dump(LOCK))
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"prePuller": {"imagesLock": lock.read_text()}}))
    daemonset = one(render("defaults-values.yaml", values), "DaemonSet", NAME)
    manifest = tmp_path / "puller.yaml"
    manifest.write_text(yaml.safe_dump(daemonset))

    config = parse_cluster_config(yaml.safe_load(lab_file(tmp_path).read_text()))
    gpu_nodes = {n.name for n in config.nodes if n.gpus is not None}
    assert len(gpu_nodes) == 4 and len(config.nodes) == 7
    cluster = DevCluster(config, tmp_path / "state", DevClusterOptions(heartbeat_seconds=0.5))
    async with cluster, api_client(cluster.api.url) as client:
        kc = cluster.kubeconfig
        await kubectl(kc, "create", "namespace", "labhub")
        out = await kubectl(kc, "apply", "-n", "labhub", "-f", str(manifest))
        assert f"daemonset.apps/{NAME} created" in out
        out = await kubectl(
            kc, "rollout", "status", "-n", "labhub", f"daemonset/{NAME}", "--timeout=120s"
        )
        assert "successfully rolled out" in out, out
        core = CoreV1Api(client)
        pods: list[dict[str, Any]] = []
        for _ in range(240):
            listing = await request(core.list_namespaced_pod("labhub", _preload_content=False))
            pods = listing["items"]
            if _pulled_everywhere(pods, gpu_nodes):
                break
            await asyncio.sleep(0.5)
        else:
            raise AssertionError(f"pre-puller pods not running on {sorted(gpu_nodes)}: {pods}")
        for pod in pods:
            images = [c["image"] for c in pod["spec"]["initContainers"]]
            assert images == [LOCK["cv-201"], LOCK["ml-101"]]
            assert [c["image"] for c in pod["spec"]["containers"]] == ["registry.k8s.io/pause:3.10"]
        apps = AppsV1Api(client)
        ds = await request(apps.read_namespaced_daemon_set(NAME, "labhub", _preload_content=False))
        status = ds["status"]
        assert status["desiredNumberScheduled"] == 4 and status["numberReady"] == 4, status
