"""The Node and StorageClass objects the cluster file describes, as the cluster creates them: a
node's capacity, its GPU Feature Discovery labels and extended resources (whole GPUs, MIG slices,
time-sliced replicas), and each storage class."""

from __future__ import annotations

from typing import Any

from hub_ext.devcluster.config import ZONE_LABEL, GpuSpec, NodeSpec, StorageClassSpec
from hub_ext.devcluster.quantity import format_units

__all__ = ["gpu_resources_and_labels", "node_object", "storage_class_object"]


def gpu_resources_and_labels(gpus: GpuSpec) -> tuple[dict[str, int], dict[str, str]]:
    """Extended resources and GPU Feature Discovery labels a node with these GPUs advertises."""
    model, product = gpus.model, gpus.model.products[0] if gpus.model.products else gpus.model.name
    suffix = ".shared" if gpus.rename_shared and gpus.replicas > 1 else ""
    shared_product = "-SHARED" if gpus.replicas > 1 and not suffix else ""
    labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/mig.strategy": gpus.mig_strategy,
        "nvidia.com/mig.config": gpus.mig_config,
        "nvidia.com/mig.config.state": "success",
        "nvidia.com/mig.capable": "true" if model.profiles else "false",
        "nvidia.com/gpu.replicas": str(gpus.replicas),
        "nvidia.com/gpu.sharing-strategy": "time-slicing" if gpus.replicas > 1 else "none",
    }
    resources_: dict[str, int] = {}
    if gpus.mig_strategy == "none":
        labels["nvidia.com/gpu.product"] = product + shared_product
        labels["nvidia.com/gpu.count"] = str(gpus.count)
        labels["nvidia.com/gpu.memory"] = str(model.memory_mib)
        resources_["nvidia.com/gpu" + suffix] = gpus.count * gpus.replicas
        return resources_, labels
    if gpus.mig_strategy == "single":
        profile, per_card = gpus.mig_layout[0]
        labels["nvidia.com/gpu.product"] = f"{product}-MIG-{profile.name}{shared_product}"
        labels["nvidia.com/gpu.count"] = str(per_card * gpus.count)
        labels["nvidia.com/gpu.memory"] = str(profile.memory_mib)
        labels["nvidia.com/gpu.multiprocessors"] = str(profile.sm_count)
        labels["nvidia.com/gpu.slices.gi"] = str(profile.memory_slices)
        labels["nvidia.com/gpu.slices.ci"] = str(profile.compute_slices)
        resources_["nvidia.com/gpu" + suffix] = per_card * gpus.count * gpus.replicas
        return resources_, labels
    labels["nvidia.com/gpu.product"] = product + shared_product
    labels["nvidia.com/gpu.count"] = str(gpus.count)
    labels["nvidia.com/gpu.memory"] = str(model.memory_mib)
    for profile, per_card in gpus.mig_layout:
        base = f"nvidia.com/mig-{profile.name}"
        labels[f"{base}.count"] = str(per_card * gpus.count)
        labels[f"{base}.memory"] = str(profile.memory_mib)
        labels[f"{base}.multiprocessors"] = str(profile.sm_count)
        labels[f"{base}.slices.gi"] = str(profile.memory_slices)
        labels[f"{base}.slices.ci"] = str(profile.compute_slices)
        resources_[base + suffix] = per_card * gpus.count * gpus.replicas
    return resources_, labels


def node_object(node: NodeSpec, address: str = "127.0.0.1") -> dict[str, Any]:
    """The Node object (metadata, spec and status) that represents ``node``."""
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        ZONE_LABEL: node.zone,
        "topology.kubernetes.io/region": "devcluster",
    }
    capacity = {
        "cpu": format_units("cpu", node.cpu_millis),
        "memory": format_units("memory", node.memory_bytes),
        "pods": str(node.pods),
        "ephemeral-storage": "100Gi",
    }
    if node.gpus is not None:
        extended, gfd = gpu_resources_and_labels(node.gpus)
        labels.update(gfd)
        capacity.update({k: str(v) for k, v in extended.items()})
    labels.update(dict(node.labels))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node.name, "labels": labels},
        "spec": {
            "taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in node.taints]
        },
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": node.name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.31.0-labhub-devcluster",
                "containerRuntimeVersion": "labhub-devcluster://host-processes",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }


def storage_class_object(sc: StorageClassSpec) -> dict[str, Any]:
    """The StorageClass object for ``sc``."""
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if sc.default else {}
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": sc.name, "annotations": annotations},
        "provisioner": sc.provisioner,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "allowVolumeExpansion": sc.allow_expansion,
    }
