"""Pod and PVC manifests for a student's server, as plain Kubernetes JSON dicts.

The builders are pure. :func:`lab_pod` takes KubeSpawner's own pod manifest (built from all its
settings) and applies LabHub's parts from a :class:`PodRequest` (the spawner fills it from the
course profile and the user), then the security floor of :mod:`hub_ext.core.pod_floors`;
:func:`lab_pvc` does the same for the home volume claim. :func:`build_pod` gives
:func:`lab_pod` a KubeSpawner-like base, for tools and tests without a spawner.

The GPU request depends on how the cluster's NVIDIA device plugin advertises slices
(:class:`SliceStrategy`):

* ``mixed``: one resource per MIG profile, ``nvidia.com/mig-1g.10gb: 1``;
* ``single``: ``nvidia.com/gpu: 1`` plus a node selector on the GPU Feature Discovery product label
  that ends in ``-MIG-1g.10gb``;
* ``shared``: the time-sliced or MPS replica resource, ``nvidia.com/gpu.shared`` (or
  ``nvidia.com/mig-1g.10gb.shared`` for a shared MIG slice).

A CPU-only server never sees a GPU: it requests none and carries ``NVIDIA_VISIBLE_DEVICES=void``.
A GPU server is created behind the ``labhub.io/slice-admission`` scheduling gate; the slice
admission controller lifts the gate when the student's turn comes.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from hub_ext.core.k8s_names import (
    ANNOTATION_FALLBACKS,
    ANNOTATION_SERVER,
    ANNOTATION_USER,
    GPU_RESOURCE,
    LABEL_COMPONENT,
    LABEL_COURSE,
    LABEL_GROUP,
    LABEL_MANAGED_BY,
    LABEL_SLICE_TYPE,
    LABEL_USER,
    MIG_RESOURCE_PREFIX,
    PRODUCT_LABEL,
    PRODUCT_MIG_INFIX,
    SLICE_GATE,
    SliceStrategy,
    mig_resource,
    shared_type,
    slice_resource,
    split_shared,
)
from hub_ext.core.pod_floors import apply_floor
from hub_ext.core.profiles.model import GpuRequest, SharedVolume

GiB = 2**30
COMPONENT = "singleuser-server"
MANAGED_BY = "labhub"
HOME_VOLUME = "home"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class PodRequest:
    """Everything the pod manifest is built from."""

    pod_name: str
    namespace: str
    username: str
    server_name: str
    course: str
    image: str
    command: tuple[str, ...]
    port: int
    home_claim: str
    group: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    strategy: SliceStrategy = SliceStrategy.MIXED
    gpu: GpuRequest | None = None
    """The slice types the server accepts, most preferred first (``None``: no GPU)."""
    gpu_product: str = "NVIDIA-A100-SXM4-40GB"
    """GFD product prefix used by the single strategy's node selector."""
    cpu_guarantee: float = 4.0
    cpu_limit: float = 4.0
    memory_guarantee: int = 16 * GiB
    memory_limit: int = 16 * GiB
    home_mount: str = "/home/jovyan"
    shared_volumes: tuple[SharedVolume, ...] = ()
    """Course shares: the PVC named ``name`` mounted read-only at ``mount_path``."""
    working_dir: str | None = None
    node_selector: tuple[tuple[str, str], ...] = ()
    extra_labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = field(default=())
    uid: int = 1000
    fs_group: int = 100


@dataclass(frozen=True)
class PvcRequest:
    name: str
    namespace: str
    storage_class: str
    size_bytes: int = 250 * GiB
    username: str = ""


_LABEL_BAD = re.compile(r"[^A-Za-z0-9._-]+")


def label_value(text: str) -> str:
    """A valid label value for ``text``: at most 63 characters, alphanumeric at both ends."""
    cleaned = _LABEL_BAD.sub("-", text)[:63]
    return cleaned.strip("-_.")


