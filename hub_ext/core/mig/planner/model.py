"""The planner's inputs and answers (requirements, nodes, the plan) and the integer programme's
data (:class:`Problem`: groups of interchangeable GPUs and the columns they may run)."""

from __future__ import annotations

from dataclasses import dataclass

from hub_ext.core.mig.catalog import GpuModel, MigProfile
from hub_ext.core.mig.layouts import Layout, Stranded

Vec = tuple[int, ...]


@dataclass(frozen=True)
class Requirement:
    """``seats`` seats of at least the given memory and compute slices, or of ``profile``."""

    seats: int
    min_memory_bytes: int = 0
    min_compute_slices: int = 0
    profile: str | None = None

    def qualifies(self, prof: MigProfile) -> bool:
        """Whether an instance of ``prof`` can serve one seat of this requirement."""
        if self.profile is not None:
            return prof.name == self.profile
        return (
            prof.memory_bytes >= self.min_memory_bytes
            and prof.compute_slices >= self.min_compute_slices
        )

    def shared_seats(self, model: GpuModel) -> int:
        """Seats one whole shared (non-MIG) GPU of ``model`` serves; 0 for exact profiles."""
        if self.profile is not None or self.min_memory_bytes <= 0:
            return 0
        seats = model.memory_bytes // self.min_memory_bytes
        if self.min_compute_slices > 0:
            seats = min(seats, model.compute_slices // self.min_compute_slices)
        return seats

    def describe(self) -> str:
        """Short human-readable form."""
        if self.profile is not None:
            return f"{self.seats} seats of exactly {self.profile}"
        text = f"{self.seats} seats of >= {self.min_memory_bytes / 2**30:g} GiB"
        if self.min_compute_slices:
            text += f" and >= {self.min_compute_slices} compute slices"
        return text


@dataclass(frozen=True)
class Node:
    """A node and its GPUs (model, count)."""

    name: str
    gpus: tuple[tuple[GpuModel, int], ...]


@dataclass(frozen=True)
class Option:
    """What one GPU may run: a layout (None: MIG disabled, shared) and the seats it serves."""

    layout: Layout | None
    seats: Vec
    stranded: Stranded


@dataclass(frozen=True)
class GpuAssignment:
    """The option chosen for GPU ``index`` of ``node``."""

    node: str
    index: int
    model: GpuModel
    option: Option


@dataclass(frozen=True)
class ExtraGpus:
    """Adding ``extra`` GPUs of ``model`` meets the demand; ``alone`` of them would on their own.
    Both are the smallest such numbers, proven by the solver."""

    model: str
    extra: int
    alone: int


@dataclass(frozen=True)
class SharingFits:
    """The demand does not fit with MIG but does with whole GPUs time-sliced (MIG disabled,
    ``--allow-sharing``): ``seats`` seats served then (all of them)."""

    seats: int


@dataclass(frozen=True)
class MultiPlan:
    """Planner result: every answer in it is proven optimal."""

    requirements: tuple[Requirement, ...]
    gpus: tuple[GpuAssignment, ...]
    satisfied: Vec
    alternatives: tuple[ExtraGpus, ...]
    sharing: SharingFits | None = None

    @property
    def seats_requested(self) -> int:
        """Total seats demanded."""
        return sum(r.seats for r in self.requirements)

    @property
    def seats_max(self) -> int:
        """Most seats that can be satisfied at once."""
        return sum(self.satisfied)

    @property
    def feasible(self) -> bool:
        """Whether every requirement is met."""
        return self.seats_max >= self.seats_requested

    @property
    def stranded(self) -> Stranded:
        """Stranded capacity over all GPUs."""
        return Stranded(
            sum(g.option.stranded.memory_slices for g in self.gpus),
            sum(g.option.stranded.compute_slices for g in self.gpus),
        )

    @property
    def distinct_layouts(self) -> int:
        """Distinct (GPU model, layout) pairs; "MIG disabled" counts as one layout per model."""
        return len({(g.model.name, layout_key(g.option.layout)) for g in self.gpus})


def layout_key(layout: Layout | None) -> tuple[tuple[str, int], ...] | None:
    """What makes two layouts of one model the same to mig-parted: instances per profile
    (placements aside); None for MIG disabled."""
    return None if layout is None else tuple(sorted(layout.counts().items()))


@dataclass(frozen=True)
class Column:
    """One GPU of ``group`` set up one way: instances per class (``Problem.classes``) and cost."""

    group: int
    supply: tuple[int, ...]
    cost: int


@dataclass(frozen=True)
class Problem:
    """How many GPUs of each group run each column.

    ``classes``: the instance classes, each a bitmask of the requirements its instances may
    serve; ``demand``: seats per requirement; ``sizes``: GPUs per group. The seats a plan serves
    are the maximum flow from classes to requirements (:func:`seats_served`)."""

    classes: tuple[int, ...]
    demand: tuple[int, ...]
    sizes: tuple[int, ...]
    columns: tuple[Column, ...]

    def cost(self, counts: tuple[int, ...] | list[int]) -> int:
        """The cost of the given column counts."""
        return sum(n * col.cost for n, col in zip(counts, self.columns, strict=True))

    def everyone(self, counts: tuple[int, ...]) -> tuple[int, ...]:
        """The counts with every unused GPU on its group's most used cost-0 column (seats can
        only grow, the cost stays); a group without a cost-0 column keeps its unused GPUs."""
        final = list(counts)
        for g, n in enumerate(self.sizes):
            cols = [p for p, col in enumerate(self.columns) if col.group == g]
            idle = n - sum(final[p] for p in cols)
            free = [p for p in cols if self.columns[p].cost == 0]
            if idle and free:
                final[max(free, key=lambda p: (final[p], -p))] += idle
        return tuple(final)


@dataclass(frozen=True)
class Solution:
    """Column counts, the seats they serve and their cost."""

    counts: tuple[int, ...]
    seats: int
    cost: int
