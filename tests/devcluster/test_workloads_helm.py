"""Helm 4 and kubectl drain against the development cluster: ``helm install --wait`` returns only
once the chart's Deployment is available through its readiness probe, and its Service forwards;
``kubectl drain`` evicts a node's pods through the eviction API."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from devcluster_helpers import kubectl
from hub_rbac import helm_binary
from workload_testing import Lab, http_get, lab, service, web_deployment

from hub_ext.devcluster.informer import request

__all__ = ["lab"]
pytestmark = pytest.mark.slow


def slow_web(name: str) -> dict[str, Any]:
    """The web Deployment whose server starts listening three seconds after it starts."""
    dep = web_deployment(name, "v1", 1)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["command"] = [
        container["command"][0],
        "-c",
        "import time; time.sleep(3)\n" + container["command"][2],
    ]
    return dep


async def test_helm_install_wait_returns_when_the_deployment_is_ready(
    lab: Lab, tmp_path: Path
) -> None:
    chart = tmp_path / "web-chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: web-chart\nversion: 0.1.0\n")
    (chart / "templates" / "web.yaml").write_text(
        json.dumps(slow_web("web")) + "\n---\n" + json.dumps(service("web")) + "\n"
    )
    env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig), "HELM_CACHE_HOME": str(tmp_path)}
    env.update(HELM_CONFIG_HOME=str(tmp_path / "config"), HELM_DATA_HOME=str(tmp_path / "data"))
    proc = await asyncio.create_subprocess_exec(
        helm_binary(),
        "install",
        "web",
        str(chart),
        "-n",
        "default",
        "--wait",
        "--timeout",
        "120s",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    assert "STATUS: deployed" in out.decode()
    # --wait returned: the pod is Ready through its probe, the Deployment Available
    dep = await request(
        lab.apps.read_namespaced_deployment("web", "default", _preload_content=False)
    )
    assert dep["status"]["availableReplicas"] == 1, dep["status"]
    pods = await request(
        lab.core.list_namespaced_pod("default", label_selector="app=web", _preload_content=False)
    )
    ready = [
        c["status"]
        for p in pods["items"]
        for c in p["status"].get("conditions") or []
        if c["type"] == "Ready"
    ]
    assert ready == ["True"]
    svc = await request(lab.core.read_namespaced_service("web", "default", _preload_content=False))
    body = await http_get(svc["spec"]["clusterIP"], 8080)
    assert body is not None and body.startswith("v1 web-"), body


async def test_kubectl_drain_evicts_the_pods_of_a_node(lab: Lab) -> None:
    kc = lab.kubeconfig
    await kubectl(kc, "apply", "-f", lab.manifest(web_deployment("web", "v1", 3)))
    await kubectl(kc, "rollout", "status", "deployment/web", "--timeout=90s")
    pods = await request(
        lab.core.list_namespaced_pod("default", label_selector="app=web", _preload_content=False)
    )
    node = pods["items"][0]["spec"]["nodeName"]
    out = await kubectl(kc, "drain", node, "--ignore-daemonsets", "--timeout=90s")
    assert f"node/{node} drained" in out, out
    assert "evicting pod default/web-" in out, out
    found = await request(lab.core.read_node(node, _preload_content=False))
    assert found["spec"].get("unschedulable") is True
    await kubectl(kc, "rollout", "status", "deployment/web", "--timeout=90s")
    pods = await request(
        lab.core.list_namespaced_pod("default", label_selector="app=web", _preload_content=False)
    )
    live = [p for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    assert live and all(p["spec"]["nodeName"] != node for p in live)