def format_cpu(cores: float) -> str:
    """``4``, ``0.5`` -> ``500m``."""
    millis = round(cores * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(size: int) -> str:
    """Bytes as a Kubernetes quantity: ``16Gi``, ``512Mi``, or plain bytes."""
    for unit, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def gpu_resources(
    gpu: GpuRequest, strategy: SliceStrategy, product: str = "NVIDIA-A100-SXM4-40GB"
) -> tuple[dict[str, str], dict[str, str]]:
    """(resource limits, node selector) for one slice of ``gpu.slice_type`` under ``strategy``."""
    slice_type = gpu.slice_type
    if strategy is SliceStrategy.MIXED:
        return {mig_resource(slice_type): "1"}, {}
    if strategy is SliceStrategy.SINGLE:
        return {GPU_RESOURCE: "1"}, {PRODUCT_LABEL: f"{product}{PRODUCT_MIG_INFIX}{slice_type}"}
    base, _ = split_shared(slice_type)
    return {slice_resource(shared_type(base)): "1"}, {}


def _shared_name(index: int) -> str:
    """The pod volume name of a course's ``index``-th shared volume."""
    return f"shared-{index}"


def pod_labels(req: PodRequest) -> dict[str, str]:
    """LabHub's own labels of a student's pod (they win over configured labels)."""
    labels = {
        LABEL_COMPONENT: COMPONENT,
        LABEL_USER: label_value(req.username),
        LABEL_COURSE: label_value(req.course),
    }
    if req.group:
        labels[LABEL_GROUP] = label_value(req.group)
    if req.gpu is not None:
        labels[LABEL_SLICE_TYPE] = label_value(req.gpu.slice_type)
    return labels


def _env_name(item: Any) -> str:
    return str(item.get("name", "")) if isinstance(item, dict) else ""


def _lab_container(container: Manifest, req: PodRequest) -> Manifest:
    """The notebook container of KubeSpawner's manifest with LabHub's own parts applied."""
    out = dict(container)
    env = [e for e in out.get("env") or [] if _env_name(e) != "NVIDIA_VISIBLE_DEVICES"]
    # the profile's variables are defaults: KubeSpawner's environment and JupyterHub's win
    present = {_env_name(e) for e in env} | {"NVIDIA_VISIBLE_DEVICES"}
    env += [{"name": k, "value": v} for k, v in req.env if k not in present]
    resources = dict(out.get("resources") or {})
    requests = dict(resources.get("requests") or {})
    limits = dict(resources.get("limits") or {})
    requests.update(cpu=format_cpu(req.cpu_guarantee), memory=format_memory(req.memory_guarantee))
    limits.update(cpu=format_cpu(req.cpu_limit), memory=format_memory(req.memory_limit))
    if req.gpu is None:
        env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"})
    else:
        gpu_limits, _ = gpu_resources(req.gpu, req.strategy, req.gpu_product)
        limits.update(gpu_limits)
        requests.update(gpu_limits)
    out["env"] = env
    out["resources"] = {**resources, "requests": requests, "limits": limits}
    own = {HOME_VOLUME, *(_shared_name(i) for i in range(len(req.shared_volumes)))}
    mounts = [m for m in out.get("volumeMounts") or [] if m.get("name") not in own]
    mounts.append({"name": HOME_VOLUME, "mountPath": req.home_mount})
    mounts += [
        {"name": _shared_name(i), "mountPath": v.mount_path, "readOnly": True}
        for i, v in enumerate(req.shared_volumes)
    ]
    out["volumeMounts"] = mounts
    return out


def lab_pod(base: Manifest, req: PodRequest) -> Manifest:
    """KubeSpawner's pod manifest ``base`` (API camelCase, as KubeSpawner's ``get_pod_manifest``
    built it from all its settings) with what is LabHub's own applied, then the security floor.

    LabHub sets the profile's resources, the home and shared volumes, the GPU request (and the
    single strategy's node selector) with the slice admission gate, ``NVIDIA_VISIBLE_DEVICES=void``
    for a CPU-only server, and its labels and annotations. Everything else is KubeSpawner's.
    Only the notebook container (the first, ``notebook``) gets the resources and volumes.
    """
    pod = copy.deepcopy(base)
    meta = pod.setdefault("metadata", {})
    meta["labels"] = {LABEL_MANAGED_BY: MANAGED_BY, **(meta.get("labels") or {}), **pod_labels(req)}
    annotations = {
        **(meta.get("annotations") or {}),
        ANNOTATION_USER: req.username,
        ANNOTATION_SERVER: req.server_name,
    }
    spec = pod.setdefault("spec", {})
    node_selector = dict(spec.get("nodeSelector") or {})
    if req.gpu is not None:
        _, selector = gpu_resources(req.gpu, req.strategy, req.gpu_product)
        node_selector.update(selector)
        annotations[ANNOTATION_FALLBACKS] = ",".join((req.gpu.slice_type, *req.gpu.fallbacks))
        gates = [g for g in spec.get("schedulingGates") or [] if g.get("name") != SLICE_GATE]
        spec["schedulingGates"] = [*gates, {"name": SLICE_GATE}]
    annotations.update(dict(req.annotations))
    meta["annotations"] = annotations
    if node_selector:
        spec["nodeSelector"] = node_selector
    spec.setdefault("enableServiceLinks", False)
    own = {HOME_VOLUME, *(_shared_name(i) for i in range(len(req.shared_volumes)))}
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in own]
    volumes.append({"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": req.home_claim}})
    volumes += [
        {"name": _shared_name(i), "persistentVolumeClaim": {"claimName": v.name, "readOnly": True}}
        for i, v in enumerate(req.shared_volumes)
    ]
    spec["volumes"] = volumes
    containers = list(spec.get("containers") or [])
    index = next((i for i, c in enumerate(containers) if c.get("name") == "notebook"), 0)
    if containers:
        containers[index] = _lab_container(containers[index], req)
    spec["containers"] = containers
    return apply_floor(pod)


