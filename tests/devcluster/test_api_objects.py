"""Create, read, update and delete through the kubernetes_asyncio client."""

from __future__ import annotations

import asyncio
import base64

import pytest
from api_testing import Api, api, pod
from kubernetes_asyncio.client import (
    CoordinationV1Api,
    CustomObjectsApi,
    DiscoveryV1Api,
    EventsV1Api,
    StorageV1Api,
)
from kubernetes_asyncio.client.exceptions import ApiException

from hub_ext.devcluster.apiserver import pod_log_path

__all__ = ["api"]


async def test_create_sets_identity_defaults_and_increasing_versions(api: Api) -> None:
    first = await api.core.create_namespaced_pod("default", pod("alpha"))
    second = await api.core.create_namespaced_pod(
        "default", {"metadata": {"generateName": "worker-"}, "spec": pod("x")["spec"]}
    )
    assert first.metadata.uid and first.metadata.uid != second.metadata.uid
    assert first.metadata.creation_timestamp is not None
    assert second.metadata.name.startswith("worker-") and len(second.metadata.name) == 12
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert first.status.phase == "Pending"
    assert first.status.qos_class == "BestEffort"
    assert first.spec.restart_policy == "Always"
    assert first.spec.termination_grace_period_seconds == 30
    assert first.spec.dns_policy == "ClusterFirst"
    assert first.spec.scheduler_name == "default-scheduler"
    assert first.spec.service_account_name == "default"
    assert first.spec.containers[0].image_pull_policy == "IfNotPresent"
    read = await api.core.read_namespaced_pod("alpha", "default")
    assert read.metadata.uid == first.metadata.uid
    listed = await api.core.list_namespaced_pod("default")
    assert [p.metadata.name for p in listed.items] == sorted(["alpha", second.metadata.name])
    assert int(listed.metadata.resource_version) >= int(second.metadata.resource_version)


async def test_errors_are_status_objects(api: Api) -> None:
    await api.core.create_namespaced_pod("default", pod("dup"))
    with pytest.raises(ApiException) as exists:
        await api.core.create_namespaced_pod("default", pod("dup"))
    assert exists.value.status == 409 and '"AlreadyExists"' in exists.value.body
    with pytest.raises(ApiException) as missing:
        await api.core.read_namespaced_pod("nope", "default")
    assert missing.value.status == 404
    assert '"kind": "Status"' in missing.value.body and 'pods \\"nope\\" not found' in (
        missing.value.body
    )
    with pytest.raises(ApiException) as no_ns:
        await api.core.create_namespaced_config_map("ghost", {"metadata": {"name": "c"}})
    assert no_ns.value.status == 404 and "namespaces" in no_ns.value.body


async def test_validation_gives_422_with_causes(api: Api) -> None:
    status, body = await api.raw(
        "POST", "/api/v1/namespaces/default/pods", {"metadata": {"name": "empty"}, "spec": {}}
    )
    assert status == 422 and body["kind"] == "Status" and body["reason"] == "Invalid"
    assert {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.containers",
    } in body["details"]["causes"]
    with pytest.raises(ApiException) as bad_name:
        await api.core.create_namespaced_pod("default", pod("Not_A_Name"))
    assert bad_name.value.status == 422 and "RFC 1123" in bad_name.value.body
    with pytest.raises(ApiException) as pvc:
        await api.core.create_namespaced_persistent_volume_claim(
            "default", {"metadata": {"name": "home"}, "spec": {}}
        )
    assert pvc.value.status == 422 and "spec.accessModes" in pvc.value.body


async def test_malformed_json_and_unknown_resources(api: Api) -> None:
    status, body = await api.raw("POST", "/api/v1/namespaces/default/pods", "{not json")
    assert status == 400 and body["kind"] == "Status" and body["reason"] == "BadRequest"
    status, body = await api.raw("GET", "/api/v1/namespaces/default/widgets")
    assert status == 404 and body["kind"] == "Status"
    status, body = await api.raw("GET", "/apis/nothere.example.com/v1")
    assert status == 404
    status, body = await api.raw(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        b"\x00\x01",
        "application/vnd.kubernetes.protobuf",
    )
    assert status == 415


