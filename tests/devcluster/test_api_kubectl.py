"""kubectl against the emulated API server: discovery, tables, YAML output, deletion."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from api_testing import Api, api, kubectl, pod

from hub_ext.devcluster.apiserver import pod_log_path

__all__ = ["api"]
pytestmark = pytest.mark.slow


async def test_kubectl_get_describe_and_delete(api: Api) -> None:
    kc = api.kubeconfig
    resp = await api.core.create_node(
        {
            "metadata": {"name": "gpu-a"},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"kubeletVersion": "v1.35.0"},
            },
        },
        _preload_content=False,
    )
    assert resp.status == 201
    resp.release()
    created = await api.core.create_namespaced_pod("default", pod("jupyter-ada"))
    await api.core.create_namespaced_persistent_volume_claim(
        "default",
        {
            "metadata": {"name": "claim-ada"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    await api.core.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "jupyter-ada.1"},
            "type": "Warning",
            "reason": "FailedScheduling",
            "message": "0/1 nodes are available",
            "involvedObject": {
                "kind": "Pod",
                "name": "jupyter-ada",
                "namespace": "default",
                "uid": created.metadata.uid,
            },
        },
    )
    table = await kubectl(kc, "get", "nodes,pods,pvc,events", "-A")
    assert "node/gpu-a" in table and "Ready" in table and "v1.35.0" in table
    assert "default     pod/jupyter-ada" in table and "Pending" in table
    assert "persistentvolumeclaim/claim-ada" in table
    assert "FailedScheduling" in table and "pod/jupyter-ada" in table
    as_yaml = await kubectl(kc, "get", "pod", "jupyter-ada", "-o", "yaml")
    assert "name: jupyter-ada" in as_yaml and "phase: Pending" in as_yaml
    as_json = json.loads(await kubectl(kc, "get", "pods", "-o", "json", "-l", "missing!=x"))
    assert [p["metadata"]["name"] for p in as_json["items"]] == ["jupyter-ada"]
    resources = await kubectl(kc, "api-resources")
    for name in ("volumesnapshots", "leases", "storageclasses", "endpointslices"):
        assert name in resources
    described = await kubectl(kc, "describe", "pod", "jupyter-ada")
    assert "FailedScheduling" in described and "0/1 nodes are available" in described
    deleted = await kubectl(kc, "delete", "pod", "jupyter-ada")
    assert 'pod "jupyter-ada" deleted' in deleted
    missing = await kubectl(kc, "get", "pod", "jupyter-ada", check=False)
    assert "NotFound" in missing
    await kubectl(kc, "label", "pvc", "claim-ada", "course=ml")
    labelled = await kubectl(kc, "get", "pvc", "-l", "course in (ml)", "-o", "name")
    assert labelled.strip() == "persistentvolumeclaim/claim-ada"
    version = await kubectl(kc, "version", "-o", "json")
    assert json.loads(version)["serverVersion"]["minor"] == "35"


async def test_kubectl_logs_and_forced_delete(api: Api) -> None:
    kc = api.kubeconfig
    await api.core.create_namespaced_pod("default", pod("logger"))
    resp = await api.core.create_namespaced_pod_binding(
        "logger", "default", {"target": {"name": "gpu-a"}}, _preload_content=False
    )
    resp.release()
    path = pod_log_path(api.server.state_dir, "default", "logger", "main")
    path.parent.mkdir(parents=True)
    path.write_text("hello from the lab\n")
    assert await kubectl(kc, "logs", "logger") == "hello from the lab\n"
    await kubectl(kc, "delete", "pod", "logger", "--wait=false")
    terminating = await kubectl(kc, "get", "pod", "logger")
    assert "Terminating" in terminating
    await kubectl(kc, "delete", "pod", "logger", "--grace-period=0", "--force")
    assert "NotFound" in await kubectl(kc, "get", "pod", "logger", check=False)


async def test_kubectl_apply_creates_and_updates(api: Api, tmp_path: Path) -> None:
    manifest = tmp_path / "settings.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
        "  labels:\n    course: ml\ndata:\n  mode: lab\n"
    )
    assert "configmap/settings created" in await kubectl(
        api.kubeconfig, "apply", "-f", str(manifest)
    )
    manifest.write_text(manifest.read_text().replace("mode: lab", "mode: exam"))
    assert "configmap/settings configured" in await kubectl(
        api.kubeconfig, "apply", "-f", str(manifest)
    )
    stored = await api.core.read_namespaced_config_map("settings", "default")
    assert stored.data == {"mode": "exam"} and stored.metadata.labels == {"course": "ml"}


async def test_watch_can_stream_table_rows_for_kubectl(api: Api) -> None:
    await api.core.create_namespaced_pod("default", pod("row"))
    headers = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{api.server.url}/api/v1/namespaces/default/pods?watch=true", headers=headers
        ) as resp,
    ):
        event = json.loads(await resp.content.readline())
    assert event["type"] == "ADDED" and event["object"]["kind"] == "Table"
    assert event["object"]["rows"][0]["cells"][:3] == ["row", "0/1", "Pending"]
    assert event["object"]["rows"][0]["object"]["metadata"]["name"] == "row"
