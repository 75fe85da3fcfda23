"""Offline tests of the pod and PVC manifests (LabHub's parts on a KubeSpawner-like base),
compared with literal dicts."""

from __future__ import annotations

import pytest

from hub_ext.core.k8s_names import SliceStrategy
from hub_ext.core.manifests import (
    GiB,
    PodRequest,
    PvcRequest,
    build_pod,
    build_pvc,
    format_cpu,
    format_memory,
    lab_pod,
    lab_pvc,
    label_value,
    retarget_pod,
)
from hub_ext.core.pod_floors import floor_violations
from hub_ext.core.profiles.model import GpuRequest, SharedVolume

SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def request(**overrides: object) -> PodRequest:
    base: dict[str, object] = {
        "pod_name": "jupyter-anna",
        "namespace": "lab",
        "username": "anna",
        "server_name": "",
        "course": "ml-101",
        "group": "ml101-a",
        "image": "registry.example.org/ml-101:2026.1",
        "command": ("jupyterhub-singleuser",),
        "port": 8888,
        "home_claim": "claim-anna",
        "env": (("JUPYTERHUB_USER", "anna"),),
        "gpu": GpuRequest(("1g.10gb", "2g.10gb")),
    }
    base.update(overrides)
    return PodRequest(**base)  # type: ignore[arg-type]


def expected_pod(limits: dict[str, str], env: list[dict[str, str]], **spec: object) -> dict:
    gpu = "nvidia.com/gpu.product" not in str(spec) and limits.keys() > {"cpu", "memory"}
    labels = {
        "app.kubernetes.io/component": "singleuser-server",
        "app.kubernetes.io/managed-by": "labhub",
        "labhub.io/user": "anna",
        "labhub.io/course": "ml-101",
        "labhub.io/seminar-group": "ml101-a",
    }
    annotations = {"labhub.io/username": "anna", "labhub.io/server-name": ""}
    if len(limits) > 2:
        labels["labhub.io/slice-type"] = "1g.10gb"
        annotations["labhub.io/slice-types"] = "1g.10gb,2g.10gb"
    del gpu
    pod_spec = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "restartPolicy": "OnFailure",
        "securityContext": {
            "runAsNonRoot": True,
            "fsGroup": 100,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "notebook",
                "image": "registry.example.org/ml-101:2026.1",
                "imagePullPolicy": "IfNotPresent",
                "args": ["jupyterhub-singleuser"],
                "env": env,
                "ports": [{"name": "notebook-port", "containerPort": 8888}],
                "resources": {
                    "requests": {
                        "cpu": "4",
                        "memory": "16Gi",
                        **{k: v for k, v in limits.items() if k.startswith("nvidia")},
                    },
                    "limits": limits,
                },
                "securityContext": SECURITY,
                "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
            }
        ],
        "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-anna"}}],
        **spec,
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "jupyter-anna",
            "namespace": "lab",
            "labels": labels,
            "annotations": annotations,
        },
        "spec": pod_spec,
    }


USER_ENV = [{"name": "JUPYTERHUB_USER", "value": "anna"}]
GATE = {"schedulingGates": [{"name": "labhub.io/slice-admission"}]}


def test_mixed_strategy_requests_the_mig_resource() -> None:
    pod = build_pod(request())
    assert pod == expected_pod(
        {"cpu": "4", "memory": "16Gi", "nvidia.com/mig-1g.10gb": "1"}, USER_ENV, **GATE
    )


def test_single_strategy_requests_a_gpu_on_the_mig_product() -> None:
    pod = build_pod(request(strategy=SliceStrategy.SINGLE))
    assert pod == expected_pod(
        {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
        USER_ENV,
        nodeSelector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB-MIG-1g.10gb"},
        **GATE,
    )


@pytest.mark.parametrize(
    ("slice_type", "resource"),
    [("gpu", "nvidia.com/gpu.shared"), ("1g.10gb", "nvidia.com/mig-1g.10gb.shared")],
)
def test_shared_strategy_requests_the_shared_resource(slice_type: str, resource: str) -> None:
    pod = build_pod(request(strategy=SliceStrategy.SHARED, gpu=GpuRequest((slice_type,))))
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "16Gi", resource: "1"}
    assert pod["spec"]["schedulingGates"] == [{"name": "labhub.io/slice-admission"}]
    assert "nodeSelector" not in pod["spec"]


