"""Merge, strategic merge and JSON patches: the functions and over HTTP."""

from __future__ import annotations

import pytest
from api_testing import Api, api, pod
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.patch import (
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

__all__ = ["api"]
MERGE = "application/merge-patch+json"


def test_merge_patch_replaces_lists_and_deletes_nulls() -> None:
    target = {"a": {"b": 1, "c": 2}, "items": [1, 2], "keep": True}
    patched = merge_patch(target, {"a": {"b": None, "d": 4}, "items": [3]})
    assert patched == {"a": {"c": 2, "d": 4}, "items": [3], "keep": True}
    assert target == {"a": {"b": 1, "c": 2}, "items": [1, 2], "keep": True}


def test_strategic_merge_patch_merges_lists_by_key() -> None:
    target = {
        "metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
        "spec": {
            "containers": [{"name": "main", "image": "a"}, {"name": "side", "image": "b"}],
            "schedulingGates": [{"name": "g1"}, {"name": "g2"}],
            "tolerations": [{"key": "t1"}],
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"},
            ]
        },
    }
    patch = {
        "metadata": {"labels": {"b": "2", "a": None}, "finalizers": ["y"]},
        "spec": {
            "containers": [{"name": "main", "image": "c"}],
            "schedulingGates": [{"name": "g1", "$patch": "delete"}],
            "tolerations": [{"key": "t2"}],
        },
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    out = strategic_merge_patch(target, patch)
    assert out["metadata"] == {"labels": {"b": "2"}, "finalizers": ["x", "y"]}
    assert out["spec"]["containers"] == [
        {"name": "main", "image": "c"},
        {"name": "side", "image": "b"},
    ]
    assert out["spec"]["schedulingGates"] == [{"name": "g2"}]
    assert out["spec"]["tolerations"] == [{"key": "t2"}]  # no merge key: replaced
    assert out["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]
    dropped = strategic_merge_patch(
        out,
        {
            "$deleteFromPrimitiveList/finalizers": ["x"],
            "metadata": {"$patch": "replace", "name": "n"},
        },
    )
    assert dropped["metadata"] == {"name": "n"}
    with pytest.raises(PatchError):
        strategic_merge_patch(target, {"spec": {"containers": [{"image": "no-name"}]}})


def test_json_patch_operations() -> None:
    doc = {"metadata": {"labels": {"a/b": "1"}}, "list": [1, 2]}
    out = json_patch(
        doc,
        [
            {"op": "add", "path": "/list/-", "value": 3},
            {"op": "replace", "path": "/metadata/labels/a~1b", "value": "2"},
            {"op": "copy", "from": "/list/0", "path": "/first"},
            {"op": "move", "from": "/first", "path": "/moved"},
            {"op": "remove", "path": "/list/1"},
            {"op": "test", "path": "/moved", "value": 1},
        ],
    )
    assert out == {"metadata": {"labels": {"a/b": "2"}}, "list": [1, 3], "moved": 1}
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "test", "path": "/list/0", "value": 9}])
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "remove", "path": "/nothing/here"}])


async def test_patch_kinds_over_http(api: Api) -> None:
    await api.core.create_namespaced_pod("default", pod("p", labels={"app": "lab"}))
    smp = await api.core.patch_namespaced_pod(
        "p", "default", {"metadata": {"labels": {"course": "ml"}, "annotations": {"n": "1"}}}
    )
    assert smp.metadata.labels == {"app": "lab", "course": "ml"}
    merge = await api.core.patch_namespaced_pod(
        "p", "default", {"metadata": {"labels": {"app": None}}}, _content_type=MERGE
    )
    assert merge.metadata.labels == {"course": "ml"}
    jp = await api.core.patch_namespaced_pod(
        "p", "default", [{"op": "add", "path": "/metadata/annotations/m", "value": "2"}]
    )
    assert jp.metadata.annotations == {"n": "1", "m": "2"}
    status = await api.core.patch_namespaced_pod_status(
        "p",
        "default",
        {
            "status": {
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
                ]
            }
        },
    )
    status = await api.core.patch_namespaced_pod_status(
        "p", "default", {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    )
    assert [c.type for c in status.status.conditions] == ["PodScheduled", "Ready"]
    assert int(status.metadata.resource_version) > int(jp.metadata.resource_version)
    with pytest.raises(ApiException) as bad:
        await api.core.patch_namespaced_pod(
            "p", "default", [{"op": "remove", "path": "/spec/nothing"}]
        )
    assert bad.value.status == 422
    status_code, body = await api.raw(
        "PATCH", "/api/v1/namespaces/default/pods/p", {"a": 1}, "application/apply-patch+yaml"
    )
    # server-side apply is served: an apply patch without fieldManager is a bad request
    assert status_code == 400 and body["kind"] == "Status"
    assert body["message"] == "PATCH request must specify fieldManager"
    with pytest.raises(ApiException) as missing:
        await api.core.patch_namespaced_pod("gone", "default", {"metadata": {}})
    assert missing.value.status == 404
