"""Fixtures and manifests for the workload controller tests: a cluster with a movable clock."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
import yaml
from kubernetes_asyncio.client import ApiClient, AppsV1Api, BatchV1Api, CoreV1Api

from hub_ext.devcluster.cluster import DevCluster, DevClusterOptions
from hub_ext.devcluster.config import parse_cluster_config
from hub_ext.devcluster.informer import api_client

PY = sys.executable
SERVER = (
    "import http.server, os, sys\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = (os.environ['VERSION'] + ' ' + os.environ['POD_NAME']).encode()\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer((sys.argv[1], 8000), H).serve_forever()\n"
)


@dataclass
class Clock:
    """Real time plus an offset that tests move forward."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Lab:
    cluster: DevCluster
    client: ApiClient
    clock: Clock
    tmp: Path
    written: list[Path] = field(default_factory=list)

    @property
    def core(self) -> CoreV1Api:
        return CoreV1Api(self.client)

    @property
    def apps(self) -> AppsV1Api:
        return AppsV1Api(self.client)

    @property
    def batch(self) -> BatchV1Api:
        return BatchV1Api(self.client)

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    def manifest(self, *docs: dict[str, Any]) -> str:
        path = self.tmp / f"manifest-{len(self.written)}.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        self.written.append(path)
        return str(path)


def lab_config() -> Any:
    """Two GPU nodes (label ``lab.example/role=gpu``) and one CPU node."""
    nodes = [
        {
            "name": "gpu-a",
            "zone": "room-a",
            "cpu": 16,
            "memory": "64Gi",
            "labels": {"lab.example/role": "gpu"},
        },
        {
            "name": "gpu-b",
            "zone": "room-b",
            "cpu": 16,
            "memory": "64Gi",
            "labels": {"lab.example/role": "gpu"},
        },
        {"name": "cpu-c", "zone": "room-a", "cpu": 16, "memory": "64Gi"},
    ]
    return parse_cluster_config({"name": "workloads", "nodes": nodes})


@pytest_asyncio.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    clock = Clock()
    options = DevClusterOptions(heartbeat_seconds=0.2, monitor_grace=30, clock=clock)
    cluster = DevCluster(lab_config(), tmp_path / "state", options)
    async with cluster, api_client(cluster.api.url) as client:
        yield Lab(cluster, client, clock, tmp_path)


def web_deployment(name: str, version: str, replicas: int = 2, **strategy: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy or {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [
                        {
                            "name": "web",
                            "image": "registry.example/web:1",
                            "command": [PY, "-c", SERVER],
                            "args": ["0.0.0.0"],
                            "ports": [{"name": "http", "containerPort": 8000}],
                            # Ready (and the Deployment Available) once the server answers
                            "readinessProbe": {
                                "httpGet": {"path": "/", "port": "http"},
                                "periodSeconds": 1,
                            },
                            "env": [
                                {"name": "VERSION", "value": version},
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                            ],
                        }
                    ],
                },
            },
        },
    }


def service(name: str, port: int = 8080, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
            **spec,
        },
    }


def command_pod_spec(code: str, restart: str = "Never") -> dict[str, Any]:
    return {
        "restartPolicy": restart,
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {"name": "main", "image": "registry.example/task:1", "command": [PY, "-c", code]}
        ],
    }


async def http_get(host: str, port: int, timeout: float = 5.0) -> str | None:
    """The body of GET / at host:port, or None when nothing answers."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"http://{host}:{port}/", timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp,
        ):
            return await resp.text()
    except (TimeoutError, aiohttp.ClientError, OSError):
        return None
