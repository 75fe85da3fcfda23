"""Exact MIG layout planner for several seat requirements over a per-node GPU inventory.

Method (see ``docs/explanation/mig-planner.md``):

1. Per GPU model, every maximal MIG layout (computed once per model) is reduced to its instances
   per *class*, the set of requirements an instance can serve; with sharing allowed, "MIG
   disabled, the whole GPU shared by seats of requirement j" is one more choice. Per count the
   least stranded layout is kept, and a choice is dropped when another one's instances can stand
   in for all of its instances at no more stranded slices (whole-GPU sharing choices stay: they
   share one layout).
2. GPUs of one model are interchangeable, so the plan is how many GPUs of each model use each
   choice: a small integer programme (``multiplan_ip``) solved exactly, first for the most
   satisfied seats, then for the fewest stranded slices.
3. Among plans with those seats and stranded slices, the fewest distinct layouts (a GPU model's
   layout, instances per profile as mig-parted sees them; MIG disabled counts as one)
   (``multiplan_distinct``): exact unless a proof needs more than a bounded search, which the plan
   then says.
4. The counts are dealt to the GPUs so that as many nodes as possible run one layout (``spread``),
   and a maximum flow splits the served seats among requirements and GPUs.
5. When the demand does not fit: per catalog model, the fewest GPUs to add (models with identical
   choices pooled), each proof that fewer fall short again bounded.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, replace

from hub_ext.core.mig.catalog import Catalog, GpuModel, MigProfile
from hub_ext.core.mig.layouts import Layout, Stranded, maximal_layouts, stranded
from hub_ext.core.multiplan_distinct import fewest_keys
from hub_ext.core.multiplan_flow import allocate, spread
from hub_ext.core.multiplan_ip import PROOF_NODES, least_extra, reaches, solve
from hub_ext.core.multiplan_lp import Column, Problem

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
    ``proven``: both are the smallest such numbers (False: the smallest found, the proof that one
    fewer falls short stopped at its node limit)."""

    model: str
    extra: int
    alone: int
    proven: bool = True


@dataclass(frozen=True)
class MultiPlan:
    """Planner result."""

    requirements: tuple[Requirement, ...]
    gpus: tuple[GpuAssignment, ...]
    satisfied: Vec
    alternatives: tuple[ExtraGpus, ...]
    layouts_proven: bool = True  # False: the fewest distinct layouts found, fewer not ruled out

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
class _Choice:
    """One way to set up a GPU of a model: its instances per class (requirement bitmask)."""

    layout: Layout | None
    stranded: Stranded
    supply: tuple[tuple[int, int], ...]


def _mask(prof: MigProfile, reqs: tuple[Requirement, ...]) -> int:
    return sum(1 << j for j, r in enumerate(reqs) if r.seats > 0 and r.qualifies(prof))


def _covers(q: _Choice, p: _Choice) -> bool:
    """Whether the instances of ``q`` can stand in for all of ``p``'s (Hall's condition)."""
    for pick in range(1, 1 << len(p.supply)):
        chosen = [(m, c) for i, (m, c) in enumerate(p.supply) if pick >> i & 1]
        have = sum(c for t, c in q.supply if any(t & m == m for m, _ in chosen))
        if have < sum(c for _, c in chosen):
            return False
    return True


@functools.cache
def layout_table(model: GpuModel) -> tuple[tuple[Layout, Stranded], ...]:
    """Every maximal layout of ``model`` with its stranded capacity (computed once per model)."""
    return tuple((lay, stranded(model, lay)) for lay in maximal_layouts(model))


def _shared(model: GpuModel, reqs: tuple[Requirement, ...]) -> list[_Choice]:
    """MIG disabled, the whole GPU shared by seats of one requirement: one setup per
    requirement that such a GPU serves."""
    out = []
    for j, r in enumerate(reqs):
        seats = min(r.shared_seats(model), r.seats)
        if seats > 0:
            out.append(_Choice(None, Stranded(0, 0), ((1 << j, seats),)))
    return out


