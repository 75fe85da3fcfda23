"""Capacity model: which GPU slices are free, per slice type, per node and per zone.

Nodes advertise GPU slices in one of three NVIDIA device-plugin conventions:

* **mixed** MIG strategy: one extended resource per MIG profile, ``nvidia.com/mig-1g.10gb``;
* **single** MIG strategy: ``nvidia.com/gpu``, with the profile only visible in the GPU Feature
  Discovery product label (``nvidia.com/gpu.product=NVIDIA-A100-SXM4-40GB-MIG-1g.10gb``);
* **shared** GPUs (time-slicing or MPS replicas): ``.shared`` resource names
  (``nvidia.com/gpu.shared``, ``nvidia.com/mig-1g.10gb.shared``), or the plain names with
  ``nvidia.com/gpu.replicas`` above 1 (the product label then ends in ``-SHARED``).

A *slice type* names what one unit of such a resource is: the MIG profile (``1g.10gb``), ``gpu``
for a whole GPU, and a ``.shared`` suffix for a time-sliced or MPS replica of either
(``gpu.shared``, ``1g.10gb.shared``).

A pod holds slices when it is bound to a node that is Ready and it has not terminated. A pod whose
scheduling gate has been lifted but that is not bound yet is *in flight*: it holds a slice of its
type cluster-wide (not on any node), so that an admission made a moment ago is never handed out
twice while the scheduler is still placing the pod.

:func:`compute_capacity` recomputes everything from scratch;
:class:`hub_ext.core.capacity.index.CapacityIndex` keeps the same answer up to date incrementally.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import NewType

from hub_ext.core import k8s_names as names
from hub_ext.core.k8s_names import SliceStrategy

SliceType = NewType("SliceType", str)
PodUid = NewType("PodUid", str)

WHOLE_GPU = SliceType(names.WHOLE_GPU)

_MIG_RESOURCE = re.compile(
    rf"^{re.escape(names.MIG_RESOURCE_PREFIX)}(?P<profile>[0-9a-z][0-9a-z.+]*?)"
    rf"(?P<shared>{re.escape(names.SHARED_SUFFIX)})?$"
)
_MIG_PRODUCT = re.compile(re.escape(names.PRODUCT_MIG_INFIX) + r"(?P<profile>[0-9a-z][0-9a-z.+]*)$")


class PodPhase(Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"

    @property
    def terminated(self) -> bool:
        return self in (PodPhase.SUCCEEDED, PodPhase.FAILED)


class SharingStrategy(Enum):
    NONE = "none"
    TIME_SLICING = "time-slicing"
    MPS = "mps"


@dataclass(frozen=True)
class Node:
    """A Kubernetes node as far as GPU slices are concerned."""

    name: str
    zone: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    allocatable: Mapping[str, int] = field(default_factory=dict, hash=False)
    ready: bool = True
    unschedulable: bool = False

    @classmethod
    def from_labels(
        cls,
        name: str,
        labels: Mapping[str, str],
        allocatable: Mapping[str, int],
        *,
        ready: bool = True,
        unschedulable: bool = False,
    ) -> Node:
        """A node whose zone is read from ``topology.kubernetes.io/zone`` (``""`` if unset)."""
        return cls(
            name, labels.get(names.ZONE_LABEL, ""), labels, allocatable, ready, unschedulable
        )

    @property
    def offers_slices(self) -> bool:
        """Whether new pods can get slices here: Ready and not cordoned."""
        return self.ready and not self.unschedulable


@dataclass(frozen=True)
class Pod:
    """A pod as far as GPU slices are concerned. ``node`` is None until the pod is bound."""

    uid: PodUid
    namespace: str
    name: str
    requests: Mapping[str, int] = field(default_factory=dict, hash=False)
    node: str | None = None
    phase: PodPhase = PodPhase.PENDING
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    gated: bool = False


@dataclass(frozen=True)
class SliceResource:
    """One extended resource of a node that hands out GPU slices."""

    resource: str
    slice_type: SliceType
    count: int
    memory_mib: int | None = None
    replicas: int = 1


@dataclass(frozen=True)
class GpuLabels:
    """What GPU Feature Discovery labels say about a node's GPUs."""

    product: str | None
    count: int
    memory_mib: int | None
    mig_strategy: SliceStrategy
    mig_config: str | None
    replicas: int
    sharing: SharingStrategy
    mig_profiles: tuple[tuple[SliceType, int], ...]
    """MIG profiles with their device counts (mixed strategy labels), sorted by name."""


def _int_label(labels: Mapping[str, str], key: str, default: int | None) -> int | None:
    value = labels.get(key)
    if value is None:
        return default
    try:
        return int(value.strip())
    except ValueError:
        return default