@pytest.mark.parametrize("strategy", list(SliceStrategy))
def test_cpu_only_profile_never_sees_a_gpu(strategy: SliceStrategy) -> None:
    pod = build_pod(
        request(
            gpu=None,
            strategy=strategy,
            env=(("JUPYTERHUB_USER", "anna"), ("NVIDIA_VISIBLE_DEVICES", "all")),
        )
    )
    assert pod == expected_pod(
        {"cpu": "4", "memory": "16Gi"},
        [*USER_ENV, {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}],
    )


def test_custom_resources_and_shared_volumes_are_read_only() -> None:
    pod = build_pod(
        request(
            cpu_guarantee=0.5,
            cpu_limit=2,
            memory_guarantee=512 * 2**20,
            memory_limit=8 * GiB,
            shared_volumes=(SharedVolume("ml-101-datasets", "/data"),),
        )
    )
    container = pod["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi", "nvidia.com/mig-1g.10gb": "1"},
        "limits": {"cpu": "2", "memory": "8Gi", "nvidia.com/mig-1g.10gb": "1"},
    }
    assert container["volumeMounts"] == [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "shared-0", "mountPath": "/data", "readOnly": True},
    ]
    assert pod["spec"]["volumes"][1] == {
        "name": "shared-0",
        "persistentVolumeClaim": {"claimName": "ml-101-datasets", "readOnly": True},
    }


def test_home_pvc() -> None:
    pvc = build_pvc(PvcRequest("claim-anna", "lab", "ceph-rbd", username="anna"))
    assert pvc == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": "claim-anna",
            "namespace": "lab",
            "labels": {
                "app.kubernetes.io/component": "singleuser-storage",
                "app.kubernetes.io/managed-by": "labhub",
                "labhub.io/user": "anna",
            },
            "annotations": {"labhub.io/username": "anna"},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "ceph-rbd",
            "resources": {"requests": {"storage": "250Gi"}},
        },
    }


def test_quantities_and_labels() -> None:
    assert format_cpu(4) == "4"
    assert format_cpu(0.25) == "250m"
    assert format_memory(16 * GiB) == "16Gi"
    assert format_memory(10**9) == "1000000000"
    assert label_value("anna@uni.example") == "anna-uni.example"
    assert len(label_value("x" * 100)) == 63
    with pytest.raises(ValueError, match="accepted values: mixed, single, shared"):
        SliceStrategy.parse("mps")
    with pytest.raises(ValueError, match="'none' is not known"):
        SliceStrategy.parse("none")  # what a node without MIG reports, not a way to ask for GPUs
    assert SliceStrategy.parse("shared") is SliceStrategy.SHARED


def _as_stored(pod: dict) -> dict:
    """The pod as the API server returns it: server-set fields and a status added."""
    meta = {**pod["metadata"], "uid": "u-1", "resourceVersion": "42"}
    meta["creationTimestamp"] = "2026-11-23T09:00:00Z"
    return {**pod, "metadata": meta, "status": {"phase": "Pending"}}


def test_retarget_mixed_pod_to_a_fallback_slice_type() -> None:
    moved = retarget_pod(_as_stored(build_pod(request())), "2g.10gb")
    expected = expected_pod({"cpu": "4", "memory": "16Gi", "nvidia.com/mig-2g.10gb": "1"}, USER_ENV)
    expected["metadata"]["labels"]["labhub.io/slice-type"] = "2g.10gb"
    assert moved == expected


