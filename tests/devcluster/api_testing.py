"""Fixtures for the API server tests: a running server and a kubernetes_asyncio client."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from kubernetes_asyncio.config import load_kube_config

from hub_ext.devcluster.apiserver.server import ApiServer

ROOT = Path(__file__).resolve().parents[2]
TOOLS_KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
KUBECTL = str(TOOLS_KUBECTL) if TOOLS_KUBECTL.exists() else shutil.which("kubectl") or "kubectl"


@dataclass
class Api:
    server: ApiServer
    client: ApiClient
    kubeconfig: Path

    @property
    def core(self) -> CoreV1Api:
        return CoreV1Api(self.client)

    async def raw(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, Any]:
        """A plain HTTP request (for bodies the typed client cannot send)."""
        data = body if isinstance(body, bytes | str) or body is None else None
        async with aiohttp.ClientSession() as session:
            kwargs: dict[str, Any] = {"headers": {"Content-Type": content_type}}
            if data is not None:
                kwargs["data"] = data
            elif body is not None:
                kwargs["json"] = body
            async with session.request(method, self.server.url + path, **kwargs) as resp:
                text = await resp.text()
                try:
                    return resp.status, json.loads(text)
                except ValueError:
                    return resp.status, text


def pod(name: str, **spec: Any) -> dict[str, Any]:
    labels = spec.pop("labels", None)
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}], **spec},
    }
    if labels:
        body["metadata"]["labels"] = labels
    return body


async def client_for(kubeconfig: Path) -> ApiClient:
    config = Configuration()
    await load_kube_config(config_file=str(kubeconfig), client_configuration=config)
    return ApiClient(configuration=config)


@pytest_asyncio.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    server = ApiServer(tmp_path / "state")
    server.bookmark_interval = 0.2
    await server.start()
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    client = await client_for(kubeconfig)
    try:
        yield Api(server, client, kubeconfig)
    finally:
        await client.close()
        await server.stop()


async def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode()
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {text}")
    return text