async def test_stale_resource_version_conflicts(api: Api) -> None:
    created = await api.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "settings"}, "data": {"a": "1"}}
    )
    body = created.to_dict()
    body["data"] = {"a": "2"}
    updated = await api.core.replace_namespaced_config_map("settings", "default", created)
    assert updated.metadata.resource_version == created.metadata.resource_version  # no change
    created.data = {"a": "2"}
    updated = await api.core.replace_namespaced_config_map("settings", "default", created)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"a": "3"}
    with pytest.raises(ApiException) as stale:
        await api.core.replace_namespaced_config_map("settings", "default", created)
    assert stale.value.status == 409 and "the object has been modified" in stale.value.body
    stale_patch = {"metadata": {"resourceVersion": created.metadata.resource_version}}
    with pytest.raises(ApiException) as stale_p:
        await api.core.patch_namespaced_config_map("settings", "default", stale_patch)
    assert stale_p.value.status == 409


async def test_status_subresource_and_binding(api: Api) -> None:
    await api.core.create_namespaced_pod("default", pod("runner"))
    current = await api.core.read_namespaced_pod("runner", "default")
    current.status.phase = "Running"
    current.metadata.labels = {"seen": "yes"}
    replaced = await api.core.replace_namespaced_pod("runner", "default", current)
    assert replaced.status.phase == "Pending" and replaced.metadata.labels == {"seen": "yes"}
    resp = await api.core.create_namespaced_pod_binding(
        "runner", "default", {"target": {"kind": "Node", "name": "gpu-a"}}, _preload_content=False
    )
    assert resp.status == 201
    assert (await resp.json())["status"] == "Success"
    bound = await api.core.read_namespaced_pod("runner", "default")
    assert bound.spec.node_name == "gpu-a"
    assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]
    again = await api.core.create_namespaced_pod_binding(
        "runner",
        "default",
        {"target": {"kind": "Node", "name": "gpu-b"}},
        _preload_content=False,
    )
    assert again.status == 409 and "already assigned" in (await again.json())["message"]
    patched = await api.core.patch_namespaced_pod_status(
        "runner",
        "default",
        {"status": {"phase": "Running", "podIP": "127.10.0.2"}, "spec": {"nodeName": "elsewhere"}},
    )
    assert patched.status.phase == "Running" and patched.status.pod_ip == "127.10.0.2"
    assert patched.spec.node_name == "gpu-a"
    assert patched.status.conditions[0].type == "PodScheduled"


async def test_pod_spec_is_immutable_but_gates_may_be_removed(api: Api) -> None:
    gated = pod("gated", schedulingGates=[{"name": "labhub.io/quota"}, {"name": "other"}])
    await api.core.create_namespaced_pod("default", gated)
    with pytest.raises(ApiException) as added:
        await api.core.patch_namespaced_pod(
            "gated", "default", {"spec": {"schedulingGates": [{"name": "new-gate"}]}}
        )
    assert added.value.status == 422 and "schedulingGates" in added.value.body
    bind = await api.core.create_namespaced_pod_binding(
        "gated", "default", {"target": {"name": "gpu-a"}}, _preload_content=False
    )
    assert bind.status == 409
    with pytest.raises(ApiException) as changed:
        await api.core.patch_namespaced_pod(
            "gated", "default", {"spec": {"restartPolicy": "Never"}}
        )
    assert changed.value.status == 422 and "may not change fields" in changed.value.body
    removed = await api.core.patch_namespaced_pod(
        "gated", "default", {"spec": {"schedulingGates": [{"name": "other", "$patch": "delete"}]}}
    )
    assert [g.name for g in removed.spec.scheduling_gates] == ["labhub.io/quota"]