@functools.cache
def choices(
    model: GpuModel, reqs: tuple[Requirement, ...], allow_sharing: bool, costed: bool = True
) -> tuple[_Choice, ...]:
    """The ways to set up one GPU of ``model`` that no other way beats.

    One per maximal layout (instances counted per class, the least stranded layout kept per
    count), plus with sharing one per requirement served by the whole GPU. A choice is dropped
    when another one's instances can stand in for all of its instances at no more stranded
    slices (``costed=False``: whatever the stranded slices).
    """
    found: dict[tuple[tuple[int, int], ...], _Choice] = {}
    for lay, st in layout_table(model):
        counts = Counter(_mask(i.profile, reqs) for i in lay.instances)
        supply = tuple(sorted((m, c) for m, c in counts.items() if m))
        old = found.get(supply)
        if old is None or (costed and st.total < old.stranded.total):
            found[supply] = _Choice(lay, st, supply)
    for shared in _shared(model, reqs) if allow_sharing else ():
        old = found.get(shared.supply)
        if old is None or (costed and old.stranded.total > 0):
            found[shared.supply] = shared
    cands = list(found.values())

    def cost(ch: _Choice) -> int:
        return ch.stranded.total if costed else 0

    kept: list[_Choice] = []
    for i, p in enumerate(cands):
        beaten = any(
            k != i
            and cost(q) <= cost(p)
            and _covers(q, p)
            and (k < i or cost(q) < cost(p) or not _covers(p, q))
            for k, q in enumerate(cands)
        )
        if not beaten:
            kept.append(p)
    return tuple(kept)


def _pooled(
    groups: list[tuple[GpuModel, int]],
    reqs: tuple[Requirement, ...],
    allow_sharing: bool,
    costed: bool = True,
) -> tuple[Problem, tuple[tuple[GpuModel, ...], ...]]:
    """The problem of the first two stages and of the alternatives (``costed=False``: stranded
    slices aside): models whose setups are alike (same instances per class, same extra stranded
    slices) share one group, which keeps the search small; also returned: each group's models."""
    per_model = [choices(model, reqs, allow_sharing, costed) for model, _ in groups]
    classes = sorted({m for chs in per_model for ch in chs for m, _ in ch.supply})
    pools: dict[tuple[tuple[tuple[int, ...], int], ...], list[tuple[GpuModel, int]]] = {}
    for (model, n), chs in zip(groups, per_model, strict=True):
        cheapest = min(ch.stranded.total for ch in chs) if costed else 0
        signature = sorted(
            (_vector(ch, classes), ch.stranded.total - cheapest if costed else 0) for ch in chs
        )
        pools.setdefault(tuple(signature), []).append((model, n))
    columns = [
        Column(g, vector, extra) for g, signature in enumerate(pools) for vector, extra in signature
    ]
    sizes = tuple(sum(n for _, n in pooled) for pooled in pools.values())
    problem = Problem(tuple(classes), tuple(r.seats for r in reqs), sizes, tuple(columns))
    return problem, tuple(tuple(m for m, _ in pooled) for pooled in pools.values())


def _vector(choice: _Choice, classes: list[int] | tuple[int, ...]) -> tuple[int, ...]:
    have = dict(choice.supply)
    return tuple(have.get(m, 0) for m in classes)


def _unpool(
    pooled: Problem,
    members: tuple[tuple[GpuModel, ...], ...],
    counts: tuple[int, ...],
    sizes: dict[GpuModel, int],
    setups: tuple[_Choice, ...],
    keyed: Problem,
) -> tuple[int, ...]:
    """Pooled column counts as counts of the per-model problem (GPUs of a pool dealt to its
    models in turn; any split serves the same seats at the same stranded slices)."""
    order = list(sizes)
    lookup: dict[tuple[int, tuple[tuple[int, int], ...]], int] = {}
    for p, col in enumerate(keyed.columns):
        lookup.setdefault((col.group, setups[p].supply), p)
    out = [0] * len(keyed.columns)
    left = dict(sizes)
    for n, col in zip(counts, pooled.columns, strict=True):
        supply = tuple((m, c) for m, c in zip(pooled.classes, col.supply, strict=True) if c)
        for model in members[col.group]:
            take = min(n, left[model])
            if take:
                out[lookup[order.index(model), supply]] += take
                left[model] -= take
                n -= take
    return tuple(out)


