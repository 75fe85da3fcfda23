"""Injected errors and latency, in process and over the /_devcluster control paths."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from api_testing import Api, api, client_for, pod
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.apiserver import ApiServer

__all__ = ["api"]


async def test_injected_errors_are_status_objects_and_run_out(api: Api) -> None:
    rule = api.server.faults.inject_error("create", "pods", 503, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as failed:
            await api.core.create_namespaced_pod("default", pod("p"))
        assert failed.value.status == 503 and '"kind": "Status"' in failed.value.body
    await api.core.create_namespaced_pod("default", pod("p"))
    assert rule.hits == 2 and api.server.faults.rules == []
    api.server.faults.inject_error("patch", "pods/status", 500)
    await api.core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(ApiException) as status_failed:
        await api.core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    assert status_failed.value.status == 500
    api.server.faults.clear()
    await api.core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    api.server.faults.inject_error("*", "*", 429)
    with pytest.raises(ApiException) as throttled:
        await api.core.list_namespace()
    assert throttled.value.status == 429
    api.server.faults.clear()
    with pytest.raises(ValueError, match="unknown verb"):
        api.server.faults.inject_error("frobnicate", "pods", 500)


async def test_injected_latency(api: Api) -> None:
    rule = api.server.faults.inject_latency("list", "configmaps", 0.3)
    start = time.monotonic()
    await api.core.list_namespaced_config_map("default")
    assert time.monotonic() - start >= 0.3
    await api.core.list_namespaced_secret("default")
    await api.core.create_namespaced_config_map("default", {"metadata": {"name": "fast"}})
    assert rule.hits == 1  # only lists of configmaps are delayed


async def test_http_controls(api: Api) -> None:
    status, rule = await api.raw(
        "POST",
        "/_devcluster/faults",
        {"kind": "error", "verb": "get", "resource": "configmaps", "status": 500, "times": 1},
    )
    assert status == 201 and rule["kind"] == "error" and rule["times"] == 1
    status, listed = await api.raw("GET", "/_devcluster/faults")
    assert [r["id"] for r in listed["rules"]] == [rule["id"]]
    await api.core.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
    with pytest.raises(ApiException) as failed:
        await api.core.read_namespaced_config_map("c", "default")
    assert failed.value.status == 500
    await api.core.read_namespaced_config_map("c", "default")
    status, latency = await api.raw(
        "POST",
        "/_devcluster/faults",
        {"kind": "latency", "verb": "*", "resource": "*", "seconds": 0.01},
    )
    assert status == 201
    status, _ = await api.raw("DELETE", f"/_devcluster/faults/{latency['id']}")
    assert status == 200 and api.server.faults.rules == []
    status, bad = await api.raw("POST", "/_devcluster/faults", {"kind": "error", "verb": "get"})
    assert status == 400 and "status" in bad["message"]
    status, dropped = await api.raw("POST", "/_devcluster/drop-watches")
    assert status == 200 and dropped == {"closed": 0}
    status, _ = await api.raw("POST", "/_devcluster/restart")
    assert status == 202
    async with asyncio.timeout(5):
        while api.server._restarting is not None:
            await asyncio.sleep(0.05)
    read = await api.core.read_namespaced_config_map("c", "default")
    assert read.metadata.name == "c"


async def test_the_kubeconfig_token_is_checked_on_the_secure_port(tmp_path: Path) -> None:
    server = ApiServer(token="lab-token")
    await server.start()
    try:
        client = await client_for(server.write_kubeconfig(tmp_path / "kubeconfig"))
        async with client:
            names = [n.metadata.name for n in (await CoreV1Api(client).list_namespace()).items]
            assert "default" in names
        async with aiohttp.ClientSession() as session:
            url = f"{server.secure_url}/api/v1/namespaces"
            async with session.get(url, ssl=False) as resp:
                body = await resp.json()
            assert resp.status == 403, body
            assert body["message"] == (
                'namespaces is forbidden: User "system:anonymous" cannot list resource '
                '"namespaces" in API group "" at the cluster scope'
            )
            for base, ssl in ((server.secure_url, False), (server.url, None)):
                headers = {"Authorization": "Bearer not-a-token"}
                async with session.get(
                    f"{base}/api/v1/namespaces", headers=headers, ssl=ssl
                ) as resp:
                    body = await resp.json()
                assert resp.status == 401 and body["kind"] == "Status", body
                assert body["message"] == "Unauthorized" and body["reason"] == "Unauthorized"
    finally:
        await server.stop()
