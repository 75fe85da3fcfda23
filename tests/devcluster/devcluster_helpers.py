"""Shared helpers for the development cluster tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, TypeVar

from hub_ext.devcluster.config import ClusterConfig, parse_cluster_config
from hub_ext.devcluster.informer import request

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl") or str(ROOT / ".tools" / "bin" / "kubectl")
MIG = "nvidia.com/mig-1g.10gb"


def two_node_config(slices_per_node: int = 1) -> ClusterConfig:
    """Two nodes in two rooms, each with one A100 carrying ``slices_per_node`` 1g.10gb slices."""
    nodes = [
        {
            "name": name,
            "zone": zone,
            "cpu": 8,
            "memory": "32Gi",
            "gpus": {"model": "A100-SXM4-40GB", "migLayout": {"1g.10gb": slices_per_node}},
        }
        for name, zone in (("gpu-a", "room-a"), ("gpu-b", "room-b"))
    ]
    return parse_cluster_config({"name": "test", "nodes": nodes})


async def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> str:
    """Run kubectl against the cluster without blocking the event loop."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode()
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {text}")
    return text


def pod_manifest(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "ignored:latest", "command": command}
    for key in ("env", "args", "resources", "volumeMounts"):
        if key in spec:
            container[key] = spec.pop(key)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], "restartPolicy": "Never", **spec},
    }


async def get_pod(core: Any, name: str, namespace: str = "default") -> dict[str, Any] | None:
    from kubernetes_asyncio.client.exceptions import ApiException

    try:
        return await request(core.read_namespaced_pod(name, namespace, _preload_content=False))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def pid_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split()[2] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
