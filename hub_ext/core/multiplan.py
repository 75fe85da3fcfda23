"""Exact MIG layout planner for several seat requirements over a per-node GPU inventory.

Method (see ``docs/explanation/mig-planner.md``):

1. Per GPU model, every maximal MIG layout is enumerated (at most a few dozen per model).
   A layout does not fix which requirement an instance serves, so each layout yields the
   Pareto-maximal *seat vectors* (seats per requirement) its instances can serve, capped at the
   demand. With sharing allowed, "MIG disabled, the whole GPU shared by seats of requirement j"
   is one more option. Options with the same (seat vector, stranded slices) are merged, and
   options dominated by another option of the same model (more seats everywhere, fewer stranded
   slices) are dropped.
2. GPUs are processed one by one; the search keeps, for every reachable capped seat vector,
   the least stranded capacity reaching it, and drops states dominated by another state
   (componentwise more seats and no more stranded slices). Because the objective (sum of
   ``min(demand, seats)``) is monotone in the seat vector and stranded slices add up, dominance
   pruning never discards an optimal completion, so the result is exact: most satisfied seats,
   then fewest stranded slices. The remaining tie-break, fewest distinct layouts, is applied by
   preferring, among equal options, the layout already used most.
"""

from __future__ import annotations

import functools
import operator
from collections import Counter
from dataclasses import dataclass

from hub_ext.core.layouts import Layout, Stranded, maximal_layouts, stranded
from hub_ext.core.mig import Catalog, GpuModel, MigProfile

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
    """Adding ``extra`` GPUs of ``model`` meets the demand; ``alone`` of them would on their own."""

    model: str
    extra: int
    alone: int


@dataclass(frozen=True)
class MultiPlan:
    """Planner result."""

    requirements: tuple[Requirement, ...]
    gpus: tuple[GpuAssignment, ...]
    satisfied: Vec
    alternatives: tuple[ExtraGpus, ...]

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


def _pareto(vectors: set[Vec]) -> list[Vec]:
    ordered = sorted(vectors, key=sum, reverse=True)
    kept: list[Vec] = []
    for v in ordered:
        if not any(all(a >= b for a, b in zip(k, v, strict=True)) for k in kept):
            kept.append(v)
    return kept


def layout_vectors(layout: Layout, reqs: tuple[Requirement, ...]) -> list[Vec]:
    """Pareto-maximal seat vectors (capped at demand) the instances of ``layout`` can serve."""
    counts = Counter(i.profile for i in layout.instances)
    caps = tuple(r.seats for r in reqs)
    states: set[Vec] = {tuple(0 for _ in reqs)}
    for prof, n in counts.items():
        targets = [j for j, r in enumerate(reqs) if r.qualifies(prof)]
        for _ in range(n):
            nxt = set(states)
            for v in states:
                for j in targets:
                    if v[j] < caps[j]:
                        nxt.add((*v[:j], v[j] + 1, *v[j + 1 :]))
            states = set(_pareto(nxt))
    return _pareto(states)


def _dominates(a: Option, b: Option) -> bool:
    return (
        all(x >= y for x, y in zip(a.seats, b.seats, strict=True))
        and a.stranded.total <= b.stranded.total
    )


@functools.cache
def options(
    model: GpuModel, reqs: tuple[Requirement, ...], allow_sharing: bool
) -> tuple[Option, ...]:
    """Non-dominated options for one GPU of ``model``, most seats first."""
    found: dict[tuple[Vec, int], Option] = {}
    for lay in maximal_layouts(model):
        st = stranded(model, lay)
        for vec in layout_vectors(lay, reqs):
            found.setdefault((vec, st.total), Option(lay, vec, st))
    if allow_sharing:
        for j, r in enumerate(reqs):
            seats = min(r.shared_seats(model), r.seats)
            if seats > 0:
                vec = tuple(seats if i == j else 0 for i in range(len(reqs)))
                found.setdefault((vec, 0), Option(None, vec, Stranded(0, 0)))
    cands = sorted(found.values(), key=lambda o: (-sum(o.seats), o.stranded.total))
    kept: list[Option] = []
    for o in cands:
        if not any(_dominates(k, o) for k in kept):
            kept.append(o)
    return tuple(kept)