async def test_gated_pod_may_gain_node_affinity_but_not_lose_or_change_it(api: Api) -> None:
    zone = "topology.kubernetes.io/zone"
    role = {"key": "labhub.io/role", "operator": "In", "values": ["gpu"]}
    room = {"key": zone, "operator": "In", "values": ["room-a"]}

    def affinity(*expressions: dict[str, object]) -> dict[str, object]:
        terms = [{"matchExpressions": list(expressions)}]
        return {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }

    await api.core.create_namespaced_pod(
        "default", pod("placed", schedulingGates=[{"name": "g"}], affinity=affinity(role))
    )
    added = await api.core.patch_namespaced_pod(
        "placed",
        "default",
        {"spec": {"affinity": affinity(role, room), "nodeSelector": {zone: "room-a"}}},
    )
    terms = added.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    assert [e.key for e in terms.node_selector_terms[0].match_expressions] == [
        "labhub.io/role",
        zone,
    ]
    for change in (affinity(room), {"nodeAffinity": None}):
        with pytest.raises(ApiException) as refused:
            await api.core.patch_namespaced_pod("placed", "default", {"spec": {"affinity": change}})
        assert refused.value.status == 422 and "only additions" in refused.value.body
    # once the gate is gone, the affinity is fixed
    await api.core.patch_namespaced_pod("placed", "default", {"spec": {"schedulingGates": None}})
    with pytest.raises(ApiException) as late:
        room_b = {"key": zone, "operator": "In", "values": ["room-b"]}
        await api.core.patch_namespaced_pod(
            "placed", "default", {"spec": {"affinity": affinity(role, room, room_b)}}
        )
    assert late.value.status == 422


