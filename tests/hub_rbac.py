"""The hub's Kubernetes credentials in the end-to-end tests: the chart's own hub RBAC.

``templates/hub/rbac.yaml`` is rendered from helm/ with the real helm binary, its
ServiceAccount, Role, RoleBinding, ClusterRole and ClusterRoleBinding are created in the
development cluster, and a token for the ServiceAccount is requested through TokenRequest. The
hub then talks to the API server's HTTPS port with that token only, so every request it makes
is authorized by the chart's grants as a real cluster would authorize it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from hub_ext.devcluster.apiserver import write_kubeconfig
from hub_ext.devcluster.cluster import DevCluster

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "labhub"
HUB_RBAC = "templates/hub/rbac.yaml"
_PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
}


def helm_binary() -> str:
    """helm 4: $LABHUB_HELM, .tools/bin/helm, or helm on PATH (as the chart's tests find it)."""
    for candidate in (os.environ.get("LABHUB_HELM"), str(ROOT / ".tools" / "bin" / "helm")):
        if candidate and Path(candidate).is_file():
            return candidate
    found = shutil.which("helm")
    assert found, "helm not found: run .ci/install-helm (installs .tools/bin/helm)"
    return found


def render_hub_rbac(namespace: str, *sets: str) -> list[dict[str, Any]]:
    """The hub's RBAC objects as ``helm template`` renders them for ``namespace``."""
    args = [helm_binary(), "template", "labhub", str(CHART), "--namespace", namespace]
    args += ["-f", str(CHART / "ci" / "defaults-values.yaml"), "--show-only", HUB_RBAC]
    for item in sets:
        args += ["--set", item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


async def hub_kubeconfig(
    cluster: DevCluster, path: Path, namespace: str = "default", rules: Any = None
) -> Path:
    """Create the chart's hub RBAC in ``cluster`` and write a kubeconfig with its token.

    ``rules``, when given, is called with each rendered object and may change it (the negative
    tests remove a grant this way).
    """
    docs = render_hub_rbac(namespace)
    account = next(d for d in docs if d["kind"] == "ServiceAccount")["metadata"]["name"]
    async with aiohttp.ClientSession(base_url=cluster.api.url) as session:
        for doc in docs:
            if rules is not None:
                rules(doc)
            url = _PATHS[doc["kind"]].format(ns=namespace)
            async with session.post(url, json=doc) as resp:
                assert resp.status in (201, 409), await resp.text()
        token_url = f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token"
        body = {"spec": {"expirationSeconds": 24 * 3600}}
        async with session.post(token_url, json=body) as resp:
            answer = json.loads(await resp.text())
            assert resp.status == 201, answer
    token = answer["status"]["token"]
    return write_kubeconfig(
        path, cluster.api.secure_url, cluster.api.gate.ca_pem, token, namespace, account
    )
