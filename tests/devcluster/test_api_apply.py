"""Server-side apply with the real kubectl and Helm 4, and through kubernetes_asyncio."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import api_testing
import pytest
from api_testing import Api, kubectl
from hub_rbac import helm_binary
from kubernetes_asyncio.client.exceptions import ApiException

api = api_testing.api  # the fixture: a running API server and an admin client

CONFIG_MAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: default
data:
  a: "{a}"
{extra}
"""


async def test_kubectl_apply_server_side_creates_updates_and_reports_conflicts(
    api: Api, tmp_path: Path
) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(CONFIG_MAP.format(a=1, extra='  b: "kept"'))
    kc = api.kubeconfig
    assert "configmap/settings serverside-applied" in await kubectl(
        kc, "apply", "--server-side", "-f", str(manifest)
    )
    manifest.write_text(CONFIG_MAP.format(a=2, extra=""))
    await kubectl(kc, "apply", "--server-side", "-f", str(manifest))
    live = await api.core.read_namespaced_config_map("settings", "default")
    assert live.data == {"a": "2"}  # b was applied before and is no longer: removed
    assert [(m.manager, m.operation) for m in live.metadata.managed_fields] == [
        ("kubectl", "Apply")
    ]
    manifest.write_text(CONFIG_MAP.format(a=3, extra=""))
    text = await kubectl(
        kc, "apply", "--server-side", "--field-manager", "grader", "-f", str(manifest), check=False
    )
    assert 'Apply failed with 1 conflict: conflict with "kubectl" using v1: .data.a' in text, text
    assert (await api.core.read_namespaced_config_map("settings", "default")).data == {"a": "2"}
    await kubectl(
        kc, "apply", "--server-side", "--field-manager", "grader", "--force-conflicts",
        "-f", str(manifest),
    )  # fmt: skip
    assert (await api.core.read_namespaced_config_map("settings", "default")).data == {"a": "3"}


async def test_apply_through_kubernetes_asyncio(api: Api) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}}
    status, created = await api.raw(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/x?fieldManager=labhub",
        json.dumps(body),
        "application/apply-patch+yaml",
    )
    assert status == 201 and created["metadata"]["managedFields"][0]["fieldsV1"] == {
        "f:data": {"f:k": {}}
    }
    status, error = await api.raw(
        "PATCH", "/api/v1/namespaces/default/configmaps/x", json.dumps(body),
        "application/apply-patch+yaml",
    )  # fmt: skip
    assert status == 400 and error["message"] == "PATCH request must specify fieldManager"
    with pytest.raises(ApiException) as mismatch:
        await api.core.patch_namespaced_config_map(
            "x",
            "default",
            {**body, "metadata": {"name": "y"}},
            field_manager="labhub",
            _content_type="application/apply-patch+yaml",
        )
    assert mismatch.value.status == 400


async def test_helm_install_upgrade_and_uninstall(api: Api, tmp_path: Path) -> None:
    chart = tmp_path / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tiny\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        CONFIG_MAP.format(a="{{ .Values.a }}", extra="").replace("  namespace: default\n", "")
    )
    (chart / "values.yaml").write_text("a: 1\n")
    env = {**os.environ, "KUBECONFIG": str(api.kubeconfig), "HELM_CACHE_HOME": str(tmp_path)}
    env.update(HELM_CONFIG_HOME=str(tmp_path / "config"), HELM_DATA_HOME=str(tmp_path / "data"))

    async def helm(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            helm_binary(), *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()
        return out.decode()

    assert "STATUS: deployed" in await helm("install", "tiny", str(chart), "-n", "default")
    installed = await api.core.read_namespaced_config_map("settings", "default")
    assert installed.data == {"a": "1"}, installed
    await helm("upgrade", "tiny", str(chart), "-n", "default", "--set", "a=2")
    assert (await api.core.read_namespaced_config_map("settings", "default")).data == {"a": "2"}
    await helm("uninstall", "tiny", "-n", "default")
    names = {c.metadata.name for c in (await api.core.list_namespaced_config_map("default")).items}
    assert "settings" not in names
