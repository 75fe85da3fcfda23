"""Every Kubernetes and NVIDIA name LabHub writes or reads: labels, annotations, resources, gates.

One module, so that a renamed label is one edit and the manifests, the capacity model, the
admission controller and the services can never disagree. NVIDIA's names are those of the GPU
Operator: the device plugin's extended resources (``nvidia.com/gpu``, ``nvidia.com/mig-<profile>``,
with a ``.shared`` suffix for time-sliced or MPS replicas when resources are renamed) and the labels
of GPU Feature Discovery (GFD). A slice type is ``gpu`` for a whole GPU or a MIG profile such as
``1g.10gb``, with the same ``.shared`` suffix for a replica of either; :func:`split_shared`,
:func:`shared_type` and :func:`slice_resource` are the only places that handle it.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

# LabHub's own labels and annotations on user pods and volumes.
SLICE_GATE: Final = "labhub.io/slice-admission"
"""Scheduling gate every GPU server is created behind; the admission controller removes it."""
LABEL_USER: Final = "labhub.io/user"
LABEL_COURSE: Final = "labhub.io/course"
LABEL_GROUP: Final = "labhub.io/seminar-group"
LABEL_SLICE_TYPE: Final = "labhub.io/slice-type"
"""On a pod: the slice type it was admitted to; on a node: the slice type it offers."""
ANNOTATION_USER: Final = "labhub.io/username"
ANNOTATION_SERVER: Final = "labhub.io/server-name"
ANNOTATION_FALLBACKS: Final = "labhub.io/slice-types"
ANNOTATION_ENQUEUED: Final = "labhub.io/enqueued-at"
ANNOTATION_ADMITTED: Final = "labhub.io/admitted-at"
ANNOTATION_MEMBER: Final = "labhub.io/course-member"
ANNOTATION_IDLE: Final = "labhub.io/idle-timeout-seconds"
ANNOTATION_RUNTIME: Final = "labhub.io/max-runtime-seconds"
ANNOTATION_DETACHED: Final = "labhub.io/detached-at"
"""Set on a queued pod whose hub restarted: it keeps its place but is not admitted until the
student presses Start again (which removes the annotation)."""
ANNOTATION_ROOM: Final = "labhub.io/room"
"""On an admitted pod under room-first packing: the room (zone) its node affinity requires."""
ANNOTATION_TAKEN_AT: Final = "labhub.io/taken-at"
"""On a VolumeSnapshot: when the backup job took it."""
ANNOTATION_SOURCE_PVC: Final = "labhub.io/source-pvc"
"""On a VolumeSnapshot: the home volume it was taken of."""

# Kubernetes' recommended labels.
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
ZONE_LABEL: Final = "topology.kubernetes.io/zone"

# NVIDIA device plugin resources.
NVIDIA_PREFIX: Final = "nvidia.com/"
GPU_RESOURCE: Final = "nvidia.com/gpu"
MIG_RESOURCE_PREFIX: Final = "nvidia.com/mig-"
SHARED_SUFFIX: Final = ".shared"
WHOLE_GPU: Final = "gpu"

# GPU Feature Discovery labels on nodes.
PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
REPLICAS_LABEL: Final = "nvidia.com/gpu.replicas"
STRATEGY_LABEL: Final = "nvidia.com/mig.strategy"
SHARING_LABEL: Final = "nvidia.com/gpu.sharing-strategy"
GPU_COUNT_LABEL: Final = "nvidia.com/gpu.count"
GPU_MEMORY_LABEL: Final = "nvidia.com/gpu.memory"
MIG_CONFIG_LABEL: Final = "nvidia.com/mig.config"
PRODUCT_MIG_INFIX: Final = "-MIG-"
PRODUCT_SHARED_SUFFIX: Final = "-SHARED"


class SliceStrategy(Enum):
    """How the NVIDIA device plugin names GPU slices: the one strategy enum.

    ``mixed``: one resource per MIG profile; ``single``: ``nvidia.com/gpu`` with the profile in the
    GFD product label; ``shared``: ``.shared`` replica resources. ``none`` is what a node without
    MIG reports in ``nvidia.com/mig.strategy``; :meth:`parse` (a configured strategy) refuses it.
    """

    NONE = "none"
    MIXED = "mixed"
    SINGLE = "single"
    SHARED = "shared"

    @classmethod
    def parse(cls, text: str) -> SliceStrategy:
        try:
            strategy = cls(text)
        except ValueError:
            strategy = cls.NONE
        if strategy is cls.NONE:
            accepted = ", ".join(s.value for s in cls if s is not cls.NONE)
            raise ValueError(f"slice strategy {text!r} is not known; accepted values: {accepted}")
        return strategy


def split_shared(slice_type: str) -> tuple[str, bool]:
    """``("1g.10gb", True)`` for ``1g.10gb.shared``; ``("gpu", False)`` for ``gpu``."""
    if slice_type.endswith(SHARED_SUFFIX):
        return slice_type[: -len(SHARED_SUFFIX)], True
    return slice_type, False


def shared_type(base: str) -> str:
    """The slice type of a time-sliced or MPS replica of ``base`` (unchanged if already one)."""
    return base if base.endswith(SHARED_SUFFIX) else base + SHARED_SUFFIX


def mig_resource(profile: str, shared: bool = False) -> str:
    """``nvidia.com/mig-1g.10gb`` (mixed strategy), with ``.shared`` for a replica."""
    return f"{MIG_RESOURCE_PREFIX}{profile}{SHARED_SUFFIX if shared else ''}"


def slice_resource(slice_type: str) -> str:
    """The renamed (``.shared``-aware) resource one unit of ``slice_type`` is requested as."""
    base, shared = split_shared(slice_type)
    if base == WHOLE_GPU:
        return GPU_RESOURCE + (SHARED_SUFFIX if shared else "")
    return mig_resource(base, shared)


def mig_label(profile: str, field: str) -> str:
    """A per-profile GFD label, e.g. ``nvidia.com/mig-1g.10gb.memory``."""
    return f"{MIG_RESOURCE_PREFIX}{profile}.{field}"