def _search(
    models: list[GpuModel], reqs: tuple[Requirement, ...], allow_sharing: bool, track: bool
) -> tuple[Vec, list[Option]]:
    """Exact DP over GPUs; returns the best capped seat vector and (if ``track``) the options."""
    caps = tuple(r.seats for r in reqs)
    front: dict[Vec, int] = {tuple(0 for _ in reqs): 0}
    back: list[dict[Vec, tuple[Vec, int]]] = []
    for model in models:
        opts = options(model, reqs, allow_sharing)
        nxt: dict[Vec, int] = {}
        step: dict[Vec, tuple[Vec, int]] = {}
        for vec, cost in front.items():
            for k, o in enumerate(opts):
                new = tuple(min(c, a + b) for a, b, c in zip(vec, o.seats, caps, strict=True))
                total = cost + o.stranded.total
                old = nxt.get(new)
                if old is None or total < old:
                    nxt[new] = total
                    if track:
                        step[new] = (vec, k)
        front = _prune(nxt)
        if track:
            back.append(step)
        if not track and caps in front:
            break
    best = max(front, key=lambda v: (sum(v), -front[v]))
    chosen: list[Option] = []
    if track:
        vec = best
        for model, step in zip(reversed(models), reversed(back), strict=True):
            prev, k = step[vec]
            chosen.append(options(model, reqs, allow_sharing)[k])
            vec = prev
        chosen.reverse()
    return best, chosen


def _prune(states: dict[Vec, int]) -> dict[Vec, int]:
    ordered = sorted(states.items(), key=lambda kv: (-sum(kv[0]), kv[1]))
    kept: list[tuple[Vec, int]] = []
    for vec, cost in ordered:
        for v, c in kept:
            if c <= cost and all(map(operator.ge, v, vec)):
                break
        else:
            kept.append((vec, cost))
    return dict(kept)


def _gpus(nodes: tuple[Node, ...]) -> list[tuple[str, int, GpuModel]]:
    out: list[tuple[str, int, GpuModel]] = []
    for node in nodes:
        index = 0
        for model, count in node.gpus:
            for _ in range(count):
                out.append((node.name, index, model))
                index += 1
    return out


def _group(
    assigned: list[tuple[str, int, GpuModel]],
    chosen: list[Option],
    reqs: tuple[Requirement, ...],
    allow_sharing: bool,
) -> list[Option]:
    """Re-deal the chosen options among GPUs of one model so nodes get uniform layouts."""
    per_model: dict[str, list[tuple[int, Option]]] = {}
    for (_, _, model), opt in zip(assigned, chosen, strict=True):
        per_model.setdefault(model.name, []).append(
            (options(model, reqs, allow_sharing).index(opt), opt)
        )
    for opts in per_model.values():
        freq = Counter(rank for rank, _ in opts)
        opts.sort(key=lambda ro: (-freq[ro[0]], ro[0]))
    cursor: Counter[str] = Counter()
    out: list[Option] = []
    for _, _, model in assigned:
        out.append(per_model[model.name][cursor[model.name]][1])
        cursor[model.name] += 1
    return out


def _meets(models: list[GpuModel], reqs: tuple[Requirement, ...], allow_sharing: bool) -> bool:
    best, _ = _search(models, reqs, allow_sharing, track=False)
    return best == tuple(r.seats for r in reqs)


def _smallest(
    base: list[GpuModel], model: GpuModel, reqs: tuple[Requirement, ...], sharing: bool
) -> int | None:
    """Smallest n such that ``base`` plus n GPUs of ``model`` meets the demand."""
    if not _meets(base + [model] * sum(r.seats for r in reqs), reqs, sharing):
        return None
    lo, hi = 0, 1
    while not _meets(base + [model] * hi, reqs, sharing):
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _meets(base + [model] * mid, reqs, sharing):
            hi = mid
        else:
            lo = mid
    return hi


def plan_nodes(
    catalog: Catalog,
    nodes: tuple[Node, ...],
    reqs: tuple[Requirement, ...],
    allow_sharing: bool = False,
) -> MultiPlan:
    """Choose one layout per GPU maximising satisfied seats over all requirements."""
    assigned = _gpus(nodes)
    models = [m for _, _, m in assigned]
    best, chosen = _search(models, reqs, allow_sharing, track=True)
    chosen = _group(assigned, chosen, reqs, allow_sharing)
    gpus = tuple(
        GpuAssignment(node, index, model, opt)
        for (node, index, model), opt in zip(assigned, chosen, strict=True)
    )
    alternatives: list[ExtraGpus] = []
    if best != tuple(r.seats for r in reqs):
        for model in catalog.models:
            extra = _smallest(models, model, reqs, allow_sharing)
            alone = _smallest([], model, reqs, allow_sharing)
            if extra is not None and alone is not None:
                alternatives.append(ExtraGpus(model.name, extra, alone))
    return MultiPlan(reqs, gpus, best, tuple(alternatives))