def _all_choices(
    model: GpuModel, reqs: tuple[Requirement, ...], allow_sharing: bool
) -> tuple[_Choice, ...]:
    """:func:`choices`, plus every whole-GPU sharing setup it dropped: those share one layout
    (MIG disabled), so dropping one could cost the third stage a layout."""
    kept = choices(model, reqs, allow_sharing)
    if not allow_sharing:
        return kept
    return kept + tuple(ch for ch in _shared(model, reqs) if ch not in kept)


def _per_model(
    sizes: dict[GpuModel, int], reqs: tuple[Requirement, ...], allow_sharing: bool
) -> tuple[Problem, tuple[_Choice, ...], tuple[int, ...]]:
    """The third stage's problem: one group per model, its columns (with their setups,
    costs relative to the model's least stranded setup) keyed by layout."""
    per_model = [_all_choices(model, reqs, allow_sharing) for model in sizes]
    classes = sorted({m for chs in per_model for ch in chs for m, _ in ch.supply})
    columns: list[Column] = []
    setups: list[_Choice] = []
    keys: list[int] = []
    ids: dict[tuple[int, tuple[tuple[str, int], ...] | None], int] = {}
    for g, chs in enumerate(per_model):
        cheapest = min(ch.stranded.total for ch in chs)
        for ch in chs:
            columns.append(Column(g, _vector(ch, classes), ch.stranded.total - cheapest))
            setups.append(ch)
            keys.append(ids.setdefault((g, layout_key(ch.layout)), len(ids)))
    problem = Problem(
        tuple(classes), tuple(r.seats for r in reqs), tuple(sizes.values()), tuple(columns)
    )
    return problem, tuple(setups), tuple(keys)


def _gpus(nodes: tuple[Node, ...]) -> list[tuple[str, int, GpuModel]]:
    out: list[tuple[str, int, GpuModel]] = []
    for node in nodes:
        index = 0
        for model, count in node.gpus:
            for _ in range(count):
                out.append((node.name, index, model))
                index += 1
    return out


def _deal(
    assigned: list[tuple[str, int, GpuModel]],
    models: tuple[GpuModel, ...],
    problem: Problem,
    setups: tuple[_Choice, ...],
    counts: tuple[int, ...],
) -> tuple[tuple[GpuAssignment, ...], Vec]:
    """Hand the chosen setups (every GPU of group g, model ``models[g]``, has one) to the GPUs
    and split the served seats among them. Layouts are spread so that as many nodes as possible
    run one layout on all their GPUs (:func:`spread`)."""
    per_node: dict[str, Counter[GpuModel]] = {}
    for node, _, model in assigned:
        per_node.setdefault(node, Counter())[model] += 1
    queue: dict[GpuModel, list[_Choice]] = {}
    for g, model in enumerate(models):
        pools: dict[tuple[tuple[str, int], ...] | None, list[_Choice]] = {}
        cols = [p for p, col in enumerate(problem.columns) if col.group == g]
        for p in sorted(cols, key=lambda p: (-counts[p], p)):
            pools.setdefault(layout_key(setups[p].layout), []).extend([setups[p]] * counts[p])
        piles = list(pools.values())
        nodes = [(c[model], len(c) == 1) for c in per_node.values() if c[model]]
        queue[model] = [piles[k].pop() for k in spread(nodes, [len(pile) for pile in piles])]
    flow = [list(row) for row in allocate(problem, counts)]
    index = {m: s for s, m in enumerate(problem.classes)}
    out: list[GpuAssignment] = []
    cursor: Counter[GpuModel] = Counter()
    for node, gpu, model in assigned:
        choice = queue[model][cursor[model]]
        cursor[model] += 1
        seats = [0] * len(problem.demand)
        for mask, count in choice.supply:
            row = flow[index[mask]]
            for j, avail in enumerate(row):
                take = min(avail, count)
                row[j] -= take
                seats[j] += take
                count -= take
        out.append(
            GpuAssignment(node, gpu, model, Option(choice.layout, tuple(seats), choice.stranded))
        )
    satisfied = tuple(sum(g.option.seats[j] for g in out) for j in range(len(problem.demand)))
    return tuple(out), satisfied