def parse_gpu_labels(labels: Mapping[str, str]) -> GpuLabels:
    """Read GPU Feature Discovery labels (unknown or malformed values fall back to defaults)."""
    try:
        strategy = SliceStrategy(labels.get(names.STRATEGY_LABEL, "none"))
    except ValueError:
        strategy = SliceStrategy.NONE
    try:
        sharing = SharingStrategy(labels.get(names.SHARING_LABEL, "none"))
    except ValueError:
        sharing = SharingStrategy.NONE
    replicas = max(1, _int_label(labels, names.REPLICAS_LABEL, 1) or 1)
    if replicas > 1 and sharing is SharingStrategy.NONE:
        sharing = SharingStrategy.TIME_SLICING
    profiles: list[tuple[SliceType, int]] = []
    for key, _ in labels.items():
        if key.startswith(names.MIG_RESOURCE_PREFIX) and key.endswith(".count"):
            profile = key[len(names.MIG_RESOURCE_PREFIX) : -len(".count")]
            profiles.append((SliceType(profile), _int_label(labels, key, 0) or 0))
    return GpuLabels(
        product=labels.get(names.PRODUCT_LABEL),
        count=_int_label(labels, names.GPU_COUNT_LABEL, 0) or 0,
        memory_mib=_int_label(labels, names.GPU_MEMORY_LABEL, None),
        mig_strategy=strategy,
        mig_config=labels.get(names.MIG_CONFIG_LABEL),
        replicas=replicas,
        sharing=sharing,
        mig_profiles=tuple(sorted(profiles)),
    )


def _product_slice(product: str | None) -> tuple[SliceType, bool]:
    """The base slice type of ``nvidia.com/gpu`` on a node with this product, and -SHARED."""
    if not product:
        return WHOLE_GPU, False
    shared = product.endswith(names.PRODUCT_SHARED_SUFFIX)
    if shared:
        product = product[: -len(names.PRODUCT_SHARED_SUFFIX)]
    match = _MIG_PRODUCT.search(product)
    return (SliceType(match.group("profile")) if match else WHOLE_GPU), shared


def shared_type(base: SliceType) -> SliceType:
    """The slice type of a time-sliced or MPS replica of ``base``."""
    return SliceType(names.shared_type(base))


def resource_slice_type(resource: str, labels: Mapping[str, str]) -> SliceType | None:
    """The slice type one unit of ``resource`` stands for on a node with these labels.

    None when the resource is not a GPU resource.
    """
    replicas = max(1, _int_label(labels, names.REPLICAS_LABEL, 1) or 1)
    match = _MIG_RESOURCE.match(resource)
    if match:
        base = SliceType(match.group("profile"))
        return shared_type(base) if match.group("shared") or replicas > 1 else base
    if resource in (names.GPU_RESOURCE, names.GPU_RESOURCE + names.SHARED_SUFFIX):
        base, shared_product = _product_slice(labels.get(names.PRODUCT_LABEL))
        shared = resource.endswith(names.SHARED_SUFFIX) or shared_product or replicas > 1
        return shared_type(base) if shared else base
    return None


def node_slice_resources(node: Node) -> tuple[SliceResource, ...]:
    """The GPU-slice resources a node advertises in ``allocatable``, sorted by resource name."""
    labels = node.labels
    replicas = max(1, _int_label(labels, names.REPLICAS_LABEL, 1) or 1)
    out: list[SliceResource] = []
    for resource in sorted(node.allocatable):
        slice_type = resource_slice_type(resource, labels)
        if slice_type is None:
            continue
        match = _MIG_RESOURCE.match(resource)
        if match:
            memory = _int_label(labels, names.mig_label(match.group("profile"), "memory"), None)
        else:
            memory = _int_label(labels, names.GPU_MEMORY_LABEL, None)
        count = max(0, node.allocatable[resource])
        out.append(SliceResource(resource, slice_type, count, memory, replicas))
    return tuple(out)


def pod_gpu_requests(pod: Pod) -> tuple[tuple[str, int], ...]:
    """The GPU resources (``nvidia.com/...``) a pod requests, sorted, positive counts only."""
    return tuple(
        sorted(
            (name, qty)
            for name, qty in pod.requests.items()
            if qty > 0
            and (name.startswith(names.GPU_RESOURCE) or name.startswith(names.MIG_RESOURCE_PREFIX))
        )
    )


def pod_in_flight_type(pod: Pod) -> SliceType | None:
    """The slice type an admitted but unbound pod will take.

    The ``labhub.io/slice-type`` label wins; otherwise a mixed-strategy resource name says it.
    """
    label = pod.labels.get(names.LABEL_SLICE_TYPE)
    if label:
        return SliceType(label)
    for resource, _ in pod_gpu_requests(pod):
        match = _MIG_RESOURCE.match(resource)
        if match:
            base = SliceType(match.group("profile"))
            return shared_type(base) if match.group("shared") else base
    return None


class PodState(Enum):
    """What a pod does to capacity."""

    NONE = "none"  # terminated, queued behind its gate, or requests no GPU
    BOUND = "bound"  # bound to a node: holds slices there (if the node is Ready)
    IN_FLIGHT = "in-flight"  # admitted, not bound yet: holds a slice cluster-wide


