"""MIG layouts: validity, enumeration of maximal layouts and stranded capacity."""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass

from hub_ext.core.mig.catalog import GpuModel, MigProfile, Placement


@dataclass(frozen=True)
class Instance:
    """A GPU instance of ``profile`` at ``placement``."""

    profile: MigProfile
    placement: Placement


@dataclass(frozen=True)
class Layout:
    """A set of GPU instances on one GPU, sorted by placement start."""

    instances: tuple[Instance, ...]

    def counts(self) -> dict[str, int]:
        """Instances per profile name."""
        return dict(Counter(i.profile.name for i in self.instances))


@dataclass(frozen=True)
class Stranded:
    """Capacity of a GPU that no further instance can use."""

    memory_slices: int
    compute_slices: int

    @property
    def total(self) -> int:
        """Memory plus compute slices stranded."""
        return self.memory_slices + self.compute_slices


def _slots(inst: Instance) -> range:
    return range(inst.placement.start, inst.placement.start + inst.placement.size)


def is_valid(model: GpuModel, instances: tuple[Instance, ...]) -> bool:
    """Placements allowed, memory slices disjoint, compute fits, max instances respected."""
    used: set[int] = set()
    compute = 0
    per_profile: Counter[str] = Counter()
    media = 0
    for inst in instances:
        if inst.profile not in model.profiles or inst.placement not in inst.profile.placements:
            return False
        slots = set(_slots(inst))
        if slots & used or max(slots, default=0) >= model.memory_slices:
            return False
        used |= slots
        compute += inst.profile.compute_slices
        per_profile[inst.profile.name] += 1
        if per_profile[inst.profile.name] > inst.profile.max_instances:
            return False
        media += inst.profile.name.endswith("+me")
    return compute <= model.compute_slices and media <= 1


def _candidates(model: GpuModel, with_media: bool) -> tuple[Instance, ...]:
    return tuple(
        Instance(p, pl)
        for p in model.profiles
        if with_media or not p.name.endswith("+me")
        for pl in p.placements
    )


def addable(model: GpuModel, layout: Layout, with_media: bool = False) -> tuple[Instance, ...]:
    """Instances that could be added to ``layout`` keeping it valid."""
    return tuple(
        c for c in _candidates(model, with_media) if is_valid(model, (*layout.instances, c))
    )


def _canonical(instances: tuple[Instance, ...]) -> Layout:
    return Layout(tuple(sorted(instances, key=lambda i: (i.placement.start, i.profile.name))))


@functools.cache
def all_layouts(model: GpuModel, with_media: bool = False) -> tuple[Layout, ...]:
    """Every valid layout (including the empty one) of ``model``."""
    cands = _candidates(model, with_media)
    found: list[Layout] = []

    def walk(index: int, chosen: tuple[Instance, ...]) -> None:
        found.append(_canonical(chosen))
        for j in range(index, len(cands)):
            nxt = (*chosen, cands[j])
            if is_valid(model, nxt):
                walk(j + 1, nxt)

    walk(0, ())
    return tuple(found)


@functools.cache
def maximal_layouts(model: GpuModel, with_media: bool = False) -> tuple[Layout, ...]:
    """Every valid layout to which no further instance can be added."""
    return tuple(
        lay for lay in all_layouts(model, with_media) if not addable(model, lay, with_media)
    )


def stranded(model: GpuModel, layout: Layout) -> Stranded:
    """Memory and compute slices of ``layout`` that no addable instance can use."""
    used = {s for inst in layout.instances for s in _slots(inst)}
    free_mem = [s for s in range(model.memory_slices) if s not in used]
    free_compute = model.compute_slices - sum(i.profile.compute_slices for i in layout.instances)
    extra = addable(model, layout)
    usable = {s for inst in extra for s in _slots(inst)}
    mem = sum(1 for s in free_mem if s not in usable)
    compute = free_compute - max((i.profile.compute_slices for i in extra), default=0)
    return Stranded(memory_slices=mem, compute_slices=max(compute, 0) if not extra else 0)