def _smallest(
    base: dict[GpuModel, int],
    model: GpuModel,
    reqs: tuple[Requirement, ...],
    sharing: bool,
    limit: int,
) -> tuple[int, bool] | None:
    """Smallest n such that ``base`` plus n GPUs of ``model`` meets the demand (which base alone
    does not): a guess from the linear relaxation, checked exactly and corrected by search.
    Also whether n is proven the smallest: each proof that fewer GPUs fall short may visit at
    most ``limit`` nodes (0: no limit); past that, n is the smallest number found to meet the
    demand."""
    sizes = dict(base)
    sizes.setdefault(model, 0)
    problem, members = _pooled(list(sizes.items()), reqs, sharing, costed=False)
    group = next(g for g, models in enumerate(members) if model in models)
    demand = sum(problem.demand)
    proven = True

    def meets(extra: int) -> bool:
        nonlocal proven
        grown = tuple(n + extra if g == group else n for g, n in enumerate(problem.sizes))
        answer = reaches(replace(problem, sizes=grown), demand, limit)
        proven = proven and answer is not None
        return answer is True

    guess = least_extra(problem, group)
    if guess is None:
        if not meets(demand):
            return None
        lo, hi = 0, demand
    else:
        first = min(max(1, math.ceil(guess - 1e-6)), max(demand, 1))
        if meets(first):
            if first == 1 or not meets(first - 1):
                return first, proven
            lo, hi = 0, first - 1
        else:
            lo, step = first, 1
            while True:  # gallop up; n = demand always meets if any n does
                hi = min(lo + step, demand)
                if meets(hi):
                    break
                if hi >= demand:
                    return None
                lo, step = hi, step * 2
    while hi - lo > 1:  # lo does not meet the demand (or is not known to), hi does
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return hi, proven


def plan_nodes(
    catalog: Catalog,
    nodes: tuple[Node, ...],
    reqs: tuple[Requirement, ...],
    allow_sharing: bool = False,
    proof_nodes: int = PROOF_NODES,
) -> MultiPlan:
    """Choose one layout per GPU maximising satisfied seats, then minimising stranded slices,
    then minimising distinct layouts. ``proof_nodes`` bounds each proof of the third stage and
    of the alternatives (0: prove everything, however long it takes); the plan says which
    answers are not proven."""
    assigned = _gpus(nodes)
    sizes: dict[GpuModel, int] = {}
    for _, _, model in assigned:
        sizes[model] = sizes.get(model, 0) + 1
    pooled, members = _pooled(list(sizes.items()), reqs, allow_sharing)
    best = solve(pooled)
    keyed, setups, keys = _per_model(sizes, reqs, allow_sharing)
    start = keyed.everyone(_unpool(pooled, members, best.counts, sizes, setups, keyed))
    counts, proven = fewest_keys(keyed, keys, start, proof_nodes)
    gpus, satisfied = _deal(assigned, tuple(sizes), keyed, setups, counts)
    alternatives: list[ExtraGpus] = []
    if sum(satisfied) < sum(r.seats for r in reqs):
        for model in catalog.models:
            extra = _smallest(sizes, model, reqs, allow_sharing, proof_nodes)
            alone = _smallest({}, model, reqs, allow_sharing, proof_nodes)
            if extra is not None and alone is not None:
                both = extra[1] and alone[1]
                alternatives.append(ExtraGpus(model.name, extra[0], alone[0], both))
    return MultiPlan(reqs, gpus, satisfied, tuple(alternatives), proven)