def pod_state(pod: Pod) -> PodState:
    if pod.phase.terminated or not pod_gpu_requests(pod):
        return PodState.NONE
    if pod.node is not None:
        return PodState.BOUND
    if pod.gated or pod_in_flight_type(pod) is None:
        return PodState.NONE
    return PodState.IN_FLIGHT


@dataclass(frozen=True)
class SliceCount:
    """Capacity, use and free slices of one slice type somewhere."""

    capacity: int = 0
    used: int = 0
    free: int = 0

    def __add__(self, other: SliceCount) -> SliceCount:
        return SliceCount(
            self.capacity + other.capacity, self.used + other.used, self.free + other.free
        )


CountMap = Mapping[SliceType, SliceCount]


@dataclass(frozen=True)
class Capacity:
    """Slices per slice type: per node, per zone, and cluster-wide.

    ``in_flight`` counts admitted but unbound pods; the cluster-wide ``free`` has them subtracted
    (per node and per zone they are unknown, so not subtracted there).
    """

    by_node: Mapping[str, CountMap]
    by_zone: Mapping[str, CountMap]
    in_flight: Mapping[SliceType, int]

    def totals(self) -> dict[SliceType, SliceCount]:
        """Cluster-wide counts per slice type (types with nothing anywhere left out)."""
        out: dict[SliceType, SliceCount] = {}
        for counts in self.by_zone.values():
            for slice_type, count in counts.items():
                out[slice_type] = out.get(slice_type, SliceCount()) + count
        out = {t: c for t, c in out.items() if c != SliceCount()}
        for slice_type, n in self.in_flight.items():
            if n:
                out.setdefault(slice_type, SliceCount())
        return out

    def free_by_type(self) -> dict[SliceType, int]:
        """Free slices per type that an admission may hand out now."""
        return {
            slice_type: max(0, count.free - self.in_flight.get(slice_type, 0))
            for slice_type, count in sorted(self.totals().items())
        }

    def free(self, slice_type: str, *, zone: str | None = None, node: str | None = None) -> int:
        if node is not None:
            return self.by_node.get(node, {}).get(SliceType(slice_type), SliceCount()).free
        if zone is not None:
            return self.by_zone.get(zone, {}).get(SliceType(slice_type), SliceCount()).free
        return self.free_by_type().get(SliceType(slice_type), 0)

    def canonical(self) -> tuple[object, ...]:
        """A comparable form without empty entries (for equality across implementations)."""

        def clean(table: Mapping[str, CountMap]) -> tuple[object, ...]:
            return tuple(
                (key, tuple(sorted((t, c) for t, c in counts.items() if c != SliceCount())))
                for key, counts in sorted(table.items())
                if any(c != SliceCount() for c in counts.values())
            )

        flight = tuple(sorted((t, n) for t, n in self.in_flight.items() if n))
        return clean(self.by_node), clean(self.by_zone), flight


def node_counts(node: Node, used: Mapping[str, int]) -> dict[SliceType, SliceCount]:
    """Per slice type counts of one node, given the GPU resources its bound pods request."""
    out: dict[SliceType, SliceCount] = {}
    offers = node.offers_slices
    for res in node_slice_resources(node):
        in_use = used.get(res.resource, 0) if node.ready else 0
        free = max(0, res.count - in_use) if offers else 0
        count = SliceCount(res.count if node.ready else 0, in_use, free)
        out[res.slice_type] = out.get(res.slice_type, SliceCount()) + count
    return out


def compute_capacity(nodes: Iterable[Node], pods: Iterable[Pod]) -> Capacity:
    """Free slices from scratch. A later node or pod with the same name or uid replaces one."""
    node_map = {n.name: n for n in nodes}
    pod_map = {p.uid: p for p in pods}
    used: dict[str, dict[str, int]] = {}
    in_flight: dict[SliceType, int] = {}
    for pod in pod_map.values():
        state = pod_state(pod)
        if state is PodState.BOUND:
            assert pod.node is not None
            per_node = used.setdefault(pod.node, {})
            for resource, qty in pod_gpu_requests(pod):
                per_node[resource] = per_node.get(resource, 0) + qty
        elif state is PodState.IN_FLIGHT:
            slice_type = pod_in_flight_type(pod)
            assert slice_type is not None
            in_flight[slice_type] = in_flight.get(slice_type, 0) + sum(
                q for _, q in pod_gpu_requests(pod)
            )
    by_node: dict[str, CountMap] = {}
    by_zone: dict[str, dict[SliceType, SliceCount]] = {}
    for name, node in node_map.items():
        counts = node_counts(node, used.get(name, {}))
        if not counts:
            continue
        by_node[name] = counts
        zone = by_zone.setdefault(node.zone, {})
        for slice_type, count in counts.items():
            zone[slice_type] = zone.get(slice_type, SliceCount()) + count
    return Capacity(by_node, dict(by_zone), in_flight)