def kubespawner_like_pod(req: PodRequest) -> Manifest:
    """The pod KubeSpawner builds with its default settings for ``req`` (name, image, command,
    port, environment, node selector, labels, working directory, uid and fs group): the base
    that :func:`build_pod` gives to :func:`lab_pod`, for tools and tests without a spawner."""
    container: Manifest = {
        "name": "notebook",
        "image": req.image,
        "imagePullPolicy": "IfNotPresent",
        "args": list(req.command),
        "env": [{"name": k, "value": v} for k, v in req.env],
        "ports": [{"name": "notebook-port", "containerPort": req.port}],
        "resources": {},
        "securityContext": {"runAsUser": req.uid, "allowPrivilegeEscalation": False},
    }
    if req.working_dir:
        container["workingDir"] = req.working_dir
    spec: Manifest = {
        "automountServiceAccountToken": False,
        "restartPolicy": "OnFailure",
        "securityContext": {"fsGroup": req.fs_group},
        "containers": [container],
    }
    if req.node_selector:
        spec["nodeSelector"] = dict(req.node_selector)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": req.pod_name,
            "namespace": req.namespace,
            "labels": dict(req.extra_labels),
            "annotations": {},
        },
        "spec": spec,
    }


def build_pod(req: PodRequest) -> Manifest:
    """The pod for one student's server, from a KubeSpawner-like base (see :func:`lab_pod`)."""
    return lab_pod(kubespawner_like_pod(req), req)


def build_pvc(req: PvcRequest) -> Manifest:
    """The student's home volume claim (kept when the server stops)."""
    labels = {LABEL_COMPONENT: "singleuser-storage", LABEL_MANAGED_BY: MANAGED_BY}
    if req.username:
        labels[LABEL_USER] = label_value(req.username)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": req.name,
            "namespace": req.namespace,
            "labels": labels,
            "annotations": {ANNOTATION_USER: req.username} if req.username else {},
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": req.storage_class,
            "resources": {"requests": {"storage": format_memory(req.size_bytes)}},
        },
    }


def lab_pvc(base: Manifest, req: PvcRequest) -> Manifest:
    """KubeSpawner's home volume claim ``base`` with the profile's size and LabHub's labels (the
    storage class, access modes, selector and extra labels stay KubeSpawner's)."""
    pvc = copy.deepcopy(base)
    meta = pvc.setdefault("metadata", {})
    labels = {LABEL_MANAGED_BY: MANAGED_BY, **(meta.get("labels") or {})}
    if req.username:
        labels[LABEL_USER] = label_value(req.username)
        meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_USER: req.username}
    meta["labels"] = labels
    spec = pvc.setdefault("spec", {})
    resources = dict(spec.get("resources") or {})
    resources["requests"] = {
        **(resources.get("requests") or {}),
        "storage": format_memory(req.size_bytes),
    }
    spec["resources"] = resources
    return pvc


_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")


def retarget_pod(pod: Manifest, slice_type: str) -> Manifest:
    """A copy of a queued pod asking for one slice of ``slice_type`` instead, without the gate.

    Used when a student is admitted on a declared fallback slice type: a pod's resource requests
    cannot change, so the admission controller replaces the queued pod with this one. The device
    plugin convention is read from the pod itself (mixed, single or shared resource names); the
    server-set metadata and the status are dropped.
    """
    meta = {k: v for k, v in (pod.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    meta.pop("deletionTimestamp", None)
    meta["labels"] = {**(meta.get("labels") or {}), LABEL_SLICE_TYPE: label_value(slice_type)}
    spec = dict(pod.get("spec") or {})
    spec.pop("nodeName", None)
    gates = [g for g in spec.get("schedulingGates") or [] if g.get("name") != SLICE_GATE]
    if gates:
        spec["schedulingGates"] = gates
    else:
        spec.pop("schedulingGates", None)
    selector = dict(spec.get("nodeSelector") or {})
    product = selector.get(PRODUCT_LABEL, "")
    if PRODUCT_MIG_INFIX in product:
        prefix = product.split(PRODUCT_MIG_INFIX)[0]
        selector[PRODUCT_LABEL] = f"{prefix}{PRODUCT_MIG_INFIX}{slice_type}"
        spec["nodeSelector"] = selector
    containers = []
    for container in spec.get("containers") or []:
        resources = dict(container.get("resources") or {})
        for section in ("limits", "requests"):
            table = dict(resources.get(section) or {})
            for name in [n for n in table if n.startswith(MIG_RESOURCE_PREFIX)]:
                qty = table.pop(name)
                _, shared = split_shared(name)
                base, _ = split_shared(slice_type)
                table[mig_resource(base, shared)] = qty
            resources[section] = table
        containers.append({**container, "resources": resources})
    spec["containers"] = containers
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
