"""Layout planner for one seat requirement (seats of at least X bytes / C compute slices).

Each GPU model contributes independently: per GPU, the best layout is the maximal layout with the
most qualifying instances (tie-break: fewest stranded slices); with sharing allowed a whole GPU
can instead serve ``floor(gpu_memory / X)`` seats (MPS per-client limit or time-slicing).
Because seats are additive over GPUs and a single requirement is served, taking the per-GPU
optimum on every GPU is optimal for the total.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub_ext.core.layouts import Layout, Stranded, maximal_layouts, stranded
from hub_ext.core.mig import Catalog, GpuModel


@dataclass(frozen=True)
class SeatRequirement:
    """``seats`` seats each needing ``min_memory_bytes`` and ``min_compute_slices``."""

    seats: int
    min_memory_bytes: int
    min_compute_slices: int = 0


@dataclass(frozen=True)
class GpuChoice:
    """What one GPU of ``model`` runs: a MIG layout, or whole-GPU sharing when layout is None."""

    model: GpuModel
    layout: Layout | None
    seats: int
    stranded: Stranded


@dataclass(frozen=True)
class ModelPlan:
    """``count`` GPUs of one model, all using ``choice``."""

    count: int
    choice: GpuChoice


@dataclass(frozen=True)
class Alternative:
    """``count`` GPUs of ``model`` alone would meet the demand."""

    model: str
    count: int


@dataclass(frozen=True)
class Plan:
    """Planner result."""

    requirement: SeatRequirement
    groups: tuple[ModelPlan, ...]
    seats_max: int
    alternatives: tuple[Alternative, ...]

    @property
    def feasible(self) -> bool:
        """Whether the requested seats are met."""
        return self.seats_max >= self.requirement.seats


def layout_seats(layout: Layout, req: SeatRequirement) -> int:
    """Instances of ``layout`` that satisfy the requirement."""
    return sum(
        1
        for i in layout.instances
        if i.profile.memory_bytes >= req.min_memory_bytes
        and i.profile.compute_slices >= req.min_compute_slices
    )


def best_choice(model: GpuModel, req: SeatRequirement, allow_sharing: bool) -> GpuChoice:
    """The per-GPU optimum for ``model``."""
    best: GpuChoice | None = None
    for lay in maximal_layouts(model):
        seats = layout_seats(lay, req)
        cand = GpuChoice(model, lay, seats, stranded(model, lay))
        if best is None or (seats, -cand.stranded.total) > (best.seats, -best.stranded.total):
            best = cand
    assert best is not None
    if allow_sharing and req.min_memory_bytes > 0:
        shared = model.memory_bytes // req.min_memory_bytes
        if req.min_compute_slices > 0:
            shared = min(shared, model.compute_slices // req.min_compute_slices)
        if shared > best.seats:
            best = GpuChoice(model, None, shared, Stranded(0, 0))
    return best


def plan(
    catalog: Catalog,
    inventory: tuple[tuple[GpuModel, int], ...],
    req: SeatRequirement,
    allow_sharing: bool = False,
) -> Plan:
    """Plan layouts for ``inventory`` maximising seats that meet ``req``."""
    groups = tuple(
        ModelPlan(count, best_choice(model, req, allow_sharing)) for model, count in inventory
    )
    seats_max = sum(g.count * g.choice.seats for g in groups)
    alternatives: list[Alternative] = []
    if seats_max < req.seats:
        for model in catalog.models:
            per_gpu = best_choice(model, req, allow_sharing).seats
            if per_gpu > 0:
                alternatives.append(Alternative(model.name, -(-req.seats // per_gpu)))
    return Plan(req, groups, min(seats_max, seats_max), tuple(alternatives))
