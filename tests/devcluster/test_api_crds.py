"""CustomResourceDefinitions, every kind the chart renders, and unknown kinds: kubectl and
kubernetes_asyncio against the emulated API server."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml
from api_testing import Api, api, kubectl
from kubernetes_asyncio.client import CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["api"]
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "bin" / "helm"


def crd(group: str, kind: str, plural: str, short: list[str] | None = None) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short or [],
                "categories": ["all"] if kind == "ServiceMonitor" else [],
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                    "subresources": {"status": {}},
                }
            ],
        },
    }


MONITOR = crd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", ["smon"])


def write_yaml(path: Path, *docs: dict) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


async def test_crd_objects_are_created_listed_patched_and_watched(api: Api, tmp_path: Path) -> None:
    kc = api.kubeconfig
    await kubectl(kc, "apply", "-f", str(write_yaml(tmp_path / "crd.yaml", MONITOR)))
    waited = await kubectl(
        kc, "wait", "--for=condition=established", "crd/servicemonitors.monitoring.coreos.com"
    )
    assert "condition met" in waited
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "hub", "labels": {"release": "prom"}},
        "spec": {"endpoints": [{"port": "http", "path": "/hub/metrics"}]},
    }
    created = await kubectl(kc, "apply", "-f", str(write_yaml(tmp_path / "m.yaml", monitor)))
    assert "servicemonitor.monitoring.coreos.com/hub created" in created
    listed = await kubectl(kc, "get", "smon")
    assert "hub" in listed
    assert "servicemonitors" in await kubectl(
        kc, "api-resources", "--api-group=monitoring.coreos.com"
    )
    custom = CustomObjectsApi(api.client)
    args = ("monitoring.coreos.com", "v1", "default", "servicemonitors")
    async with aiohttp.ClientSession() as session:
        url = f"{api.server.url}/apis/monitoring.coreos.com/v1/namespaces/default/servicemonitors"
        async with session.get(url, params={"watch": "1", "resourceVersion": "0"}) as stream:
            first = json.loads(await stream.content.readline())
            assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "hub"
            await custom.create_namespaced_custom_object(
                *args, {**monitor, "metadata": {"name": "proxy"}}
            )
            second = json.loads(await asyncio.wait_for(stream.content.readline(), 10))
            assert second["type"] == "ADDED" and second["object"]["metadata"]["name"] == "proxy"
            await custom.patch_namespaced_custom_object(
                *args,
                "proxy",
                {"metadata": {"labels": {"team": "lab"}}},
                _content_type="application/merge-patch+json",
            )
            third = json.loads(await asyncio.wait_for(stream.content.readline(), 10))
            assert third["type"] == "MODIFIED"
            assert third["object"]["metadata"]["labels"] == {"team": "lab"}
    found = await custom.list_namespaced_custom_object(*args)
    assert sorted(i["metadata"]["name"] for i in found["items"]) == ["hub", "proxy"]
    assert found["kind"] == "ServiceMonitorList"
    # deleting the definition removes its objects and the kind
    await kubectl(kc, "delete", "crd", "servicemonitors.monitoring.coreos.com")
    await asyncio.sleep(0.1)
    with pytest.raises(ApiException) as gone:
        await custom.list_namespaced_custom_object(*args)
    assert gone.value.status == 404


async def test_a_crd_is_validated_like_kubernetes(api: Api) -> None:
    bad = crd("example.com", "Widget", "widgets")
    bad["metadata"]["name"] = "widget.example.com"
    status, body = await api.raw(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", bad
    )
    assert status == 422
    assert (
        'metadata.name: Invalid value: "widget.example.com": must be spec.names.plural+"."+'
        in (body["message"])
    )


async def test_unknown_kinds_get_the_kubernetes_404(api: Api) -> None:
    status, body = await api.raw("GET", "/apis/example.com/v1/namespaces/default/widgets")
    assert status == 404
    assert body["message"] == "the server could not find the requested resource"
    assert body["reason"] == "NotFound"
    status, body = await api.raw("GET", "/apis/apps/v1/namespaces/default/widgets")
    assert (status, body["message"]) == (404, "the server could not find the requested resource")
    out = await kubectl(api.kubeconfig, "get", "widgets", check=False)
    assert 'error: the server doesn\'t have a resource type "widgets"' in out
    with pytest.raises(ApiException) as missing:
        await CustomObjectsApi(api.client).list_namespaced_custom_object(
            "example.com", "v1", "default", "widgets"
        )
    assert missing.value.status == 404


async def test_every_kind_the_chart_renders_is_stored_and_served(api: Api, tmp_path: Path) -> None:
    rendered = subprocess.run(
        [
            str(HELM),
            "template",
            "lab",
            str(ROOT / "helm" / "labhub"),
            "--namespace",
            "default",
            "-f",
            str(ROOT / "helm" / "labhub" / "ci" / "all-options-values.yaml"),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PrometheusRule", "HTTPRoute", "NetworkPolicy"} <= kinds
    crds = write_yaml(
        tmp_path / "crds.yaml",
        MONITOR,
        crd("monitoring.coreos.com", "PrometheusRule", "prometheusrules", ["promrule"]),
        crd("gateway.networking.k8s.io", "HTTPRoute", "httproutes"),
    )
    await kubectl(api.kubeconfig, "apply", "-f", str(crds))
    chart = tmp_path / "chart.yaml"
    chart.write_text(rendered)
    await kubectl(api.kubeconfig, "apply", "-n", "default", "-f", str(chart))
    for doc in docs:
        group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
        kind = f"{doc['kind'].lower()}.{group}" if group else doc["kind"].lower()
        name = doc["metadata"]["name"]
        got = await kubectl(api.kubeconfig, "get", kind, name, "-n", "default", "-o", "name")
        assert got.strip().endswith(f"/{name}"), (kind, name, got)