async def test_core_resource_kinds(api: Api) -> None:
    secret = await api.core.create_namespaced_secret(
        "default", {"metadata": {"name": "token"}, "stringData": {"key": "s3cret"}}
    )
    assert secret.type == "Opaque"
    assert base64.b64decode(secret.data["key"]) == b"s3cret"
    svc = await api.core.create_namespaced_service(
        "default", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    )
    assert svc.spec.cluster_ip.startswith("127.250.") and svc.spec.ports[0].target_port == 80
    pvc = await api.core.create_namespaced_persistent_volume_claim(
        "default",
        {
            "metadata": {"name": "home"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    assert pvc.status.phase == "Pending"
    await api.core.create_namespace({"metadata": {"name": "course-ml"}})
    ns = await api.core.read_namespace("course-ml")
    assert ns.status.phase == "Active"
    await api.core.create_node(
        {"metadata": {"name": "gpu-a"}, "status": {"capacity": {"cpu": "8"}}}
    )
    node = await api.core.patch_node_status(
        "gpu-a", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    )
    assert node.status.capacity == {"cpu": "8"} and node.status.conditions[0].status == "True"
    await api.core.create_namespaced_service_account("default", {"metadata": {"name": "hub"}})
    await api.core.create_namespaced_endpoints("default", {"metadata": {"name": "web"}})
    await api.core.create_persistent_volume(
        {"metadata": {"name": "pv-1"}, "spec": {"capacity": {"storage": "1Gi"}}}
    )
    await StorageV1Api(api.client).create_storage_class(
        {"metadata": {"name": "ceph-rbd"}, "provisioner": "rbd.csi.ceph.com"}
    )
    await DiscoveryV1Api(api.client).create_namespaced_endpoint_slice(
        "default", {"metadata": {"name": "web-1"}, "addressType": "IPv4", "endpoints": []}
    )
    await CoordinationV1Api(api.client).create_namespaced_lease(
        "kube-node-lease", {"metadata": {"name": "gpu-a"}, "spec": {"holderIdentity": "gpu-a"}}
    )
    await EventsV1Api(api.client).create_namespaced_event(
        "default",
        {
            "metadata": {"name": "e1"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reason": "Started",
            "action": "Start",
            "reportingController": "x",
            "reportingInstance": "y",
        },
    )
    custom = CustomObjectsApi(api.client)
    await custom.create_cluster_custom_object(
        "snapshot.storage.k8s.io",
        "v1",
        "volumesnapshotclasses",
        {"metadata": {"name": "rbd"}, "driver": "rbd.csi.ceph.com", "deletionPolicy": "Delete"},
    )
    await custom.create_namespaced_custom_object(
        "snapshot.storage.k8s.io",
        "v1",
        "default",
        "volumesnapshots",
        {
            "metadata": {"name": "home-snap"},
            "spec": {"source": {"persistentVolumeClaimName": "home"}},
        },
    )
    snaps = await custom.list_namespaced_custom_object(
        "snapshot.storage.k8s.io", "v1", "default", "volumesnapshots"
    )
    assert snaps["kind"] == "VolumeSnapshotList"
    assert [s["metadata"]["name"] for s in snaps["items"]] == ["home-snap"]


async def test_pod_log_is_served_from_the_kubelet_file(api: Api) -> None:
    await api.core.create_namespaced_pod("default", pod("logger"))
    with pytest.raises(ApiException) as waiting:
        await api.core.read_namespaced_pod_log("logger", "default")
    assert waiting.value.status == 400 and "waiting to start" in waiting.value.body
    await api.core.create_namespaced_pod_binding(
        "logger", "default", {"target": {"name": "gpu-a"}}, _preload_content=False
    )
    path = pod_log_path(api.server.state_dir, "default", "logger", "main")
    assert path == api.server.state_dir / "logs" / "default" / "logger" / "main.log"
    path.parent.mkdir(parents=True)
    path.write_text("one\ntwo\nthree\n")
    assert await api.core.read_namespaced_pod_log("logger", "default") == "one\ntwo\nthree\n"
    assert await api.core.read_namespaced_pod_log("logger", "default", tail_lines=1) == "three\n"


async def test_pod_log_follow_streams_until_the_pod_finishes(api: Api) -> None:
    await api.core.create_namespaced_pod("default", pod("follower"))
    resp = await api.core.create_namespaced_pod_binding(
        "follower", "default", {"target": {"name": "gpu-a"}}, _preload_content=False
    )
    resp.release()
    path = pod_log_path(api.server.state_dir, "default", "follower", "main")
    path.parent.mkdir(parents=True)
    path.write_text("start\n")
    stream = await api.core.read_namespaced_pod_log(
        "follower", "default", follow=True, _preload_content=False
    )
    try:
        assert await stream.content.readline() == b"start\n"
        with path.open("a") as handle:
            handle.write("more\n")
        assert await stream.content.readline() == b"more\n"
        await api.core.patch_namespaced_pod_status(
            "follower", "default", {"status": {"phase": "Succeeded"}}
        )
        async with asyncio.timeout(5):
            assert await stream.content.read() == b""
    finally:
        stream.close()


async def test_labels_annotations_and_quantities_are_validated(api: Api) -> None:
    bad_label = pod("p", labels={"user": "ada@lab.example"})
    with pytest.raises(ApiException) as label:
        await api.core.create_namespaced_pod("default", bad_label)
    assert label.value.status == 422 and "metadata.labels[user]" in label.value.body
    with pytest.raises(ApiException) as key:
        await api.core.create_namespaced_config_map(
            "default", {"metadata": {"name": "c", "annotations": {"Bad_Prefix/x": "1"}}}
        )
    assert key.value.status == 422 and "prefix part" in key.value.body
    gpu_request_only = pod("g")
    gpu_request_only["spec"]["containers"][0]["resources"] = {
        "requests": {"nvidia.com/mig-1g.10gb": "1"}
    }
    with pytest.raises(ApiException) as gpu:
        await api.core.create_namespaced_pod("default", gpu_request_only)
    assert gpu.value.status == 422 and "non overcommitable" in gpu.value.body
    too_much = pod("t")
    too_much["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "2"},
        "limits": {"cpu": "1", "memory": "twelve"},
    }
    with pytest.raises(ApiException) as cpu:
        await api.core.create_namespaced_pod("default", too_much)
    assert cpu.value.status == 422
    assert "less than or equal to cpu limit" in cpu.value.body and "twelve" in cpu.value.body
    limited = pod("ok", labels={"hub.jupyter.org/username": "ada", "empty": ""})
    limited["spec"]["containers"][0]["resources"] = {
        "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/mig-1g.10gb": "1"}
    }
    created = await api.core.create_namespaced_pod("default", limited)
    assert created.spec.containers[0].resources.requests == {
        "cpu": "4",
        "memory": "16Gi",
        "nvidia.com/mig-1g.10gb": "1",
    }
    assert created.status.qos_class == "Guaranteed"
    with pytest.raises(ApiException) as patched:
        await api.core.patch_namespaced_pod("ok", "default", {"metadata": {"labels": {"x": "-"}}})
    assert patched.value.status == 422
