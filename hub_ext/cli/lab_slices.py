"""The slice types a lab offers, for ``labhub profiles validate --lab``.

``--lab`` takes a cluster file (the devcluster's YAML: nodes with GPUs and MIG layouts) or a
kubeconfig of a live cluster; either way the slice types are read from the Node objects'
allocatable GPU resources, as the hub's capacity model reads them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hub_ext.core.capacity.model import resource_slice_type
from hub_ext.core.profiles.model import CourseProfile


class LabError(ValueError):
    """The --lab file is neither a readable cluster file nor a usable kubeconfig."""


def slice_types_of_nodes(nodes: Iterable[Mapping[str, Any]]) -> set[str]:
    """Every slice type some node advertises at least one unit of."""
    offered: set[str] = set()
    for node in nodes:
        labels = (node.get("metadata") or {}).get("labels") or {}
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        for resource, amount in allocatable.items():
            slice_type = resource_slice_type(str(resource), labels)
            if slice_type is not None and str(amount) not in ("0", ""):
                offered.add(str(slice_type))
    return offered


def _is_kubeconfig(data: object) -> bool:
    return isinstance(data, dict) and "clusters" in data and "contexts" in data


async def _live_nodes(kubeconfig: Path) -> list[dict[str, Any]]:
    from kubernetes_asyncio.client import CoreV1Api

    from hub_ext.adapters.k8s.gpu_pods import kubernetes_client

    api = await kubernetes_client(str(kubeconfig))
    try:
        response = await CoreV1Api(api).list_node(_preload_content=False)
        return list(json.loads(await response.read()).get("items") or [])
    finally:
        await api.close()


def lab_slice_types(path: Path) -> set[str]:
    """The slice types of the lab described by ``path`` (cluster file or kubeconfig)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LabError(f"--lab {path}: cannot read it: {exc}") from None
    if _is_kubeconfig(data):
        try:
            nodes = asyncio.run(_live_nodes(path))
        except Exception as exc:
            raise LabError(
                f"--lab {path}: cannot list the cluster's nodes with this kubeconfig: {exc}"
            ) from None
        return slice_types_of_nodes(nodes)
    from hub_ext.devcluster.config import ClusterConfigError, parse_cluster_config
    from hub_ext.devcluster.node_objects import node_object

    try:
        config = parse_cluster_config(data)
    except ClusterConfigError as exc:
        raise LabError(
            f"--lab {path}: neither a kubeconfig nor a valid cluster file: {exc}"
        ) from None
    return slice_types_of_nodes(node_object(node) for node in config.nodes)


def missing_slice_types(profiles: Iterable[CourseProfile], offered: set[str]) -> list[str]:
    """One message per profile slice type the lab does not offer."""
    shown = ", ".join(sorted(offered)) or "none"
    return [
        f"{p.slug}/profile.yaml: gpu: slice type {t!r} is not offered by the lab "
        f"(offered: {shown}); change the profile or the lab's MIG layout"
        for p in profiles
        if p.gpu is not None
        for t in p.gpu.slice_types
        if t not in offered
    ]
