"""Graceful deletion, finalizers, namespace and collection deletion."""

from __future__ import annotations

import asyncio

import pytest
from api_testing import Api, api, pod
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["api"]
MERGE = "application/merge-patch+json"


async def bound_pod(api: Api, name: str, **spec: object) -> None:
    await api.core.create_namespaced_pod("default", pod(name, **spec))
    resp = await api.core.create_namespaced_pod_binding(
        name, "default", {"target": {"name": "gpu-a"}}, _preload_content=False
    )
    assert resp.status == 201
    resp.release()


async def gone(api: Api, name: str) -> bool:
    try:
        await api.core.read_namespaced_pod(name, "default")
    except ApiException as exc:
        return exc.status == 404
    return False


async def test_unbound_and_finished_pods_are_removed_at_once(api: Api) -> None:
    await api.core.create_namespaced_pod("default", pod("pending"))
    deleted = await api.core.delete_namespaced_pod("pending", "default")
    assert deleted.kind == "Pod"
    assert await gone(api, "pending")
    await bound_pod(api, "done")
    await api.core.patch_namespaced_pod_status(
        "done", "default", {"status": {"phase": "Succeeded"}}
    )
    await api.core.delete_namespaced_pod("done", "default")
    assert await gone(api, "done")


async def test_bound_pods_wait_for_the_kubelet(api: Api) -> None:
    await bound_pod(api, "running")
    await api.core.delete_namespaced_pod("running", "default")
    terminating = await api.core.read_namespaced_pod("running", "default")
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.deletion_grace_period_seconds == 30
    again = await api.core.delete_namespaced_pod("running", "default", grace_period_seconds=60)
    assert again.metadata.resource_version == terminating.metadata.resource_version
    await api.core.delete_namespaced_pod("running", "default", grace_period_seconds=0)
    assert await gone(api, "running")


async def test_grace_period_expiry_removes_orphaned_pods(api: Api) -> None:
    api.server.objects.orphan_margin = 0.0
    await bound_pod(api, "orphan", terminationGracePeriodSeconds=1)
    await api.core.delete_namespaced_pod("orphan", "default")
    assert not await gone(api, "orphan")
    async with asyncio.timeout(5):
        while not await gone(api, "orphan"):
            await asyncio.sleep(0.1)


async def test_finalizers_hold_deletion_until_removed(api: Api) -> None:
    body = {"metadata": {"name": "held", "finalizers": ["labhub.io/backup"]}}
    await api.core.create_namespaced_config_map("default", body)
    await api.core.delete_namespaced_config_map("held", "default")
    held = await api.core.read_namespaced_config_map("held", "default")
    assert held.metadata.deletion_timestamp is not None
    await api.core.patch_namespaced_config_map(
        "held", "default", {"metadata": {"finalizers": None}}, _content_type=MERGE
    )
    with pytest.raises(ApiException) as missing:
        await api.core.read_namespaced_config_map("held", "default")
    assert missing.value.status == 404


async def test_preconditions_and_collections(api: Api) -> None:
    for name, course in (("a", "ml"), ("b", "ml"), ("c", "db")):
        await api.core.create_namespaced_config_map(
            "default", {"metadata": {"name": name, "labels": {"course": course}}}
        )
    with pytest.raises(ApiException) as mismatch:
        await api.core.delete_namespaced_config_map(
            "a", "default", body={"preconditions": {"uid": "not-the-uid"}}
        )
    assert mismatch.value.status == 409
    await api.core.delete_collection_namespaced_config_map("default", label_selector="course=ml")
    left = await api.core.list_namespaced_config_map(
        "default", field_selector="metadata.name!=kube-root-ca.crt"
    )
    assert [c.metadata.name for c in left.items] == ["c"]


async def test_namespace_deletion_removes_its_objects(api: Api) -> None:
    await api.core.create_namespace({"metadata": {"name": "course-db"}})
    await api.core.create_namespaced_secret("course-db", {"metadata": {"name": "s"}})
    await api.core.delete_namespace("course-db")
    with pytest.raises(ApiException) as missing:
        await api.core.read_namespaced_secret("s", "course-db")
    assert missing.value.status == 404
    names = [n.metadata.name for n in (await api.core.list_namespace()).items]
    assert "course-db" not in names and "default" in names


async def test_terminating_namespace_refuses_new_objects(api: Api) -> None:
    await api.core.create_namespace({"metadata": {"name": "held", "finalizers": ["labhub.io/x"]}})
    await api.core.create_namespaced_config_map("held", {"metadata": {"name": "old"}})
    await api.core.delete_namespace("held")
    namespace = await api.core.read_namespace("held")
    assert namespace.status.phase == "Terminating"
    assert (await api.core.list_namespaced_config_map("held")).items == []
    with pytest.raises(ApiException) as refused:
        await api.core.create_namespaced_config_map("held", {"metadata": {"name": "new"}})
    assert refused.value.status == 403 and "being terminated" in refused.value.body
    await api.core.patch_namespace("held", {"metadata": {"finalizers": None}}, _content_type=MERGE)
    with pytest.raises(ApiException) as missing:
        await api.core.read_namespace("held")
    assert missing.value.status == 404


async def test_dependents_are_collected_with_their_owner(api: Api) -> None:
    owner = await api.core.create_namespaced_pod("default", pod("jupyter-ada"))
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "jupyter-ada", "uid": owner.metadata.uid}
    await api.core.create_namespaced_secret(
        "default", {"metadata": {"name": "ada-token", "ownerReferences": [ref]}}
    )
    other = {**ref, "name": "other", "uid": "another-owner"}
    await api.core.create_namespaced_secret(
        "default", {"metadata": {"name": "shared", "ownerReferences": [ref, other]}}
    )
    await api.core.delete_namespaced_pod("jupyter-ada", "default")
    names = [s.metadata.name for s in (await api.core.list_namespaced_secret("default")).items]
    assert names == ["shared"]