def test_retarget_single_strategy_pod_moves_the_node_selector() -> None:
    moved = retarget_pod(_as_stored(build_pod(request(strategy=SliceStrategy.SINGLE))), "2g.10gb")
    expected = expected_pod(
        {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
        USER_ENV,
        nodeSelector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB-MIG-2g.10gb"},
    )
    expected["metadata"]["labels"]["labhub.io/slice-type"] = "2g.10gb"
    assert moved == expected


def test_retarget_shared_mig_pod_keeps_sharing() -> None:
    pod = build_pod(request(strategy=SliceStrategy.SHARED))
    moved = retarget_pod(_as_stored(pod), "2g.10gb")
    limits = moved["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "4", "memory": "16Gi", "nvidia.com/mig-2g.10gb.shared": "1"}
    assert "schedulingGates" not in moved["spec"]
    assert "uid" not in moved["metadata"] and "status" not in moved


KUBESPAWNER_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "jupyter-anna",
        "labels": {"app.kubernetes.io/managed-by": "kubespawner", "lab.example/cohort": "2026"},
        "annotations": {"hub.jupyter.org/username": "anna"},
    },
    "spec": {
        "automountServiceAccountToken": False,
        "serviceAccountName": "lab-student",
        "tolerations": [{"key": "lab.example/dedicated", "operator": "Exists"}],
        "volumes": [
            {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}},
            {"name": "scratch", "emptyDir": {}},
        ],
        "initContainers": [{"name": "prepare", "image": "busybox", "command": ["true"]}],
        "containers": [
            {
                "name": "notebook",
                "image": "registry.example.org/ml-101:2026.1",
                "env": [
                    {"name": "LAB_MODE", "value": "from-config"},
                    {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
                ],
                "resources": {"limits": {"ephemeral-storage": "2Gi", "cpu": "8"}},
                "securityContext": {"runAsUser": 1500, "readOnlyRootFilesystem": True},
                "volumeMounts": [
                    {"name": "home", "mountPath": "/home/other"},
                    {"name": "scratch", "mountPath": "/scratch"},
                ],
            },
            {"name": "sidecar", "image": "busybox", "command": ["sleep", "1"]},
        ],
    },
}


def test_lab_pod_keeps_kubespawner_settings_and_adds_labhubs_parts() -> None:
    req = request(env=(("LAB_MODE", "from-profile"), ("COURSE", "ml-101")))
    pod = lab_pod(KUBESPAWNER_POD, req)
    spec = pod["spec"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubespawner"
    assert pod["metadata"]["labels"]["lab.example/cohort"] == "2026"
    assert pod["metadata"]["labels"]["labhub.io/course"] == "ml-101"
    assert pod["metadata"]["annotations"]["hub.jupyter.org/username"] == "anna"
    assert spec["serviceAccountName"] == "lab-student"
    assert spec["tolerations"] == KUBESPAWNER_POD["spec"]["tolerations"]
    assert spec["schedulingGates"] == [{"name": "labhub.io/slice-admission"}]
    # LabHub's home volume replaces one of the same name; other volumes stay
    assert spec["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "home", "persistentVolumeClaim": {"claimName": "claim-anna"}},
    ]
    notebook, sidecar = spec["containers"]
    assert notebook["volumeMounts"] == [
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "home", "mountPath": "/home/jovyan"},
    ]
    env = {e["name"]: e["value"] for e in notebook["env"]}
    assert env == {"LAB_MODE": "from-config", "COURSE": "ml-101"}  # the device plugin sets GPUs
    assert notebook["resources"]["limits"] == {
        "ephemeral-storage": "2Gi",
        "cpu": "4",
        "memory": "16Gi",
        "nvidia.com/mig-1g.10gb": "1",
    }
    assert notebook["securityContext"]["runAsUser"] == 1500
    assert notebook["securityContext"]["readOnlyRootFilesystem"] is True
    assert "resources" not in sidecar and "volumeMounts" not in sidecar
    for container in [*spec["containers"], *spec["initContainers"]]:
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert floor_violations(pod) == []
    assert KUBESPAWNER_POD["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == (
        "{pvc_name}"
    )  # the base is not changed


def test_lab_pvc_sets_the_profile_size_and_keeps_kubespawners_claim() -> None:
    base = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "claim-anna", "labels": {"component": "singleuser-storage"}},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "cephfs",
            "resources": {"requests": {"storage": "10Gi"}},
        },
    }
    pvc = lab_pvc(base, PvcRequest("claim-anna", "lab", "cephfs", 20 * GiB, "anna"))
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert pvc["metadata"]["labels"]["component"] == "singleuser-storage"
    assert pvc["metadata"]["labels"]["labhub.io/user"] == "anna"
